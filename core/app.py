"""The Starlette application: ``/graphql``, probes, and start-up (migrations, schema)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from core import metrics
from core.api.http import GraphQLEndpoint, json_response
from core.api.limits import QueryLimits
from core.api.observe import Observe
from core.api.schema import build_schema
from core.calendar import WorkingCalendar
from core.clock import Clock
from core.config import InsecureSettings, Settings
from core.db import Database
from core.http_security import browser_middleware
from core.identity import Authenticator
from core.insight.segments import EngagementRule
from core.notify import Scheduler, scheduler_for
from core.notify.subscriptions import EventHub
from core.notify.subscriptions_ws import SubscriptionEndpoint
from core.plugins import PluginRegistry, load_plugins
from core.services import Services
from core.web import web_routes

log = logging.getLogger("baton")
# A probe must answer before the orchestrator's own timeout (commonly 1 s to a few).
READY_TIMEOUT = 1.5


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    plugins: PluginRegistry | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """Build the ASGI app with its plugins (by default those ``settings.plugins`` allows).

    ``freeze_heap`` (for a server process, ``served_app``): once started, everything alive
    (modules, the schema, mappers, policies) is moved out of the garbage collector's view
    (``gc.freeze``), so that a full collection under load scans only what requests created,
    not the whole start-up heap (the mixed load run in one process: the longest full
    collection, which stops the event loop, went from 190 ms to 74 ms).

    A broken plugin raises ``PluginError`` here, before anything serves, and unsafe settings
    (no way to sign in, a weak or public JWT secret: ``Settings.problems``) raise
    ``InsecureSettings``. SQLite databases are migrated on start; PostgreSQL must be current.
    """
    settings = settings or Settings.from_env()
    plugins = plugins if plugins is not None else load_plugins(settings.plugins)
    problems = settings.problems()
    if problems:
        raise InsecureSettings(problems)
    db = Database(
        settings.database_url,
        echo=settings.log_sql,
        connect_timeout=settings.db_connect_timeout,
        command_timeout=settings.db_command_timeout,
    )
    hub = EventHub(db)
    scheduler: Scheduler | None = None

    def wake_senders(event: object) -> None:
        if scheduler is not None:  # events written here go out now, not at the next interval
            scheduler.events_written()

    services = Services.create(
        db,
        clock,
        WorkingCalendar(settings.holidays),
        plugins=plugins,
        event_subscribers=[hub.on_outbox, wake_senders],
        engagement=EngagementRule(
            settings.engagement_new_days,
            settings.engagement_active_days,
            settings.engagement_churned_days,
        ),
    )
    limits = QueryLimits(
        settings.max_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.max_cost,
        settings.introspection,
    )
    schema = build_schema(plugins, authorization=settings.authorization, limits=limits)
    authenticator = Authenticator(settings, db, services.authz, services.users)
    endpoint = GraphQLEndpoint(schema, services, settings, authenticator)
    scheduler = scheduler_for(services, settings) if settings.scheduler else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.prepare()
        await services.authz.start()
        await hub.start()
        if scheduler is not None:
            scheduler.start()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        yield
        if scheduler is not None:
            await scheduler.stop()
        await hub.stop()
        await services.authz.stop()
        await db.dispose()

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            await db.ping(timeout=READY_TIMEOUT)
        except Exception:  # any failure to answer means "not ready"
            log.warning("readiness check failed", exc_info=True)
            return json_response({"status": "unavailable"}, 503)
        return json_response({"status": "ready"})

    async def metrics_text(request: Request) -> Response:
        body, media_type = metrics.render()
        return Response(body, media_type=media_type)

    app = Starlette(
        routes=[
            Route("/graphql", endpoint.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            WebSocketRoute(
                "/graphql", SubscriptionEndpoint(schema, services, settings, hub, authenticator)
            ),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_text),
            *web_routes(),
        ],
        middleware=[Middleware(Observe), *browser_middleware(settings.cors_origins)],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.settings = settings
    app.state.schema = schema
    app.state.events = hub
    app.state.authenticator = authenticator
    app.state.scheduler = scheduler
    return app


def served_app() -> Starlette:
    """The app of a ``baton serve`` process (each worker's, built from the environment)."""
    return create_app(freeze_heap=True)
