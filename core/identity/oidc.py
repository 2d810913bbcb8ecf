"""OpenID Connect access tokens, verified against the identity provider's published keys.

PyJWT's ``PyJWKClient`` fetches and caches the key set (``jwks_lifespan``) and refetches it
for an unknown ``kid`` at most once per ``jwks_cooldown`` seconds, so tokens with made-up key
ids cannot hammer the provider. Its fetch is blocking urllib, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any

import jwt

from core.config import Settings
from core.errors import ServiceUnavailable
from core.identity.tokens import InvalidToken, decode_checked

# Asymmetric algorithms only: a key from the provider never verifies an HMAC token.
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
FETCH_TIMEOUT = 5.0
# After a failed discovery, requests fail at once for this long instead of each waiting on a
# provider that is down (and all of them queueing behind the lock).
DISCOVERY_RETRY = 10.0


class ProviderKeys:
    """The identity provider's signing keys, found by discovery or a configured JWKS URL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._failed_at = -DISCOVERY_RETRY

    def _jwks_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                if time.monotonic() - self._failed_at < DISCOVERY_RETRY:
                    raise OSError("discovery failed moments ago")
                try:
                    url = self.settings.jwks_url or self._discover()
                except Exception:
                    self._failed_at = time.monotonic()
                    raise
                self._client = jwt.PyJWKClient(
                    url,
                    lifespan=self.settings.jwks_lifespan,
                    cooldown_duration=self.settings.jwks_cooldown,
                    timeout=FETCH_TIMEOUT,
                )
            return self._client

    def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's discovery document (which must name the issuer)."""
        issuer = self.settings.oidc_issuer.rstrip("/")
        with urllib.request.urlopen(
            f"{issuer}/.well-known/openid-configuration", timeout=FETCH_TIMEOUT
        ) as response:
            document = json.load(response)
        if document.get("issuer", "").rstrip("/") != issuer:
            raise ValueError(f"discovery document names issuer {document.get('issuer')!r}")
        return str(document["jwks_uri"])

    def signing_key(self, token: str) -> jwt.PyJWK:
        """The published key the token's ``kid`` names (blocking: call it in a thread)."""
        return self._jwks_client().get_signing_key_from_jwt(token)

    async def claims(self, token: str, algorithm: str) -> dict[str, Any]:
        """The verified claims of a provider's token signed with ``algorithm``."""
        try:
            key = await asyncio.to_thread(self.signing_key, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailable(
                "the identity provider's keys cannot be fetched; retry later"
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise InvalidToken(
                "token signed with a key the identity provider does not publish"
            ) from exc
        except (OSError, ValueError, KeyError) as exc:  # discovery failed
            raise ServiceUnavailable(
                "the identity provider's discovery document cannot be read; retry later"
            ) from exc
        if key.algorithm_name != algorithm:
            raise InvalidToken(f"token algorithm {algorithm} does not match its key")
        return decode_checked(
            token,
            key,
            [algorithm],
            audience=self.settings.oidc_audience,
            issuer=self.settings.oidc_issuer,
            leeway=self.settings.jwt_leeway,
        )
