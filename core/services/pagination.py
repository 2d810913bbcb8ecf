"""Keyset (cursor) pagination: ``WHERE (sort, id) > (:sort, :id)``, never OFFSET."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar, overload

import orjson
from sqlalchemy import Integer, Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from core.errors import BadUserInput
from core.lru import LRU

T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Labels of the sort key in pages loaded as rows (``fetch_page_rows``).
SORT_VALUE, SORT_TIE = "sort_key_value", "sort_key_tie"
# Parameters of a page statement: the row limit and the cursor's sort value and tie-break.
PAGE_LIMIT, AFTER_VALUE, AFTER_TIE = "page_limit", "after_value", "after_tie"


@dataclass(frozen=True)
class SortKey:
    """A column to order by, with the id as the tie-break that makes the order total."""

    column: Any  # a mapped column, or an expression loaded into ``attribute``
    tiebreak: InstrumentedAttribute[Any]
    descending: bool = False
    attribute: str | None = None
    # The entity attribute holding the tie-break, when ``tiebreak`` is a column of a joined
    # table equal to it (so that column and tie-break are one index's columns).
    tie_attribute: str | None = None

    @cached_property
    def order(self) -> tuple[Any, Any]:
        """The ORDER BY clauses (built once per key)."""
        if self.descending:
            return self.column.desc(), self.tiebreak.desc()
        return self.column, self.tiebreak

    def key_of(self, row: Any) -> tuple[Any, Any]:
        """The sort value and tie-break of an entity."""
        tie = self.tie_attribute or self.tiebreak.key
        return getattr(row, self.attribute or self.column.key), getattr(row, tie)


@dataclass
class Page(Generic[T]):
    """One page of rows, their cursors, and whether more follow."""

    items: list[T]
    cursors: Sequence[str]
    has_next: bool


class Cursors(Sequence[str]):
    """The cursors of sort keys, each encoded when read (most pages show only the last)."""

    def __init__(self, keys: list[tuple[Any, Any]]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [encode_cursor(*key) for key in self._keys[index]]
        return encode_cursor(*self._keys[index])


def encode_cursor(value: Any, tie: Any) -> str:
    payload = [value.isoformat() if isinstance(value, datetime) else value, tie]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(cursor: str, sample: Any) -> tuple[Any, Any]:
    """Decode a cursor; ``sample`` tells whether the sort value is a datetime."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, tie = orjson.loads(base64.urlsafe_b64decode(padded))
        if sample is datetime and value is not None:
            value = datetime.fromisoformat(value)
        return value, tie
    except (ValueError, TypeError) as exc:
        raise _not_a_cursor() from exc


def _not_a_cursor() -> BadUserInput:
    return BadUserInput.one("after", "is not a cursor returned by this list", root="")


def check_page_size(first: int) -> None:
    if first < 0 or first > MAX_PAGE_SIZE:
        raise BadUserInput.one("first", f"must be between 0 and {MAX_PAGE_SIZE}", root="")


def _after(stmt: Select[Any], key: SortKey, after: bool) -> Select[Any]:
    """``stmt`` narrowed to the rows after the cursor in the parameters ``AFTER_VALUE`` and
    ``AFTER_TIE`` in ``key`` order (unchanged without a cursor)."""
    if not after:
        return stmt
    # Typed binds, so that e.g. datetimes compare in the column's storage format.
    bound = tuple_(
        bindparam(AFTER_VALUE, type_=key.column.type),
        bindparam(AFTER_TIE, type_=key.tiebreak.type),
    )
    cols = tuple_(key.column, key.tiebreak)
    return stmt.where(cols < bound if key.descending else cols > bound)


def _keyset(stmt: Select[Any], key: SortKey, after: bool) -> Select[Any]:
    """``stmt`` after the cursor (``_after``) in ``key`` order, at most ``PAGE_LIMIT`` rows."""
    return _after(stmt, key, after).order_by(*key.order).limit(bindparam(PAGE_LIMIT, type_=Integer))


def _window(first: int, after: str | None, value_type: type) -> dict[str, Any]:
    """The parameters of a ``_keyset`` statement: one row more than ``first`` (more follow if
    it comes), and the decoded cursor."""
    check_page_size(first)
    window: dict[str, Any] = {PAGE_LIMIT: first + 1}
    if after is not None:
        window[AFTER_VALUE], window[AFTER_TIE] = decode_cursor(after, value_type)
    return window


def _page(rows: Sequence[Any], first: int, key_of: Callable[[Any], tuple[Any, Any]]) -> Page[Any]:
    """The page of the first ``first`` of ``rows`` (one more, if fetched, means more follow);
    ``key_of`` gives a row's sort value and tie-break, encoded into its cursor when read."""
    items = list(rows[:first])
    return Page(
        items=items, cursors=Cursors([key_of(r) for r in items]), has_next=len(rows) > first
    )


async def fetch_page(
    session: AsyncSession,
    stmt: Select[Any],
    key: SortKey,
    first: int,
    after: str | None,
    *,
    value_type: type = str,
) -> Page[Any]:
    """Rows of ``stmt`` after the cursor ``after`` in ``key`` order, at most ``first``."""
    window = _window(first, after, value_type)
    rows = list((await session.scalars(_keyset(stmt, key, after is not None), window)).unique())
    return _page(rows, first, key.key_of)


async def fetch_pages(
    session: AsyncSession,
    stmt: Select[Any],
    key: SortKey,
    partition: Any,
    values: Sequence[Any],
    first: int,
    after: str | None,
) -> dict[Any, Page[Any]]:
    """``fetch_page`` for each value of the column ``partition`` among ``values`` (the units
    of many parents, say) in one statement: the rows are numbered within their partition
    (``row_number() over (partition by ...)``) and the first ``first + 1`` of each are read."""
    window = _window(first, after, str)
    stmt = _after(stmt, key, after is not None)
    order = key.order
    rank = func.row_number().over(partition_by=partition, order_by=order).label("rank")
    ranked = stmt.where(partition.in_(values)).with_only_columns(key.tiebreak, rank).subquery()
    chosen = select(ranked.c[0]).where(ranked.c.rank <= first + 1)
    rows = await session.scalars(
        stmt.where(key.tiebreak.in_(chosen)).order_by(partition, *order), window
    )
    found: dict[Any, list[Any]] = {v: [] for v in values}
    for row in rows.unique():
        found[getattr(row, partition.key)].append(row)
    return {v: _page(found[v], first, key.key_of) for v in values}


async def fetch_page_rows(
    session: AsyncSession,
    stmt: Select[Any],
    joins: Sequence[tuple[Any, Any]],
    columns: Mapping[str, Any],
    key: SortKey,
    first: int,
    after: str | None,
    *,
    value_type: type = str,
) -> Page[Any]:
    """Like ``fetch_page``, but only ``columns`` (name → expression of ``stmt``'s rows, outer
    joined to each ``(table, on)`` of ``joins``), as rows with those names: no entity is built."""
    chosen = _row_page_statement(stmt, joins, columns, key, after is not None)
    rows = (await session.execute(chosen, _window(first, after, value_type))).all()
    return _page(rows, first, lambda r: (getattr(r, SORT_VALUE), getattr(r, SORT_TIE)))


# Row page statements by the identity of their parts. Building a statement and its cache key
# cost a list request more than running it; the list statements, joins and columns are built
# once and shared (``customers_query``, the completed pages' plans), so their identities recur.
# An entry holds its parts, so an id in a remembered key cannot be reused by another object.
_ROW_PAGES: LRU[tuple[Any, ...], tuple[Select[Any], tuple[Any, ...]]] = LRU(256)


def _row_page_statement(
    stmt: Select[Any],
    joins: Sequence[tuple[Any, Any]],
    columns: Mapping[str, Any],
    key: SortKey,
    after: bool,
) -> Select[Any]:
    parts = (stmt, key, *(part for join in joins for part in join), *columns.values())
    identity = (*map(id, parts), *columns, after)
    found = _ROW_PAGES.get(identity)
    if found is not None:
        return found[0]
    for table, on in joins:
        stmt = stmt.outerjoin(table, on)
    labelled = [expr.label(name) for name, expr in columns.items()]
    labelled += [key.column.label(SORT_VALUE), key.tiebreak.label(SORT_TIE)]
    return _ROW_PAGES.put(
        identity, (_keyset(stmt.with_only_columns(*labelled), key, after), parts)
    )[0]


async def count_rows(session: AsyncSession, stmt: Select[Any]) -> int:
    """The number of rows ``stmt`` would return (for ``totalCount``)."""
    return int(
        await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    )


async def count_rows_by(
    session: AsyncSession, stmt: Select[Any], partition: Any, values: Sequence[Any]
) -> dict[Any, int]:
    """``count_rows`` for each value of the column ``partition`` among ``values``, in one
    statement."""
    sub = stmt.order_by(None).where(partition.in_(values)).with_only_columns(partition).subquery()
    column = sub.c[0]
    found: dict[Any, int] = dict(
        (await session.execute(select(column, func.count()).group_by(column))).all()
    )
    return {v: int(found.get(v, 0)) for v in values}


def page_of_sorted(
    items: Sequence[T], key: Callable[[T], tuple[Any, ...]], first: int, after: str | None
) -> Page[T]:
    """A page of ``items`` already sorted by ``key``, for lists ordered by a computed value.

    ``key`` is ascending and unique (end it with the id), its parts strings or numbers; the
    cursor carries the whole key, so a page starts right after the row it names even when
    rows came or went in between.
    """
    check_page_size(first)
    rest: Sequence[T] = items
    if after is not None:
        value, tie = decode_cursor(after, list)
        if not isinstance(value, list):
            raise _not_a_cursor()
        try:
            start = _as_json([*value, tie])
            rest = [item for item in items if _as_json(list(key(item))) > start]
        except TypeError as exc:  # not a list, or parts of other types than this list's
            raise _not_a_cursor() from exc
    chosen = list(rest[:first])
    return Page(
        items=chosen,
        cursors=[encode_cursor(list(key(item)[:-1]), key(item)[-1]) for item in chosen],
        has_next=len(rest) > first,
    )


def _as_json(parts: list[Any]) -> list[Any]:
    """``parts`` as they come back from a cursor, so that the two compare alike."""
    return orjson.loads(orjson.dumps(parts))
