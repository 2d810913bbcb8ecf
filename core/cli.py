"""The ``baton`` command for admins and operators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from core.auth import issue_token
from core.clock import SystemClock
from core.config import Settings
from core.db import Database, NotMigrated
from core.errors import BatonError
from core.services import Actor, Services
from core.services.audit import current_request_id

app = typer.Typer(help="Baton: key-account ownership service.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")

console = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL; else BATON_DATABASE_URL, else ./baton.db."),
]
SCHEMA_FILE = Path("schema/schema.graphql")


def _settings(database: str | None) -> Settings:
    return Settings.from_env(database_url=database)


def _run(
    settings: Settings, work: Callable[[Services], Awaitable[T]], *, prepare: bool = True
) -> T:
    """Run one piece of async work against the database, turning domain errors into exit 1."""

    async def main() -> T:
        db = Database(settings.database_url)
        try:
            services = Services.create(db)
            if prepare:
                await services.prepare()
            return await work(services)
        finally:
            await db.dispose()

    current_request_id.set("cli")
    try:
        return asyncio.run(main())
    except (BatonError, NotMigrated) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database: DatabaseOption = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed demo data into an empty database.")
    ] = False,
) -> None:
    """Serve the GraphQL API (``/graphql``) with probes (``/healthz``, ``/readyz``)."""
    import uvicorn

    from core.app import create_app

    settings = _settings(database)
    if demo:
        _seed(settings, 200)
        token = issue_token("admin", settings.jwt_secret, now=_now(), ttl=timedelta(days=1))
        url = f"http://{host}:{port}/graphql"
        typer.echo(
            f"Baton demo at {url}\nAdmin token (24 h):\n{token}\n"
            f"Try: curl -s {url} -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"query": "{ viewer { user { name } roles } }"}\''
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _now() -> datetime:
    return SystemClock().now()


def _seed(settings: Settings, customers: int) -> None:
    from core.demo import seed_demo

    async def work(services: Services) -> bool:
        with Progress(console=console) as bar:
            task = bar.add_task("Seeding demo customers", total=customers)
            return await seed_demo(services, customers, progress=lambda n: bar.advance(task, n))

    if not _run(settings, work):
        console.print("Database already has users; demo data not added.")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many customers to create.")] = 200,
    database: DatabaseOption = None,
) -> None:
    """Seed the demo data set into an empty database."""
    _seed(_settings(database), customers)


@app.command()
def token(
    user_id: Annotated[str, typer.Argument(help="The user's id.")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    database: DatabaseOption = None,
) -> None:
    """Print a bearer token (JWT) for an active user."""
    from core.services.users import load_user

    settings = _settings(database)

    async def work(services: Services) -> bool:
        async with services.db.reader() as session:
            return (await load_user(session, user_id)).active

    if not _run(settings, work):
        console.print(f"[red]error:[/red] user {user_id!r} is deactivated")
        raise typer.Exit(1)
    typer.echo(issue_token(user_id, settings.jwt_secret, now=_now(), ttl=timedelta(seconds=ttl)))


@user_app.command("add")
def user_add(
    user_id: Annotated[str, typer.Argument(metavar="ID", help="Lower-case id, e.g. am.chen.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[list[str] | None, typer.Option(help="A role; repeat for more.")] = None,
    manager: Annotated[str | None, typer.Option(help="Id of the user's manager.")] = None,
    team: Annotated[str | None, typer.Option(help="Team name.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    capacity: Annotated[int | None, typer.Option(help="Most customers the user may own.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Create a user with roles (stored in the policy store)."""

    async def work(services: Services) -> None:
        await services.users.create(
            Actor.system(),
            user_id,
            name,
            email=email,
            roles=role or [],
            manager_id=manager,
            team=team,
            capacity=capacity,
        )

    _run(_settings(database), work)
    typer.echo(f"created user {user_id}")


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Apply all pending migrations."""

    async def work(services: Services) -> str | None:
        await services.db.upgrade()
        return await services.db.current_revision()

    typer.echo(f"database at revision {_run(_settings(database), work, prepare=False)}")


@schema_app.command("export")
def schema_export(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = SCHEMA_FILE,
) -> None:
    """Write the GraphQL schema (SDL) that frontends and codegen use."""
    from core.api.schema import export_sdl

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(export_sdl())
    typer.echo(f"wrote {output}")
