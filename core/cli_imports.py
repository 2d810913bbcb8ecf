"""``baton import activities|surveys FILE``: history in bulk, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from core.clock import SystemClock
from core.insight import imports
from core.services import Actor, Services

import_app = typer.Typer(
    help="Load history in bulk (CSV or JSON lines); nothing is written if any line is bad.",
    no_args_is_help=True,
)
FileArgument = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="A .csv file, or JSON lines.")
]


def _load(path: Path, convert: Any, database: str | None, write: Any) -> int:
    from core.cli_support import console, run, settings_for

    total = sum(1 for _ in path.open(encoding="utf-8"))
    with Progress(console=console) as bar:
        task = bar.add_task(f"Reading {path.name}", total=total)
        rows, errors = imports.parse(
            path, convert, SystemClock().now(), lambda line: bar.update(task, completed=line)
        )
    if errors:
        for error in errors[:50]:
            console.print(f"[red]error:[/red] {error}")
        if len(errors) > 50:
            console.print(f"... and {len(errors) - 50} more")
        console.print(f"{len(errors)} bad line(s): nothing imported")
        raise typer.Exit(1)

    async def work(services: Services) -> int:
        with Progress(console=console) as bar:
            bar.add_task("Writing", total=None)
            return int(await write(services, [row for _, row in rows]))

    return run(settings_for(database), work)


@import_app.command("activities")
def import_activities(
    file: FileArgument,
    database: Annotated[str | None, typer.Option("--database", help="Database URL.")] = None,
) -> None:
    """Orders, interactions, complaints, referrals, payments (columns: customer_id, kind, at,
    amount, category, note, days_late)."""
    count = _load(
        file,
        imports.activity,
        database,
        lambda s, rows: s.tiering.import_activities(Actor.system(), rows),
    )
    typer.echo(f"imported {count} activities")


@import_app.command("surveys")
def import_surveys(
    file: FileArgument,
    database: Annotated[str | None, typer.Option("--database", help="Database URL.")] = None,
) -> None:
    """Survey answers (columns: customer_id, kind, score, reason, answered_at, occasion)."""
    count = _load(
        file,
        imports.answer,
        database,
        lambda s, rows: s.insight.import_answers(Actor.system(), rows),
    )
    typer.echo(f"imported {count} survey answers")
