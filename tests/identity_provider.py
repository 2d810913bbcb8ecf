"""A real, small OpenID Connect provider for tests: discovery and JWKS over HTTP on
127.0.0.1, with keys that can be added, rotated and removed, and tokens it signs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "baton-api"


class IdentityProvider:
    """Keys by ``kid``; the JWKS endpoint publishes the ones in ``published``."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, Any]] = {}  # kid -> (algorithm, private key)
        self.published: list[str] = []
        self.jwks_hits = 0
        self.issuer = ""  # set once the server listens

    def new_key(self, algorithm: str = "RS256", publish: bool = True) -> str:
        """Make a key (RS256 or ES256); publish it unless told not to. Returns its kid."""
        kid = uuid.uuid4().hex[:12]
        private: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = (algorithm, private)
        if publish:
            self.published.append(kid)
        return kid

    def revoke(self, kid: str) -> None:
        """Stop publishing the key (its tokens must stop working)."""
        self.published.remove(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            algorithm, private = self.keys[kid]
            codec = RSAAlgorithm if algorithm == "RS256" else ECAlgorithm
            jwk = codec.to_jwk(private.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": algorithm})
        return {"keys": keys}

    def token(self, kid: str, ttl: float = 300, **claims: Any) -> str:
        """A token signed with key ``kid``: ``iss``/``aud`` this provider's unless given."""
        algorithm, private = self.keys[kid]
        now = int(time.time())
        body = {"iss": self.issuer, "aud": AUDIENCE, "iat": now, "exp": int(now + ttl), **claims}
        return jwt.encode(body, private, algorithm=algorithm, headers={"kid": kid})

    def public_pem(self, kid: str) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return (
            self.keys[kid][1]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    """A provider serving ``/.well-known/openid-configuration`` and ``/jwks`` on a free port
    of 127.0.0.1 until the block ends."""
    provider = IdentityProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks"}
            elif self.path == "/jwks":
                provider.jwks_hits += 1
                body = provider.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
