"""The ``baton`` command for admins and operators."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from core.cli_access import policy_app, role_app, user_app
from core.cli_imports import import_app
from core.cli_insight import insight_app
from core.cli_records import audit_app, db_app, events_app, schema_app
from core.cli_support import DatabaseOption, console, exit_on_error, run, settings_for
from core.clock import SystemClock
from core.config import SECRET_HELP, Settings
from core.logs import LogFormat, logging_config
from core.notify.webhooks_cli import webhooks_app
from core.plugins import load_plugins
from core.services import Actor, Services

WORKER_HEALTHCHECK_SECONDS = 30
app = typer.Typer(help="Baton: key-account ownership service.", no_args_is_help=True)
handovers_app = typer.Typer(help="Handovers and their deadlines.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(policy_app, name="policy")
app.add_typer(handovers_app, name="handovers")
app.add_typer(events_app, name="events")
tiers_app = typer.Typer(help="Value, needs and loyalty tiers.", no_args_is_help=True)
app.add_typer(tiers_app, name="tiers")
plugin_app = typer.Typer(help="Plugin authoring.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")
app.add_typer(role_app, name="role")
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")
app.add_typer(audit_app, name="audit")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database: DatabaseOption = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed demo data into an empty database.")
    ] = False,
    workers: Annotated[
        int, typer.Option(help="Worker processes (more than 1 needs PostgreSQL).")
    ] = 1,
    graceful_timeout: Annotated[
        float | None,
        typer.Option(
            help="On SIGTERM, seconds to let in-flight requests finish (default: no limit)."
        ),
    ] = None,
    log_format: Annotated[
        LogFormat, typer.Option(envvar="BATON_LOG_FORMAT", help="json (one object a line) or text.")
    ] = "json",
    scheduler: Annotated[
        bool,
        typer.Option(
            envvar="BATON_SCHEDULER",
            help="Also run the scheduler (one leader across all processes; see `baton worker`).",
        ),
    ] = True,
) -> None:
    """Serve the GraphQL API (``/graphql``) with probes (``/healthz``, ``/readyz``) and
    ``/metrics``; SIGTERM stops accepting connections, finishes requests, then exits 0."""
    import uvicorn

    from core.identity.tokens import demo_secret, issue_service_token
    from core.serving import multiprocess_metrics, serve_workers

    settings = replace(settings_for(database), scheduler=scheduler)
    if demo and not settings.jwt_secret:
        # A random secret made on the first demo run and kept beside its database, so that
        # the printed token and `baton token` keep working across restarts.
        settings = replace(settings, jwt_secret=demo_secret(settings, create=True) or "")
    problems = settings.problems()
    if problems:
        for problem in problems:
            console.print(f"[red]error:[/red] refusing to start: {problem}")
        raise typer.Exit(1)
    if demo:
        _seed(settings, 200)
        token = issue_service_token(settings, "admin", now=_now(), ttl=timedelta(days=1))
        url = f"http://{host}:{port}/graphql"
        typer.echo(
            f"Baton demo at {url}\nAdmin token (24 h):\n{token}\n"
            f"Try: curl -s {url} -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"query": "{ viewer { user { name } roles } }"}\''
        )
    if workers > 1 and settings.is_sqlite:
        console.print("[red]error:[/red] several workers need PostgreSQL (BATON_DATABASE_URL)")
        raise typer.Exit(1)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": logging_config(log_format),
        "access_log": False,  # Observe writes one access line per request, with its ids
        "timeout_graceful_shutdown": graceful_timeout,
    }
    # uvicorn re-raises SIGTERM once it has shut down gracefully: that is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if workers == 1:
        from core.app import create_app

        uvicorn.run(create_app(settings, freeze_heap=True), **options)
        return
    with multiprocess_metrics():
        # Each worker process builds its own app from the environment.
        os.environ["BATON_DATABASE_URL"] = settings.database_url
        if settings.jwt_secret:  # the demo's secret, when it came from its file
            os.environ["BATON_JWT_SECRET"] = settings.jwt_secret
        os.environ["BATON_SCHEDULER"] = "1" if scheduler else "0"
        # uvicorn replaces a worker that misses one health check; its 5 s default killed
        # workers still starting (plugins, policies, the first pool) on a loaded 2-core host.
        config = uvicorn.Config(
            "core.app:served_app",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
        try:
            serve_workers(config)
        except OSError as error:  # the port is taken, or the address is not this host's
            console.print(f"[red]error:[/red] cannot listen on {host}:{port}: {error}")
            raise typer.Exit(1) from error


@app.command()
def worker(
    database: DatabaseOption = None,
    log_format: Annotated[
        LogFormat, typer.Option(envvar="BATON_LOG_FORMAT", help="json (one object a line) or text.")
    ] = "json",
) -> None:
    """Run the scheduler without serving HTTP: deadline sweeps, the tier review, webhook
    delivery. Any number of workers and `baton serve` processes may run; one leads (a
    PostgreSQL advisory lock; on SQLite a file lock, so one process). SIGTERM or Ctrl-C stops
    at once; the next leader catches up."""
    import logging.config

    from core.notify import scheduler_for

    logging.config.dictConfig(logging_config(log_format))
    settings = settings_for(database)

    async def work(services: Services) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = scheduler_for(services, settings)
        runner.start()
        await stop.wait()
        await runner.stop()

    run(settings, work)


def _now() -> datetime:
    return SystemClock().now()


def _seed(settings: Settings, customers: int) -> None:
    from core.demo import seed_demo

    async def work(services: Services) -> bool:
        with Progress(console=console) as bar:
            task = bar.add_task("Seeding demo customers", total=customers)
            return await seed_demo(services, customers, progress=lambda n: bar.advance(task, n))

    if not run(settings, work):
        console.print("Database already has users; demo data not added.")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many customers to create.")] = 200,
    database: DatabaseOption = None,
) -> None:
    """Seed the demo data set into an empty database."""
    _seed(settings_for(database), customers)


@app.command()
def assign(
    all_customers: Annotated[bool, typer.Option("--all", help="Every customer.")] = False,
    customer: Annotated[
        list[str] | None, typer.Option(help="A customer id; repeat for more.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the effect, write nothing.")
    ] = False,
    batch: Annotated[int, typer.Option(help="Customers per transaction.")] = 1000,
    database: DatabaseOption = None,
) -> None:
    """Apply the live assignment rules: assign unowned customers, and open RULE_REALIGNMENT
    requests for owned ones whose outcome differs."""
    from sqlalchemy import select

    from core.domain import Customer

    if all_customers == bool(customer):
        console.print("[red]error:[/red] give --all or at least one --customer")
        raise typer.Exit(2)

    async def work(services: Services) -> tuple[int, int, int]:
        ids = customer or []
        if all_customers:
            async with services.db.reader() as session:
                ids = list(await session.scalars(select(Customer.id).order_by(Customer.id)))
        if dry_run:  # one exact plan over all of them
            async with services.db.reader() as session:
                plan = await services.assignment.preview(session, ids)
            assigned = sum(1 for m in plan.moves if m.from_owner_id is None)
            return assigned, len(plan.moves) - assigned, plan.unassigned
        assigned = requests = 0
        with Progress(console=console) as bar:
            task = bar.add_task("Assigning", total=len(ids))
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                result = await services.assignment.run(Actor.system(), chunk, dry_run=False)
                assigned += len(result.assigned)
                requests += len(result.requests)
                bar.advance(task, len(chunk))
        return assigned, requests, -1

    assigned, requests, unassigned = run(settings_for(database), work)
    prefix = "would assign" if dry_run else "assigned"
    typer.echo(
        f"{prefix} {assigned} customers; "
        f"{'would open' if dry_run else 'opened'} {requests} RULE_REALIGNMENT requests"
        + (f"; {unassigned} no rule decides" if unassigned >= 0 else "")
    )


@app.command()
def token(
    user_id: Annotated[str, typer.Argument(help="The user's id.")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    database: DatabaseOption = None,
) -> None:
    """Print a service token (HS256 JWT, signed with BATON_JWT_SECRET, else the demo's
    secret) for an active user."""
    from core.identity.tokens import demo_secret, issue_service_token
    from core.services.users import load_user

    settings = settings_for(database)

    async def work(services: Services) -> bool:
        async with services.db.reader() as session:
            return (await load_user(session, user_id)).active

    if not run(settings, work):
        console.print(f"[red]error:[/red] user {user_id!r} is deactivated")
        raise typer.Exit(1)
    if not settings.jwt_secret:
        settings = replace(settings, jwt_secret=demo_secret(settings, create=False) or "")
    if not settings.jwt_secret:
        console.print(f"[red]error:[/red] cannot sign a token: {SECRET_HELP}")
        raise typer.Exit(1)
    typer.echo(issue_service_token(settings, user_id, now=_now(), ttl=timedelta(seconds=ttl)))


@app.command()
def doctor(database: DatabaseOption = None) -> None:
    """Print the effective settings (secrets masked) and each problem found; exit 1 if any."""
    with exit_on_error(ValueError):
        settings = settings_for(database)
    for name, value in settings.effective().items():
        typer.echo(f"{name}={value}")
    problems = settings.problems()
    for problem in problems:
        typer.echo(f"problem: {problem}")
    if problems:
        raise typer.Exit(1)
    typer.echo("no problems found")


@handovers_app.command("overdue")
def handovers_overdue(database: DatabaseOption = None) -> None:
    """List open handovers whose pending step is past its deadline, most overdue first."""
    from sqlalchemy import select

    from core.domain import Handover
    from core.services.handover import FINAL

    async def work(services: Services) -> list[Handover]:
        now = services.clock.now()
        async with services.db.reader() as session:
            stmt = select(Handover).where(Handover.status.not_in(FINAL), Handover.due_at < now)
            return list(await session.scalars(stmt.order_by(Handover.due_at)))

    late = run(settings_for(database), work)
    for h in late:
        typer.echo(
            f"{h.id}  {h.status:<18} due {h.due_at:%Y-%m-%d %H:%M}  customer {h.customer_id}"
            f"  {h.from_owner_id or '-'} -> {h.to_owner_id}"
        )
    typer.echo(f"{len(late)} overdue handover(s)")


@handovers_app.command("sweep")
def handovers_sweep(database: DatabaseOption = None) -> None:
    """Record DUE_SOON and OVERDUE events for open handovers (once per deadline); run it
    periodically, e.g. from cron every 15 minutes."""

    async def work(services: Services) -> dict[str, int]:
        return await services.handover.sweep_deadlines()

    counts = run(settings_for(database), work)
    typer.echo(", ".join(f"{n} new {kind}" for kind, n in counts.items()))


@tiers_app.command("review")
def tiers_review(
    database: DatabaseOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the movements, write nothing.")
    ] = False,
) -> None:
    """The quarterly tier review: recompute every customer's value, needs and loyalty tier,
    audit each change and print the movements."""

    async def work(services: Services) -> Any:
        with Progress(console=console) as bar:
            task = bar.add_task("Reviewing tiers", total=None)
            return await services.tiering.review(
                Actor.system(),
                dry_run=dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    result = run(settings_for(database), work)
    for m in result.movements:
        typer.echo(f"{m.customer_id}  {m.tier:<8} {m.before or '-'} -> {m.after}  ({m.reason})")
    summary = f"reviewed {result.reviewed} customers, {len(result.movements)} tier movement(s)"
    typer.echo(f"dry run, nothing written: {summary}" if dry_run else summary)


@app.command("plugins")
def plugins_list() -> None:
    """List the plugins this installation loads (BATON_PLUGINS applies): name, version, hooks."""
    with exit_on_error():
        registry = load_plugins(Settings.from_env().plugins)
    for p in registry.plugins:
        typer.echo(f"{p.name} {p.version}")
        for hook in p.hooks:
            typer.echo(f"  {hook}")
    typer.echo(f"{len(registry.plugins)} plugin(s)")


@plugin_app.command("new")
def plugin_new(
    name: Annotated[str, typer.Argument(help="The plugin's name: lower_snake_case.")],
    directory: Annotated[Path, typer.Option(help="Where to create baton-NAME/.")] = Path("."),
) -> None:
    """Scaffold an installable plugin package whose contract tests pass out of the box."""
    from core.scaffold import scaffold

    with exit_on_error(ValueError, FileExistsError):
        root = scaffold(name, directory)
    typer.echo(f"created {root}: cd there, `pip install -e .`, then `pytest`")


app.add_typer(webhooks_app, name="webhooks")
app.add_typer(import_app, name="import")
app.add_typer(insight_app, name="insight")
