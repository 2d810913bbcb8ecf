"""What every ``baton`` command shares: the console, the ``--database`` option, settings, and
running async work against the database with domain errors printed as one line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from core.calendar import WorkingCalendar
from core.config import Settings
from core.db import Database, NotMigrated
from core.errors import BatonError
from core.logs import current_request_id
from core.plugins import PluginError, load_plugins
from core.services import Services

console = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL; else BATON_DATABASE_URL, else ./baton.db."),
]
SCHEMA_FILE = Path("schema/schema.graphql")


def settings_for(database: str | None) -> Settings:
    return Settings.from_env(database_url=database)


def run(settings: Settings, work: Callable[[Services], Awaitable[T]], *, prepare: bool = True) -> T:
    """Run one piece of async work against the database, turning domain errors into exit 1."""

    async def main() -> T:
        db = Database(settings.database_url)
        try:
            services = Services.create(
                db,
                calendar=WorkingCalendar(settings.holidays),
                plugins=load_plugins(settings.plugins),
            )
            if prepare:
                await services.prepare()
            return await work(services)
        finally:
            await db.dispose()

    current_request_id.set("cli")
    with exit_on_error():
        return asyncio.run(main())


@contextmanager
def exit_on_error(*more: type[Exception]) -> Iterator[None]:
    """Print a domain error (or one of ``more``) as one line and exit 1, without a traceback."""
    handled: tuple[type[Exception], ...] = (BatonError, NotMigrated, PluginError, *more)
    try:
        yield
    except handled as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
