"""Policy lines in ``casbin_rule``: role grants (``g, user, role``) and known roles."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain import CasbinRule


async def roles_of(session: AsyncSession, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """The roles assigned to each user (one query for any number of users)."""
    ids = list(user_ids)
    result: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return result
    rows = await session.execute(
        select(CasbinRule.v0, CasbinRule.v1)
        .where(CasbinRule.ptype == "g", CasbinRule.v0.in_(ids))
        .order_by(CasbinRule.v0, CasbinRule.v1)
    )
    for user_id, role in rows:
        result[str(user_id)].append(str(role))
    return result


async def known_roles(session: AsyncSession) -> set[str]:
    """Roles that exist: every role has at least one ``p`` line (a permission or its scope)."""
    rows = await session.scalars(select(CasbinRule.v0).where(CasbinRule.ptype == "p").distinct())
    return {str(r) for r in rows}


def grant_roles(session: AsyncSession, user_id: str, roles: Iterable[str]) -> None:
    """Add ``g`` lines for the user; the caller validated the role names."""
    for role in roles:
        session.add(CasbinRule(ptype="g", v0=user_id, v1=role))
