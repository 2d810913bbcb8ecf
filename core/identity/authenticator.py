"""``Authenticator``: from an ``Authorization`` header to the active ``User`` behind it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.authz.store import POLICY_VERSION, PolicyStore
from core.config import Settings
from core.db import Database
from core.domain import User
from core.errors import BadUserInput
from core.identity.oidc import ALGORITHMS, ProviderKeys
from core.identity.tokens import SERVICE_ALGORITHM, InvalidToken, bearer, decode_checked
from core.services.audit import Actor
from core.services.users import UserService

log = logging.getLogger("baton.identity")
PROVISION_REASON = "just-in-time provisioning at first OpenID Connect sign-in"


# The user row and the policy version in one statement (revocations apply at once).
_WITH_POLICY_VERSION = select(User, POLICY_VERSION.scalar_subquery())
_BY_ID = _WITH_POLICY_VERSION.where(User.id == bindparam("user_id"))  # built once


@dataclass(frozen=True)
class Authenticated:
    """Who a token names, and when the token expires (None: it carries no ``exp``)."""

    user: User
    expires_at: datetime | None


class Authenticator:
    """Checks bearer tokens of both kinds: service tokens (HS256, ``BATON_JWT_SECRET``) and
    the identity provider's tokens (RS256/ES256, ``BATON_OIDC_*``), as configured.

    The user row is read together with the policy version, so that a change committed by any
    process (the CLI, another worker) reaches the policy store before this request is
    authorised, without a query of its own.
    """

    def __init__(
        self, settings: Settings, db: Database, store: PolicyStore, users: UserService
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.users = users
        self.provider = ProviderKeys(settings) if settings.oidc_enabled else None

    async def authenticate(
        self, authorization_header: str | None, session: AsyncSession | None = None
    ) -> Authenticated:
        """The active user the header's bearer token names and the token's expiry (from the
        one verified decode), else ``InvalidToken`` (or ``ServiceUnavailable`` when the
        identity provider cannot be reached).

        ``session``: a read session to look the user up with (else one of its own)."""
        token = bearer(authorization_header)
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if algorithm == SERVICE_ALGORITHM:
            return await self._service_user(token, session)
        if algorithm in ALGORITHMS:
            return await self._provider_user(token, str(algorithm), session)
        raise InvalidToken(f"token algorithm {algorithm!r} is not accepted")

    async def _service_user(self, token: str, session: AsyncSession | None) -> Authenticated:
        s = self.settings
        if not s.jwt_secret:
            raise InvalidToken(
                "service tokens are off on this server; sign in through the identity provider"
            )
        claims = decode_checked(
            token,
            s.jwt_secret,
            [SERVICE_ALGORITHM],
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            leeway=s.jwt_leeway,
        )
        user_id = _text(claims, "sub")
        user = await self._user(_BY_ID, session, user_id=user_id)
        if user is None:
            raise InvalidToken(f"unknown user {user_id!r}")
        return _active(user, claims)

    async def _provider_user(
        self, token: str, algorithm: str, session: AsyncSession | None
    ) -> Authenticated:
        if self.provider is None:
            raise InvalidToken("OpenID Connect sign-in is not configured on this server")
        claims = await self.provider.claims(token, algorithm)
        claim = self.settings.oidc_user_claim
        value = _text(claims, claim)
        match = func.lower(User.email) == value.lower() if claim == "email" else User.id == value
        user = await self._user(match, session)
        if user is None:
            if not self.settings.oidc_provision_role:
                raise InvalidToken(
                    f"no Baton user matches {claim} {value!r}; ask an admin to add you"
                )
            user = await self._provision(claims, claim, value)
        return _active(user, claims)

    async def _user(
        self,
        match: ColumnElement[bool] | Select[Any],
        session: AsyncSession | None = None,
        **params: Any,
    ) -> User | None:
        """The user ``match`` finds (a condition, or a prepared statement and its ``params``),
        noting the policy version read with it."""
        statement = match if isinstance(match, Select) else _WITH_POLICY_VERSION.where(match)
        if session is not None:
            row = (await session.execute(statement, params)).first()
        else:
            async with self.db.reader() as own:
                row = (await own.execute(statement, params)).first()
        if row is None:
            return None
        self.store.observe(row[1])
        return row[0]

    async def _provision(self, claims: dict[str, Any], claim: str, value: str) -> User:
        """Create the user a valid provider token names, with the admin's default role."""
        user_id = value.split("@", 1)[0].lower() if claim == "email" else value
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        name = claims.get("name") if isinstance(claims.get("name"), str) else value
        try:
            user = await self.users.create(
                Actor.system(),
                user_id,
                str(name)[:200],
                email=email,
                roles=[self.settings.oidc_provision_role],
                reason=PROVISION_REASON,
            )
        except BadUserInput as exc:
            taken = await self._user(User.id == user_id)
            if taken is not None and claim != "email":  # a concurrent first request made it
                return taken
            reasons = "; ".join(f"{e.path}: {e.reason}" for e in exc.errors)
            raise InvalidToken(
                f"cannot create a Baton user for {claim} {value!r} ({reasons}); "
                "ask an admin to add you"
            ) from exc
        log.info("provisioned user %s at first sign-in", user_id)
        return user


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken(f"token lacks the {name!r} claim that names the Baton user")
    return value


def _active(user: User, claims: dict[str, Any]) -> Authenticated:
    if not user.active:
        raise InvalidToken(f"user {user.id!r} is deactivated")
    exp = claims.get("exp")
    expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
    return Authenticated(user, expires)
