"""OpenID Connect sign-in over HTTP against a real local identity provider (discovery and
JWKS on 127.0.0.1): RS256 and ES256, key rotation, a revoked key, expiry, wrong audience
or issuer, unknown and deactivated users, just-in-time provisioning, algorithm confusion."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from core.clock import FixedClock
from core.config import Settings
from core.domain import AuditEntry
from core.services import Actor
from tests.conftest import GraphQLClient, client_of, free_port, running
from tests.identity_provider import AUDIENCE, IdentityProvider, identity_provider

VIEWER = "{ viewer { user { id name } roles } }"


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with identity_provider() as idp:
        yield idp


@pytest.fixture
def oidc_settings(settings: Settings, provider: IdentityProvider) -> Settings:
    """Both modes on: service tokens (the fixtures' secret) and the provider's tokens."""
    return replace(
        settings,
        oidc_issuer=provider.issuer,
        oidc_audience=AUDIENCE,
        jwks_lifespan=0.3,
        jwks_cooldown=0,
    )


@asynccontextmanager
async def baton(settings: Settings, clock: FixedClock) -> AsyncIterator[GraphQLClient]:
    """The app with ``settings``, with users am.chen (account manager, e-mail
    chen@example.com) and fin.he (finance, deactivated)."""
    async with running(settings, clock) as app, client_of(app, clock) as client:
        users = app.state.services.users
        system = Actor.system()
        await users.create(system, "admin", "Ada Admin", roles=["admin"])
        await users.create(
            system, "am.chen", "Chen Jie", roles=["account_manager"], email="chen@example.com"
        )
        await users.create(system, "fin.he", "He Xin", roles=["finance"])
        await users.deactivate(system, "fin.he")
        yield client


async def ask(client: GraphQLClient, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.json()


async def refused(client: GraphQLClient, token: str, message: str) -> None:
    status, body = await ask(client, token)
    assert status == 401, body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert message in body["errors"][0]["message"], body


async def viewer_id(client: GraphQLClient, token: str) -> str:
    status, body = await ask(client, token)
    assert status == 200 and "errors" not in body, body
    return str(body["data"]["viewer"]["user"]["id"])


async def test_rs256_and_es256_tokens_sign_in_next_to_service_tokens(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    rsa, ec = provider.new_key("RS256"), provider.new_key("ES256")
    async with baton(oidc_settings, clock) as client:
        assert await viewer_id(client, provider.token(rsa, sub="am.chen")) == "am.chen"
        assert await viewer_id(client, provider.token(ec, sub="am.chen")) == "am.chen"
        assert await viewer_id(client, client.token("admin")) == "admin"  # HS256, same server


async def test_a_rotated_in_key_is_fetched_and_a_revoked_one_stops_working(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    old = provider.new_key()
    async with baton(oidc_settings, clock) as client:
        assert await viewer_id(client, provider.token(old, sub="am.chen")) == "am.chen"
        new = provider.new_key()  # the provider rotates: a new kid the cache has not seen
        assert await viewer_id(client, provider.token(new, sub="am.chen")) == "am.chen"
        provider.revoke(old)
        await asyncio.sleep(oidc_settings.jwks_lifespan + 0.1)  # the cached key set expires
        await refused(client, provider.token(old, sub="am.chen"), "does not publish")
        assert await viewer_id(client, provider.token(new, sub="am.chen")) == "am.chen"


async def test_unknown_key_ids_refetch_at_most_once_per_cooldown(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    known = provider.new_key()
    bounded = replace(oidc_settings, jwks_lifespan=60, jwks_cooldown=60)
    async with baton(bounded, clock) as client:
        assert await viewer_id(client, provider.token(known, sub="am.chen")) == "am.chen"
        assert provider.jwks_hits == 1
        for _ in range(5):
            stranger = provider.new_key(publish=False)
            await refused(client, provider.token(stranger, sub="am.chen"), "does not publish")
        assert provider.jwks_hits == 1


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"ttl": -120}, "token expired"),
        ({"ttl": 300, "nbf": 2**31}, "not valid yet"),
        ({"aud": "another-app"}, "not for this service"),
        ({"iss": "https://elsewhere.example.com"}, "another issuer"),
        ({"sub": "nobody"}, "no Baton user matches sub 'nobody'"),
        ({"sub": "fin.he"}, "user 'fin.he' is deactivated"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "unknown", "deactivated"],
)
async def test_refusals(
    oidc_settings: Settings,
    clock: FixedClock,
    provider: IdentityProvider,
    claims: dict[str, Any],
    message: str,
) -> None:
    kid = provider.new_key()
    async with baton(oidc_settings, clock) as client:
        await refused(client, provider.token(kid, **{"sub": "am.chen", **claims}), message)


async def test_the_email_claim_names_the_user_by_e_mail(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    kid = provider.new_key("ES256")
    settings = replace(oidc_settings, oidc_user_claim="email")
    async with baton(settings, clock) as client:
        token = provider.token(kid, sub="f00-uuid", email="Chen@Example.com")
        assert await viewer_id(client, token) == "am.chen"
        await refused(client, provider.token(kid, sub="am.chen"), "lacks the 'email' claim")


async def test_just_in_time_provisioning_creates_an_audited_user_with_the_default_role(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    kid = provider.new_key()
    settings = replace(
        oidc_settings, oidc_user_claim="preferred_username", oidc_provision_role="customer_service"
    )
    async with baton(settings, clock) as client:
        token = provider.token(kid, preferred_username="cs.new", name="New Person")
        status, body = await ask(client, token)
        assert status == 200, body
        assert body["data"]["viewer"] == {
            "user": {"id": "cs.new", "name": "New Person"},
            "roles": ["customer_service"],
        }
        assert await viewer_id(client, token) == "cs.new"  # the second time: the same user
        services = client.http._transport.app.state.services  # type: ignore[attr-defined]
        async with services.db.reader() as session:
            entries = list(
                await session.scalars(select(AuditEntry).where(AuditEntry.entity_id == "cs.new"))
            )
        assert [(e.action, e.actor_id, e.reason) for e in entries] == [
            ("createUser", None, "just-in-time provisioning at first OpenID Connect sign-in")
        ]
        # A deactivated user is not provisioned again.
        await refused(
            client, provider.token(kid, preferred_username="fin.he"), "'fin.he' is deactivated"
        )
        # A name that cannot be a Baton id is refused, with nothing written.
        await refused(client, provider.token(kid, preferred_username="Not An Id"), "cannot create")


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token as an attacker builds it: any header, HMAC-SHA256 with ``key`` (or no
    signature). PyJWT refuses to make these, which is the point of the test."""
    b64 = jwt.utils.base64url_encode
    signing_input = b".".join(b64(json.dumps(part).encode()) for part in (header, claims))
    signature = hmac.new(key, signing_input, hashlib.sha256).digest() if key else b""
    return (signing_input + b"." + b64(signature)).decode()


async def test_algorithm_confusion_and_unsigned_tokens_are_refused(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    kid = provider.new_key()
    claims = {"sub": "admin", "iss": provider.issuer, "aud": AUDIENCE, "iat": 2, "exp": 2**31}
    # HS256 keyed with the provider's public key, which anyone can download.
    confused = forge({"alg": "HS256", "kid": kid}, claims, provider.public_pem(kid))
    # The same HMAC signature labelled RS256, so that it reaches the provider's key.
    relabelled = forge({"alg": "RS256", "kid": kid}, claims, provider.public_pem(kid))
    unsigned = forge({"alg": "none", "kid": kid}, claims, None)
    async with baton(oidc_settings, clock) as client:
        await refused(client, confused, "invalid token")
        await refused(client, relabelled, "invalid token")
        await refused(client, unsigned, "algorithm 'none' is not accepted")


async def test_without_a_service_secret_hs256_tokens_are_off(
    oidc_settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    kid = provider.new_key()
    claims = {"sub": "admin", "iss": provider.issuer, "aud": AUDIENCE, "iat": 2, "exp": 2**31}
    confused = forge({"alg": "HS256", "kid": kid}, claims, provider.public_pem(kid))
    oidc_only = replace(oidc_settings, jwt_secret="")
    async with baton(oidc_only, clock) as client:
        await refused(client, confused, "service tokens are off")
        await refused(client, client.token("admin"), "service tokens are off")
        assert await viewer_id(client, provider.token(kid, sub="am.chen")) == "am.chen"


async def test_a_jwks_url_without_discovery(
    settings: Settings, clock: FixedClock, provider: IdentityProvider
) -> None:
    kid = provider.new_key("ES256")
    direct = replace(settings, jwks_url=f"{provider.issuer}/jwks", oidc_audience=AUDIENCE)
    async with baton(direct, clock) as client:
        assert await viewer_id(client, provider.token(kid, sub="am.chen")) == "am.chen"


@pytest.mark.parametrize("setting", ["jwks_url", "oidc_issuer"])
async def test_an_unreachable_provider_is_503(
    settings: Settings, clock: FixedClock, provider: IdentityProvider, setting: str
) -> None:
    kid = provider.new_key("ES256")
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = replace(settings, oidc_audience=AUDIENCE, **{setting: nowhere})
    async with baton(down, clock) as client:
        token = provider.token(kid, sub="am.chen", iss=nowhere)
        for _ in range(2):  # the second time too (discovery is not retried for a while)
            response = await client.http.post(
                "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 503, response.text
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert "identity provider" in error["message"] and "retry later" in error["message"]
