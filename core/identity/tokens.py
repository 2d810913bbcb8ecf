"""Service tokens: HS256 JWTs whose ``sub`` is the user id. Roles never come from a token."""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy.engine import make_url

from core.config import Settings

SERVICE_ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, not for Baton, or names no active user."""


def issue_token(
    user_id: str,
    secret: str,
    *,
    now: datetime,
    ttl: timedelta,
    audience: str = "",
    issuer: str = "",
) -> str:
    """A signed token for ``user_id``, valid from ``now`` for ``ttl`` (with ``aud``/``iss``
    when given)."""
    start = int(now.timestamp())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": start,
        "nbf": start,
        "exp": int((now + ttl).timestamp()),
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=SERVICE_ALGORITHM)


def issue_service_token(settings: Settings, user_id: str, *, now: datetime, ttl: timedelta) -> str:
    """``issue_token`` with the deployment's secret, audience and issuer."""
    return issue_token(
        user_id,
        settings.jwt_secret,
        now=now,
        ttl=ttl,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header, else InvalidToken."""
    if not header:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token.strip()


def decode_checked(
    token: str,
    key: Any,
    algorithms: list[str],
    *,
    audience: str,
    issuer: str,
    leeway: int,
) -> dict[str, Any]:
    """The claims of ``token`` signed with ``key`` by one of ``algorithms``: ``exp`` and
    ``iat`` required, ``nbf`` checked when present, ``aud``/``iss`` when configured."""
    required = ["exp", "iat"]
    if audience:
        required.append("aud")
    if issuer:
        required.append("iss")
    try:
        return jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=audience or None,
            issuer=issuer or None,
            leeway=leeway,
            options={"require": required, "verify_aud": bool(audience)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired; get a new one") from exc
    except jwt.ImmatureSignatureError as exc:
        raise InvalidToken("token not valid yet (nbf or iat in the future)") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token lacks the {exc.claim!r} claim") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken(
            f"token is not for this service (aud must include {audience!r})"
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken(f"token is from another issuer (iss must be {issuer!r})") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid token (bad signature or malformed)") from exc


def demo_secret_path(settings: Settings) -> Path:
    """Where ``baton serve --demo`` keeps its secret: beside the SQLite database file, else
    in the working directory."""
    url = make_url(settings.database_url)
    if settings.is_sqlite and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.with_name(db.name + ".demo-secret")
    return Path(".baton-demo-secret")


def demo_secret(settings: Settings, *, create: bool) -> str | None:
    """The demo's random service-token secret (made once, readable by its owner only)."""
    path = demo_secret_path(settings)
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
