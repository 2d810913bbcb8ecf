"""Bearer tokens: HS256 JWTs whose ``sub`` is the user id. Roles never come from the token."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt


class InvalidToken(Exception):
    """The token is missing, malformed, expired or names no active user."""


def issue_token(user_id: str, secret: str, *, now: datetime, ttl: timedelta) -> str:
    """A signed token for ``user_id`` that expires after ``ttl``."""
    claims = {"sub": user_id, "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


def user_id_from_header(header: str | None, secret: str) -> str:
    """The ``sub`` of a valid ``Authorization: Bearer …`` header, else InvalidToken."""
    if not header:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(), secret, algorithms=["HS256"], options={"require": ["sub"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid token") from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("invalid token")
    return sub
