"""Relay connections: ``edges { cursor node }``, ``pageInfo``, ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, cast

import strawberry
from sqlalchemy import Select
from strawberry.types import Info

from core.api.completed import PagePlan, plan_page
from core.api.context import context_of
from core.services.pagination import (
    Page,
    SortKey,
    check_page_size,
    count_rows,
    fetch_page,
    fetch_page_rows,
)

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
    columns: Mapping[str, Any] | None = None,
) -> Connection[NodeT]:
    """One page of ``stmt`` as a connection; ``totalCount`` is counted only when asked for.

    When the selection allows, the page is completed at once (``core.api.completed``); when,
    besides, everything its nodes need is among ``columns`` (attribute → SQL expression of
    ``stmt``'s rows), only those columns are loaded, as rows rather than entities.
    """
    check_page_size(first)
    ctx = context_of(info)

    async def count() -> int:
        return await ctx.read(lambda s: count_rows(s, stmt))

    plan = plan_page(info)
    if plan is not None and columns is not None:
        completed = await _row_page(
            info, plan, stmt, key, (first, after), value_type, columns, count
        )
        if completed is not None:
            return completed
    found = await ctx.read(lambda s: fetch_page(s, stmt, key, first, after, value_type=value_type))
    return await _completed_or_plain(info, found, convert, count, plan)


async def _row_page(
    info: Info,
    plan: PagePlan,
    stmt: Select[Any],
    key: SortKey,
    window: tuple[int, str | None],
    value_type: type,
    columns: Mapping[str, Any],
    count: Callable[[], Awaitable[int]],
) -> Any:
    """The page loaded as rows of ``columns`` and completed, when the nodes need nothing else
    (their JSON written by the database when it can be); else None."""
    ctx = context_of(info)
    selected = plan.columns(columns)
    if selected is None:
        return None
    first, after = window
    written = plan.json_edges(columns, selected, ctx.services.db.engine.dialect.name)
    chosen = written.columns if written is not None else selected.columns
    rows = await ctx.read(
        lambda s: fetch_page_rows(
            s, stmt, selected.joins, chosen, key, first, after, value_type=value_type
        )
    )
    if written is not None:
        completed = await plan.complete(
            ctx, rows, rows.items, count, edges=written.values(rows.items)
        )
    else:
        users = selected.joined_users(rows.items)
        completed = await plan.complete(ctx, rows, rows.items, count, users)
    if completed is None:  # a null where the schema promises a value: execution reports it
        return None
    info.schema.row_pages += 1  # type: ignore[attr-defined]
    info.schema.completed_pages += 1  # type: ignore[attr-defined]
    return completed


async def page_connection(
    info: Info,
    page: Page[Any],
    convert: Callable[[Any], NodeT],
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    """``page`` (already read) as a connection, completed at once when the selection allows
    (``core.api.completed``)."""
    return await _completed_or_plain(info, page, convert, count, plan_page(info))


async def _completed_or_plain(
    info: Info,
    page: Page[Any],
    convert: Callable[[Any], NodeT],
    count: Callable[[], Awaitable[int]],
    plan: PagePlan | None,
) -> Connection[NodeT]:
    if plan is not None:
        nodes = [convert(i) for i in page.items]
        completed = await plan.complete(context_of(info), page, nodes, count)
        if completed is not None:
            info.schema.completed_pages += 1  # type: ignore[attr-defined]
            # Execution passes it through as the connection's completed value.
            return cast(Connection[NodeT], completed)
    return Connection.of(page, convert, count)
