"""Who is calling: service tokens (HS256), OpenID Connect access tokens, the user behind them.

``Authenticator.authenticate(authorization_header)`` is the one way in for every entry point
(HTTP, WebSocket subscriptions, the admin console); it raises ``InvalidToken``.
"""

from core.identity.authenticator import Authenticated, Authenticator
from core.identity.tokens import InvalidToken, issue_token

__all__ = ["Authenticated", "Authenticator", "InvalidToken", "issue_token"]
