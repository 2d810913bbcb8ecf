"""The console's and GraphiQL's pages as served: every asset from Baton itself (no CDN), no
inline script (they run under a `script-src 'self'` policy), licences beside vendored code."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from core.web.pages import STATIC

ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"')
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+=", re.I)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://baton.test") as client:
        yield client


@pytest.mark.parametrize("path", ["/admin/", "/graphql"])
async def test_pages_load_everything_from_baton_without_inline_script(
    http: httpx.AsyncClient, path: str
) -> None:
    page = await http.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not INLINE_SCRIPT.search(html) and not INLINE_HANDLER.search(html)
    assets = [a for a in ASSET.findall(html) if not a.startswith(("#", "data:"))]
    assert assets and all(a.startswith("/admin/assets/") for a in assets), assets
    for asset in assets:
        response = await http.get(asset)
        assert response.status_code == 200, asset
    # the console's own modules import only each other
    if path == "/admin/":
        for module in (STATIC / "admin").glob("*.js"):
            imports = re.findall(r'from "([^"]+)"', module.read_text())
            assert all(i.startswith("./") for i in imports), (module.name, imports)


async def test_admin_redirects_to_the_console(http: httpx.AsyncClient) -> None:
    response = await http.get("/admin")
    assert (response.status_code, response.headers["location"]) == (308, "/admin/")


def test_each_vendored_library_keeps_its_licence() -> None:
    vendor = STATIC / "vendor"
    libraries = [d for d in vendor.iterdir() if d.is_dir()]
    assert {d.name for d in libraries} == {"graphiql-3.8.3", "react-18.3.1", "react-dom-18.3.1"}
    readme = (vendor / "README.md").read_text()
    for library in libraries:
        assert (library / "LICENSE").read_text().startswith("MIT License"), library.name
        assert f"`{library.name}/`" in readme
