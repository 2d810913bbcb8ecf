"""``baton webhooks …``: the admin's command-line side of webhooks (same use cases as the
GraphQL mutations, audited as the system actor)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from core.cli_support import DatabaseOption, run, settings_for
from core.config import Settings
from core.domain import DeliveryState, WebhookDelivery, WebhookEndpoint
from core.notify import webhooks as w
from core.services import Actor, Services

webhooks_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)

EventOption = Annotated[
    list[str] | None,
    typer.Option("--event", help="An event type (HANDOVER_OPENED, DUE_SOON, …); repeat."),
]
StateOption = Annotated[DeliveryState | None, typer.Option(help="Only deliveries in this state.")]


def _service(services: Services) -> w.WebhookService:
    allow_private = Settings.from_env().webhook_allow_private
    return w.WebhookService(services.db, services.clock, allow_private=allow_private)


def _echo_secret(endpoint: WebhookEndpoint, secret: str) -> None:
    typer.echo(f"endpoint {endpoint.id}\nsecret {secret}\n(the secret is shown only this once)")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https URL (plain http only to localhost).")],
    role: Annotated[str, typer.Option(help="The role whose field permissions shape payloads.")],
    event: EventOption = None,
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Register an endpoint and print its signing secret (shown this once)."""

    async def work(services: Services) -> tuple[WebhookEndpoint, str]:
        given = w.EndpointInput(url, event or [], role, description)
        return await _service(services).create(Actor.system(), given)

    _echo_secret(*run(settings_for(database), work))


@webhooks_app.command("update")
def webhooks_update(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[str | None, typer.Option()] = None,
    role: Annotated[str | None, typer.Option()] = None,
    event: EventOption = None,
    description: Annotated[str | None, typer.Option()] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Resume or pause the endpoint.")
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Change an endpoint; only the options given change."""

    async def work(services: Services) -> WebhookEndpoint:
        given = w.EndpointInput(url, event, role, description, active)
        return await _service(services).update(Actor.system(), endpoint_id, given)

    endpoint = run(settings_for(database), work)
    typer.echo(f"updated {endpoint.id}")


@webhooks_app.command("rotate-secret")
def webhooks_rotate(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")], database: DatabaseOption = None
) -> None:
    """Print a new signing secret; the old one also signs for 24 hours."""

    async def work(services: Services) -> tuple[WebhookEndpoint, str]:
        return await _service(services).rotate_secret(Actor.system(), endpoint_id)

    _echo_secret(*run(settings_for(database), work))


@webhooks_app.command("list")
def webhooks_list(database: DatabaseOption = None) -> None:
    """Print the endpoints: id, active or paused, role, event types, URL."""

    async def work(services: Services) -> list[WebhookEndpoint]:
        async with services.db.reader() as session:
            stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            return list(await session.scalars(stmt))

    found = run(settings_for(database), work)
    for e in found:
        state = "active" if e.active else "paused"
        typer.echo(f"{e.id}  {state:<6}  {e.role:<16} {','.join(e.event_types)}  {e.url}")
    typer.echo(f"{len(found)} endpoint(s)")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    endpoint_id: Annotated[str, typer.Argument(metavar="ENDPOINT_ID")],
    state: StateOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    database: DatabaseOption = None,
) -> None:
    """Print an endpoint's deliveries, newest first."""

    async def work(services: Services) -> list[WebhookDelivery]:
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if state is not None:
            stmt = stmt.where(WebhookDelivery.state == state)
        stmt = stmt.order_by(WebhookDelivery.id.desc()).limit(limit)
        async with services.db.reader() as session:
            return list(await session.scalars(stmt))

    for d in run(settings_for(database), work):
        typer.echo(
            f"{w.delivery_id(d)}  evt_{d.event_id}  {d.state.value:<9} attempts {d.attempts}"
            f"  last {d.last_status or '-'} {d.last_error or ''}".rstrip()
        )


@webhooks_app.command("replay")
def webhooks_replay(
    delivery_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[DELIVERY_ID]...", help="whd_… ids.")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Every delivery of this endpoint …")] = None,
    state: StateOption = None,
    database: DatabaseOption = None,
) -> None:
    """Send deliveries again (same event ids, attempts start over) at the next run."""

    async def work(services: Services) -> list[WebhookDelivery]:
        return await _service(services).replay(
            Actor.system(),
            delivery_ids=[w.parse_delivery_id(i) for i in delivery_ids or []],
            endpoint_id=endpoint,
            state=state,
        )

    typer.echo(f"queued {len(run(settings_for(database), work))} delivery(ies) again")
