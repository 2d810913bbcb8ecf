"""GraphiQL, served from Baton's own files so that it runs under the app's Content Security
Policy (``core.http_security``): no inline script, no third-party host."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/graphiql/static"

PAGE = f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Baton GraphiQL</title>
    <link rel="stylesheet" href="{PREFIX}/graphiql.min.css">
    <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="{PREFIX}/react.production.min.js"></script>
    <script src="{PREFIX}/react-dom.production.min.js"></script>
    <script src="{PREFIX}/graphiql.min.js"></script>
    <script src="{PREFIX}/init.js"></script>
  </body>
</html>
"""


def graphiql_assets() -> Mount:
    """The route serving GraphiQL's scripts and styles."""
    return Mount(PREFIX, StaticFiles(directory=STATIC), name="graphiql-static")
