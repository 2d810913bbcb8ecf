"""Routes for the console's page and the static assets, and the GraphiQL page."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# Where the assets are served; the HTML pages refer to them by this path.
ASSETS = "/admin/assets"


@cache
def _page(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def graphiql_html() -> str:
    """GraphiQL with its vendored React and CSS; the scripts are files (no inline script)."""
    return _page("graphiql/index.html")


async def admin_page(request: Request) -> Response:
    return HTMLResponse(_page("admin/index.html"))


async def to_admin(request: Request) -> Response:
    return RedirectResponse("/admin/", status_code=308)


def web_routes() -> list[BaseRoute]:
    """``/admin/`` (the console) and ``/admin/assets/…`` (every script, style and licence)."""
    return [
        Route("/admin", to_admin),
        Route("/admin/", admin_page),
        Mount(ASSETS, app=StaticFiles(directory=STATIC), name="admin-assets"),
    ]
