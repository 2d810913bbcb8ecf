"""The admin console at ``/admin`` and GraphiQL at ``GET /graphql``, both served from files in
this package (no CDN): they work on machines without internet access."""

from core.web.pages import ASSETS, graphiql_html, web_routes

__all__ = ["ASSETS", "graphiql_html", "web_routes"]
