"""``baton user|policy|role …``: users, role permissions and who has which role."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress

from core.cli_support import DatabaseOption, console, run, settings_for
from core.plugins import builtin_plugins
from core.services import Actor, Services

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
policy_app = typer.Typer(help="Role permissions (Casbin policies).", no_args_is_help=True)
role_app = typer.Typer(help="Which users have which roles.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    user_id: Annotated[str, typer.Argument(metavar="ID", help="Lower-case id, e.g. am.chen.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[list[str] | None, typer.Option(help="A role; repeat for more.")] = None,
    manager: Annotated[str | None, typer.Option(help="Id of the user's manager.")] = None,
    team: Annotated[str | None, typer.Option(help="Team name.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    capacity: Annotated[int | None, typer.Option(help="Most customers the user may own.")] = None,
    locale: Annotated[str | None, typer.Option(help="E-mail language: zh or en.")] = None,
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
            locale=locale,
        )

    run(settings_for(database), work)
    typer.echo(f"created user {user_id}")


@user_app.command("locale")
def user_locale(
    user_id: Annotated[str, typer.Argument(metavar="ID")],
    locale: Annotated[str, typer.Argument(help="zh or en; 'default' for the server's default.")],
    database: DatabaseOption = None,
) -> None:
    """Set the language of a user's e-mails (audited)."""

    async def work(services: Services) -> None:
        chosen = None if locale == "default" else locale
        await services.users.set_locale(Actor.system(), user_id, chosen)

    run(settings_for(database), work)
    typer.echo(f"user {user_id}: e-mail locale {locale}")


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

    run(settings_for(database), work)


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

    run(settings_for(database), work)
    typer.echo(f"granted {action} on {obj} to {role}")


@policy_app.command("revoke")
def policy_revoke(
    role: RoleArg, obj: ObjectArg, action: ActionArg, database: DatabaseOption = None
) -> None:
    """Withdraw a permission from a role."""

    async def work(services: Services) -> None:
        await services.policies.revoke(Actor.system(), role, obj, action)

    run(settings_for(database), work)
    typer.echo(f"revoked {action} on {obj} from {role}")


def _assign(user_id: str, role: str, database: str | None, *, add: bool) -> None:
    async def work(services: Services) -> object:
        return await services.policies.assign_role(Actor.system(), user_id, role, add=add)

    run(settings_for(database), work)
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
            _, requests, _ = await services.users.deactivate(Actor.system(), user_id, reason)
        return len(requests)

    opened = run(settings_for(database), work)
    typer.echo(f"deactivated {user_id}; opened {opened} OWNER_LEFT requests")
