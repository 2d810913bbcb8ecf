"""The ``baton`` command for admins and operators."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from core.auth import issue_token
from core.calendar import WorkingCalendar
from core.clock import SystemClock
from core.config import Settings
from core.db import Database, NotMigrated
from core.errors import BatonError
from core.logs import LogFormat, current_request_id, logging_config
from core.plugins import PluginError, builtin_plugins, load_plugins
from core.services import Actor, Services
from core.services.audit_chain import VerifyResult
from sdk.specs import WorkflowEvent

app = typer.Typer(help="Baton: key-account ownership service.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
handovers_app = typer.Typer(help="Handovers and their deadlines.", no_args_is_help=True)
policy_app = typer.Typer(help="Role permissions (Casbin policies).", no_args_is_help=True)
role_app = typer.Typer(help="Which users have which roles.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(policy_app, name="policy")
app.add_typer(handovers_app, name="handovers")
events_app = typer.Typer(help="The workflow-event outbox, for integrations.", no_args_is_help=True)
app.add_typer(events_app, name="events")
tiers_app = typer.Typer(help="Value, needs and loyalty tiers.", no_args_is_help=True)
app.add_typer(tiers_app, name="tiers")
plugin_app = typer.Typer(help="Plugin authoring.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")
app.add_typer(role_app, name="role")
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

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
    with _exit_on_error():
        return asyncio.run(main())


@contextmanager
def _exit_on_error(*more: type[Exception]) -> Iterator[None]:
    """Print a domain error (or one of ``more``) as one line and exit 1, without a traceback."""
    handled: tuple[type[Exception], ...] = (BatonError, NotMigrated, PluginError, *more)
    try:
        yield
    except handled as exc:
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
) -> None:
    """Serve the GraphQL API (``/graphql``) with probes (``/healthz``, ``/readyz``) and
    ``/metrics``; SIGTERM stops accepting connections, finishes requests, then exits 0."""
    import uvicorn

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

        uvicorn.run(create_app(settings), **options)
        return
    with _multiprocess_metrics():
        # Each worker process builds its own app from the environment.
        os.environ["BATON_DATABASE_URL"] = settings.database_url
        uvicorn.run("core.app:create_app", factory=True, workers=workers, **options)


@contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """Workers share their metrics through PROMETHEUS_MULTIPROC_DIR: a fresh directory
    for this run unless the operator gave one (which they must empty between runs)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="baton-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


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

    assigned, requests, unassigned = _run(_settings(database), work)
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


RoleArg = Annotated[str, typer.Argument(help="Role, e.g. finance.")]
ObjectArg = Annotated[str, typer.Argument(help="Type.field, Type.*, Mutation.name or *.")]
ActionArg = Annotated[str, typer.Argument(help="read, write or call.")]


@policy_app.command("list")
def policy_list(
    role: Annotated[str | None, typer.Option(help="Only this role.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Print each role's inherited roles and own permissions."""

    async def work(services: Services) -> None:
        async with services.db.reader() as session:
            for policy in await services.policies.role_policies(session, role):
                inherits = f" (inherits {', '.join(policy.inherits)})" if policy.inherits else ""
                typer.echo(f"{policy.role}{inherits}")
                for obj, action in policy.permissions:
                    typer.echo(f"  {action:<12} {obj}")

    _run(_settings(database), work)


@policy_app.command("matrix")
def policy_matrix() -> None:
    """Print the default roles' permissions on every guarded field and operation (Markdown)."""
    from core.api.guard import policy_objects
    from core.api.schema import build_schema
    from core.authz.matrix import default_views, matrix_markdown

    builtins = builtin_plugins()
    fields, operations = policy_objects(build_schema(builtins)._schema)
    typer.echo(matrix_markdown(fields, operations, default_views(builtins.plugins)), nl=False)


@policy_app.command("grant")
def policy_grant(
    role: RoleArg, obj: ObjectArg, action: ActionArg, database: DatabaseOption = None
) -> None:
    """Allow a role an action on an object (a new role is created by its first grant)."""

    async def work(services: Services) -> None:
        await services.policies.grant(Actor.system(), role, obj, action)

    _run(_settings(database), work)
    typer.echo(f"granted {action} on {obj} to {role}")


@policy_app.command("revoke")
def policy_revoke(
    role: RoleArg, obj: ObjectArg, action: ActionArg, database: DatabaseOption = None
) -> None:
    """Withdraw a permission from a role."""

    async def work(services: Services) -> None:
        await services.policies.revoke(Actor.system(), role, obj, action)

    _run(_settings(database), work)
    typer.echo(f"revoked {action} on {obj} from {role}")


def _assign(user_id: str, role: str, database: str | None, *, add: bool) -> None:
    async def work(services: Services) -> object:
        return await services.policies.assign_role(Actor.system(), user_id, role, add=add)

    _run(_settings(database), work)
    typer.echo(f"{'assigned' if add else 'unassigned'} {role} {'to' if add else 'from'} {user_id}")


@role_app.command("assign")
def role_assign(
    user_id: Annotated[str, typer.Argument(metavar="USER")],
    role: RoleArg,
    database: DatabaseOption = None,
) -> None:
    """Give a user a role."""
    _assign(user_id, role, database, add=True)


@role_app.command("unassign")
def role_unassign(
    user_id: Annotated[str, typer.Argument(metavar="USER")],
    role: RoleArg,
    database: DatabaseOption = None,
) -> None:
    """Take a role away from a user."""
    _assign(user_id, role, database, add=False)


@user_app.command("deactivate")
def user_deactivate(
    user_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option(help="Recorded in the audit log.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Deactivate a user; their customers pass to backups (INTERIM) with OWNER_LEFT requests."""

    async def work(services: Services) -> int:
        with Progress(console=console, transient=True) as bar:
            bar.add_task(f"Releasing {user_id}'s customers (one transaction)", total=None)
            _, requests = await services.users.deactivate(Actor.system(), user_id, reason)
        return len(requests)

    opened = _run(_settings(database), work)
    typer.echo(f"deactivated {user_id}; opened {opened} OWNER_LEFT requests")


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

    late = _run(_settings(database), work)
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

    counts = _run(_settings(database), work)
    typer.echo(", ".join(f"{n} new {kind}" for kind, n in counts.items()))


@tiers_app.command("review")
def tiers_review(database: DatabaseOption = None) -> None:
    """The quarterly tier review: recompute every customer's value, needs and loyalty tier,
    audit each change and print the movements."""

    async def work(services: Services) -> Any:
        with Progress(console=console) as bar:
            task = bar.add_task("Reviewing tiers", total=None)
            return await services.tiering.review(
                Actor.system(),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    result = _run(_settings(database), work)
    for m in result.movements:
        typer.echo(f"{m.customer_id}  {m.tier:<8} {m.before or '-'} -> {m.after}  ({m.reason})")
    typer.echo(f"reviewed {result.reviewed} customers, {len(result.movements)} tier movement(s)")


@app.command("plugins")
def plugins_list() -> None:
    """List the plugins this installation loads (BATON_PLUGINS applies): name, version, hooks."""
    with _exit_on_error():
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

    with _exit_on_error(ValueError, FileExistsError):
        root = scaffold(name, directory)
    typer.echo(f"created {root}: cd there, `pip install -e .`, then `pytest`")


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

    for event in _run(_settings(database), work):
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

    typer.echo(f"database at revision {_run(_settings(database), work, prepare=False)}")


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

    return _run(_settings(database), work, prepare=False)


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
