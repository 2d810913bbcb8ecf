"""``baton events|db|audit|schema …``: the outbox, migrations, the audit chain and the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli_support import SCHEMA_FILE, DatabaseOption, console, run, settings_for
from core.services import Services
from core.services.audit_chain import VerifyResult
from sdk.specs import WorkflowEvent

events_app = typer.Typer(help="The workflow-event outbox, for integrations.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@events_app.command("list")
def events_list(
    after: Annotated[int | None, typer.Option(help="Only events after this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    database: DatabaseOption = None,
) -> None:
    """Print outbox events as JSON lines, oldest first; poll with --after LAST_ID."""
    import json

    from core.services.events import list_events

    async def work(services: Services) -> list[WorkflowEvent]:
        async with services.db.reader() as session:
            return await list_events(session, after, limit)

    for event in run(settings_for(database), work):
        typer.echo(
            json.dumps(
                {
                    "id": event.id,
                    "kind": event.kind,
                    "at": event.at.isoformat(),
                    "handoverId": event.handover_id,
                    "customerId": event.customer_id,
                    "payload": dict(event.payload),
                }
            )
        )


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Apply all pending migrations."""

    async def work(services: Services) -> str | None:
        await services.db.upgrade()
        return await services.db.current_revision()

    typer.echo(f"database at revision {run(settings_for(database), work, prepare=False)}")


def _verify_chain(database: str | None, anchor: Path | None) -> VerifyResult:
    """Verify the audit chain (against ``anchor``) without migrating the database."""
    from core.services.audit_chain import Anchor, verify

    try:
        expected = Anchor.read(anchor) if anchor is not None else None
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] cannot read the anchor {str(anchor)!r}: {exc}")
        raise typer.Exit(2) from exc

    async def work(services: Services) -> VerifyResult:
        await services.db.require_current()  # verifying must not migrate what it checks
        async with services.db.reader() as session:
            return await verify(session, expected)

    return run(settings_for(database), work, prepare=False)


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        Path | None,
        typer.Option(
            help="A head written earlier by `baton audit anchor`; also catches a removed tail "
            "and a rewritten chain."
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Check the audit log's hash chain; exit 1 naming the first bad entry."""
    result = _verify_chain(database, anchor)
    typer.echo(result.message())
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    out: Annotated[
        Path | None, typer.Option(help="Write the head here (else to standard output).")
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Verify the chain, then write its head as {"seq": n, "hash": h}; keep it off the server
    (e.g. in a ticket or a write-once bucket) for `baton audit verify --anchor`."""
    result = _verify_chain(database, None)
    if not result.ok:
        typer.echo(result.message())
        console.print("[red]error:[/red] the chain is broken; no anchor written")
        raise typer.Exit(1)
    if out is None:
        typer.echo(result.head.to_json(), nl=False)
    else:
        out.write_text(result.head.to_json())
        typer.echo(f"wrote {out}: seq {result.head.seq}, hash {result.head.hash}")


@schema_app.command("export")
def schema_export(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = SCHEMA_FILE,
) -> None:
    """Write the GraphQL schema (SDL) that frontends and codegen use."""
    from core.api.schema import export_sdl

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(export_sdl())
    typer.echo(f"wrote {output}")
