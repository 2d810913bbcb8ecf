"""Browser-facing protections for every response: security headers and CORS (off unless
``BATON_CORS_ORIGINS`` names origins)."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Pages may only use what Baton itself serves: no inline scripts, no third-party hosts, no
# framing. Other HTML pages (GraphiQL, /admin) are built to work under exactly this policy.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HTML_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
)
EVERY_RESPONSE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Adds ``nosniff`` and ``no-referrer`` to every response, and the CSP and
    ``X-Frame-Options: DENY`` to every ``text/html`` one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                extra = list(EVERY_RESPONSE_HEADERS)
                if content_type.startswith(b"text/html"):
                    extra += HTML_HEADERS
                headers += [(n, v) for n, v in extra if n not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def browser_middleware(cors_origins: tuple[str, ...]) -> list[Middleware]:
    """The security headers, and CORS for the named origins (bearer tokens, no cookies)."""
    middleware = [Middleware(SecurityHeaders)]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
                expose_headers=["X-Request-Id", "Idempotent-Replayed"],
                max_age=600,
            )
        )
    return middleware
