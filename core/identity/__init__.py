"""Who is calling: service tokens (HS256), OpenID Connect access tokens, the user behind them.

``Authenticator.authenticate(authorization_header)`` is the one way in for every entry point
(HTTP, WebSocket subscriptions, the admin console); it raises ``InvalidToken``.
"""

from core.identity.authenticator import Authenticator
from core.identity.tokens import InvalidToken, issue_token

__all__ = ["Authenticator", "InvalidToken", "issue_token"]
