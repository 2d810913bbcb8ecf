"""Relay connections: ``edges { cursor node }``, ``pageInfo``, ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar, cast

import strawberry
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from core.api.completed import complete_page
from core.api.context import context_of
from core.services.pagination import Page, SortKey, check_page_size, count_rows, fetch_page

NodeT = TypeVar("NodeT")


@strawberry.type(description="Where a page ends and whether more follow.")
class PageInfo:
    authz_exempt: ClassVar[bool] = True

    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    authz_exempt: ClassVar[bool] = True

    cursor: str
    node: NodeT


@strawberry.type(description="A page of a list; pass `pageInfo.endCursor` as `after` for the next.")
class Connection(Generic[NodeT]):
    authz_exempt: ClassVar[bool] = True

    edges: list[Edge[NodeT]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list has (all pages).")
    async def total_count(self) -> int:
        return await self.count()

    @classmethod
    def of(
        cls,
        page: Page[Any],
        convert: Callable[[Any], NodeT],
        count: Callable[[], Awaitable[int]],
    ) -> Connection[NodeT]:
        edges = [
            Edge(cursor=c, node=convert(item))
            for item, c in zip(page.items, page.cursors, strict=True)
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None
            ),
            count=count,
        )


async def connection(
    info: Info,
    stmt: Select[Any],
    key: SortKey,
    first: int,
    after: str | None,
    convert: Callable[[Any], NodeT],
    value_type: type = str,
) -> Connection[NodeT]:
    """One page of ``stmt`` as a connection; ``totalCount`` is counted only when asked for.

    When the selection allows, the page is completed at once (``core.api.completed``).
    """
    check_page_size(first)
    ctx = context_of(info)

    async def page(session: AsyncSession) -> Page[object]:
        return await fetch_page(session, stmt, key, first, after, value_type=value_type)

    async def count() -> int:
        return await ctx.read(lambda s: count_rows(s, stmt))

    return await page_connection(info, await ctx.read(page), convert, count)


async def page_connection(
    info: Info,
    page: Page[Any],
    convert: Callable[[Any], NodeT],
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    """``page`` (already read) as a connection, completed at once when the selection allows
    (``core.api.completed``)."""
    completed = await complete_page(info, page, convert, count)
    if completed is not None:
        # Execution passes it through as the connection's completed value.
        return cast(Connection[NodeT], completed)
    return Connection.of(page, convert, count)
