"""The audit log's hash chain: appending (at commit) and verifying.

Every entry has a gap-free ``seq`` (1, 2, 3, ...), a canonical JSON ``body`` of its fields,
``prev_hash`` (the hash of entry ``seq - 1``; 64 zeros for the first) and
``hash = sha256(prev_hash + body)``. Altering, removing, inserting or reordering entries breaks
the chain at the first entry concerned; an *anchor* (``{"seq": n, "hash": h}`` kept outside the
database) also catches a removed tail and a rewrite of the whole chain.

Appends are serialised. On PostgreSQL a transaction writes its entries to ``audit_pending``
and the database seals them as its COMMIT runs: a deferred trigger (migration 0023) takes a
transaction-scoped advisory lock, reads the head and appends each entry, so the lock is never
held across a round trip to a client that may be busy elsewhere. On SQLite write transactions
begin with ``BEGIN IMMEDIATE`` (``core.db``), so only one writer runs at a time, and the entries
are sealed here. A unique index on ``seq`` backs both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import (
    Executable,
    Table,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import after_commit
from core.domain import AuditEntry, AuditPending

GENESIS = "0" * 64
_BATCH = 1000
# Entries a transaction appends after the known head in one INSERT … SELECT (a UNION ALL of
# one SELECT per entry): a mutation's few. More are inserted after reading the head, as
# SQLite allows 500 terms in a compound SELECT and building a large one costs more than the
# read it saves.
_APPEND_AFTER_MAX = 16


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


# The hashed body's keys and the columns they come from (besides ``seq``).
BODY_COLUMNS = {
    "at": "at",
    "actor": "actor_id",
    "action": "action",
    "entityType": "entity_type",
    "entityId": "entity_id",
    "changes": "changes",
    "reason": "reason",
    "requestId": "request_id",
}


def body_of(entry: Mapping[str, Any]) -> str:
    """The canonical JSON that is hashed, from an entry's columns (with ``seq``): sorted keys,
    compact separators, UTC ISO time."""
    fields = {key: entry[column] for key, column in BODY_COLUMNS.items()}
    fields["at"] = fields["at"].astimezone(UTC).isoformat()
    return canonical_json({"seq": entry["seq"], **fields})


def _as_stored(entry: dict[str, Any]) -> None:
    """Give ``entry`` the changes exactly as reading the JSON column back gives them, so its
    body can be rebuilt from its columns."""
    entry["changes"] = json.loads(canonical_json(entry["changes"]))


def seal(entries: list[dict[str, Any]], head: tuple[int, str]) -> None:
    """Give ``entries`` (in order) the sequence numbers, bodies and hashes following ``head``."""
    seq, prev = head
    for entry in entries:
        seq += 1
        _as_stored(entry)
        entry["seq"] = seq
        entry["body"] = body_of(entry)
        entry["prev_hash"] = prev
        entry["hash"] = prev = chain_hash(prev, entry["body"])


# The head this process last committed, per engine: usually still the head at the next append,
# which can then write without reading it first (``_append_after``).
_committed_heads: WeakKeyDictionary[Any, tuple[int, str]] = WeakKeyDictionary()


async def append(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """Append ``entries`` (AuditEntry columns without ``id`` and chain fields) in one INSERT.

    On PostgreSQL they go to ``audit_pending``, each with its canonical body up to ``seq``,
    and are sealed by the commit (``_append_at_commit``). Otherwise the head comes from this
    process's last committed append when it is still the head (one statement, checked by the
    INSERT itself), else it is read first.
    """
    if not entries:
        return
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await _append_at_commit(session, entries)
        return
    engine = bind.engine
    known = _committed_heads.get(engine)
    if (
        known is None
        or len(entries) > _APPEND_AFTER_MAX
        or not await _append_after(session, entries, known)
    ):
        row = (
            await session.execute(
                select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
            )
        ).first()
        seal(entries, (row[0], row[1]) if row else (0, GENESIS))
        await session.execute(insert(AuditEntry), entries)
    head = (entries[-1]["seq"], entries[-1]["hash"])

    def remember() -> None:
        _committed_heads[engine] = head

    after_commit(session, remember)


async def _append_after(
    session: AsyncSession, entries: list[dict[str, Any]], head: tuple[int, str]
) -> bool:
    """Insert ``entries`` sealed after ``head`` if ``head`` is still the chain's head (the
    entry ``seq`` with that hash, nothing after it): all of them in one statement, or none."""
    seal(entries, head)
    seq, hash_ = head
    params: dict[str, Any] = {"head_seq": seq, "head_hash": hash_}
    for i, entry in enumerate(entries):
        params.update({f"{column}_{i}": value for column, value in entry.items()})
    statement = _append_statement(tuple(entries[0]), len(entries), seq == 0)
    result = await session.execute(statement, params)
    return bool(result.rowcount == len(entries))  # type: ignore[attr-defined]


async def _append_at_commit(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """PostgreSQL: write ``entries`` to ``audit_pending`` in one statement, for the deferred
    trigger to seal in this order when the transaction commits.

    ``seq`` is the body's last key (keys are sorted), so the canonical body without it is
    built here, the trigger appends the number and ``}``, and the hash is the same sha256 of
    ``prev_hash + body`` (UTF-8) as ``chain_hash``.
    """
    rows = []
    for entry in entries:
        _as_stored(entry)
        body = body_of({**entry, "seq": 0})
        if not body.endswith(_SEQ_ZERO):  # a key sorting after "seq" was added to the body
            raise AssertionError("the audit body's last key must be seq")
        rows.append({**{c: entry[c] for c in _PENDING_COLUMNS}, "body_head": body[:-2]})
    await session.execute(insert(cast(Table, AuditPending.__table__)), rows)


_SEQ_ZERO = '"seq":0}'
_PENDING_COLUMNS = tuple(BODY_COLUMNS.values())


@lru_cache(maxsize=64)
def _append_statement(columns: tuple[str, ...], count: int, genesis: bool) -> Executable:
    """``INSERT … SELECT`` of ``count`` entries (parameters ``<column>_<i>``) that inserts only
    while the entry ``head_seq`` with ``head_hash`` is the head (nothing yet, for
    ``genesis``). Built once per shape: building and keying it anew cost more than the insert."""
    table = cast(Table, AuditEntry.__table__)
    head_seq = bindparam("head_seq", type_=table.c.seq.type)
    still_head = ~exists().where(table.c.seq > head_seq)
    if not genesis:
        still_head &= exists().where(
            table.c.seq == head_seq, table.c.hash == bindparam("head_hash", type_=table.c.hash.type)
        )
    rows = [
        select(*(bindparam(f"{c}_{i}", type_=table.c[c].type) for c in columns)).where(still_head)
        for i in range(count)
    ]
    return insert(table).from_select(list(columns), rows[0] if count == 1 else union_all(*rows))


# --- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A head recorded earlier, kept where whoever can write the database cannot."""

    seq: int
    hash: str

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash}) + "\n"

    @classmethod
    def parse(cls, data: str) -> Anchor:
        value = json.loads(data)
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("seq"), int)
            or value["seq"] < 0
            or not isinstance(value.get("hash"), str)
            or len(value["hash"]) != 64
        ):
            raise ValueError('an anchor is {"seq": <int >= 0>, "hash": "<64 hex digits>"}')
        return cls(value["seq"], value["hash"])

    @classmethod
    def read(cls, path: Path) -> Anchor:
        return cls.parse(path.read_text())


@dataclass(frozen=True)
class VerifyResult:
    """``ok``, or the first bad entry: its ``seq``, its row ``id`` (None when it is missing)
    and why."""

    entries: int
    head: Anchor
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def message(self) -> str:
        if self.ok:
            return f"ok: {self.entries} entries, head {self.head.hash}"
        ident = "-" if self.bad_id is None else self.bad_id
        return f"audit entry {self.bad_seq} (id {ident}): {self.reason}"


_COLUMNS = (
    AuditEntry.id,
    AuditEntry.seq,
    *(getattr(AuditEntry, column) for column in BODY_COLUMNS.values()),
    AuditEntry.body,
    AuditEntry.prev_hash,
    AuditEntry.hash,
)


def _check(row: Any, expected_seq: int, prev: str) -> str | None:
    """Why the entry at position ``expected_seq`` is bad, or None."""
    try:
        body = json.loads(row.body)
        body_seq = body["seq"]
    except (TypeError, ValueError, KeyError):
        return "its body is not an entry's JSON (altered)"
    if body_seq != row.seq:
        return (
            f"its hashed body says seq {body_seq}: moved (entries reordered, or inserted or "
            "removed before it)"
        )
    if chain_hash(row.prev_hash, row.body) != row.hash:
        return "its hash does not match its body (body or hash altered)"
    if row.prev_hash != prev:
        before = "the genesis value" if expected_seq == 1 else f"entry {expected_seq - 1}'s hash"
        return (
            f"its prev_hash does not match {before} (an entry before it was altered, inserted "
            "or removed, or this one was forged)"
        )
    try:
        rebuilt = body_of(row._mapping)
    except (TypeError, ValueError, AttributeError):
        rebuilt = "{}"
    if rebuilt != row.body:
        fields = json.loads(rebuilt)
        altered = [c for key, c in BODY_COLUMNS.items() if fields.get(key) != body.get(key)]
        return f"its columns differ from its hashed body ({', '.join(altered) or 'body'} altered)"
    return None


async def verify(session: AsyncSession, anchor: Anchor | None = None) -> VerifyResult:
    """Walk the chain in ``seq`` order (in batches, so memory stays flat) and report the first
    bad entry; with ``anchor``, the chain must also reach it with the same hash."""
    expected, prev, last_id = 1, GENESIS, None

    def broken(seq: int, row_id: int | None, reason: str) -> VerifyResult:
        """The result at the first bad entry: the good chain before it, and why."""
        return VerifyResult(expected - 1, Anchor(expected - 1, prev), seq, row_id, reason)

    while True:
        rows = (
            await session.execute(
                select(*_COLUMNS)
                .where(AuditEntry.seq >= expected)
                .order_by(AuditEntry.seq)
                .limit(_BATCH)
            )
        ).all()
        for row in rows:
            if row.seq < expected:  # only once the unique index on seq has been dropped
                return broken(row.seq, row.id, "duplicate seq (inserted)")
            if row.seq != expected:
                return broken(
                    expected,
                    None,
                    f"missing (deleted): the log goes from seq {expected - 1} to seq {row.seq} "
                    f"(id {row.id})",
                )
            reason = _check(row, expected, prev)
            if reason is None and anchor and row.seq == anchor.seq and row.hash != anchor.hash:
                reason = "its hash differs from the anchor's: the log up to here was rewritten"
            if reason is not None:
                return broken(row.seq, row.id, reason)
            expected, prev, last_id = expected + 1, row.hash, row.id
        if len(rows) < _BATCH:
            break
    unsealed = await _unsealed(session)
    if unsealed:
        # Rows there outlive a transaction only when the sealing trigger did not run.
        return broken(
            expected,
            None,
            f"{unsealed} committed {'entry was' if unsealed == 1 else 'entries were'} never "
            "sealed into the chain (audit_pending: is the trigger audit_pending_seal missing "
            "or disabled?)",
        )
    if anchor is not None and expected - 1 < anchor.seq:
        return broken(
            expected,
            None,
            f"missing (truncated): the log ends at seq {expected - 1}"
            + (f" (id {last_id})" if last_id is not None else "")
            + f" but the anchor records seq {anchor.seq}",
        )
    return VerifyResult(expected - 1, Anchor(expected - 1, prev))


async def _unsealed(session: AsyncSession) -> int:
    """How many committed entries sit in ``audit_pending``, outside the chain (always 0 while
    the sealing trigger runs). A PostgreSQL standby cannot read that unlogged table, and its
    primary is where the check means something: 0 there."""
    if session.get_bind().dialect.name == "postgresql" and await session.scalar(
        text("SELECT pg_is_in_recovery()")
    ):
        return 0
    return int(await session.scalar(select(func.count()).select_from(AuditPending)) or 0)
