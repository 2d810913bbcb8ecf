"""The audit log's hash chain: built by real mutations, broken by real tampering with the
database file (SQLite), guarded by a trigger (PostgreSQL), and safe under concurrent appends."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from core.cli import app as cli
from core.db import Database, alembic_config
from core.domain import AuditEntry, AuditPending
from core.domain.base import UTCDateTime
from core.services import Actor, Services, audit_chain
from core.services.audit import AuditWriter
from core.services.audit_chain import (
    GENESIS,
    Anchor,
    VerifyResult,
    body_of,
    canonical_json,
    chain_hash,
    verify,
)
from tests.conftest import BACKENDS, GraphQLClient, _pg_execute, asyncpg_url

CREATE = """mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { customer { id version } } }"""
UPDATE = """mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) { customer { id version } } }"""
ASSIGN = """mutation($input: AssignOwnerInput!) {
  assignOwner(input: $input) { customer { id version } } }"""


async def write_entries(gql: GraphQLClient) -> None:
    """A dozen entries or so, through the API: customers created, updated and assigned."""
    for name in ("Acme", "Globex", "Initech"):
        data = await gql.data("admin", CREATE, {"input": {"name": name}})
        customer = data["createCustomer"]["customer"]
        await gql.data(
            "admin",
            UPDATE,
            {
                "input": {
                    "id": customer["id"],
                    "expectedVersion": customer["version"],
                    "paymentTermsDays": 30,
                    "invoiceRequirements": f"PO number for {name}",
                    "reason": "onboarding",
                }
            },
        )
        await gql.data(
            "admin",
            ASSIGN,
            {"input": {"customerId": customer["id"], "ownerId": "am.chen", "reason": "east"}},
        )


async def check(services: Services, anchor: Anchor | None = None) -> VerifyResult:
    async with services.db.reader() as session:
        return await verify(session, anchor)


def sqlite_path(database_url: str) -> Path:
    return Path(database_url.split("///", 1)[1])


@contextmanager
def tamper(database_url: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the database file, as an intruder would open it."""
    with closing(sqlite3.connect(sqlite_path(database_url))) as conn:
        conn.row_factory = sqlite3.Row
        with conn:
            yield conn


def entries(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT * FROM audit_entries ORDER BY seq"))


def set_body(conn: sqlite3.Connection, row: sqlite3.Row, **fields: Any) -> str:
    """Change an entry's columns and its body consistently (its hash left alone)."""
    body = json.loads(row["body"])
    columns = {"changes": "changes", "reason": "reason", "entityId": "entity_id"}
    for name, value in fields.items():
        body[name] = value
        stored = json.dumps(value) if name == "changes" else value
        conn.execute(
            f"UPDATE audit_entries SET {columns[name]} = ? WHERE id = ?", (stored, row["id"])
        )
    new_body = canonical_json(body)
    conn.execute("UPDATE audit_entries SET body = ? WHERE id = ?", (new_body, row["id"]))
    return new_body


def rechain(conn: sqlite3.Connection, start: int) -> None:
    """Recompute prev_hash and hash from entry ``start`` on, as a careful forger would."""
    prev = GENESIS
    for row in entries(conn):
        if row["seq"] >= start:
            digest = chain_hash(prev, row["body"])
            conn.execute(
                "UPDATE audit_entries SET prev_hash = ?, hash = ? WHERE id = ?",
                (prev, digest, row["id"]),
            )
            prev = digest
        else:
            prev = row["hash"]


# --- the chain that mutations build ---------------------------------------------------------


async def test_mutations_append_a_gap_free_valid_chain(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await write_entries(gql)
    result = await check(services)
    async with services.db.reader() as session:
        rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert result.ok, result.message()
    assert result.entries == len(rows) >= 12
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert rows[0].prev_hash == GENESIS
    for before, entry in itertools.pairwise(rows):
        assert entry.prev_hash == before.hash
    for entry in rows:
        assert entry.hash == chain_hash(entry.prev_hash, entry.body)
        body = json.loads(entry.body)
        assert entry.body == json.dumps(body, sort_keys=True, separators=(",", ":"))
        assert body == {
            "seq": entry.seq,
            "at": entry.at.isoformat(),
            "actor": entry.actor_id,
            "action": entry.action,
            "entityType": entry.entity_type,
            "entityId": entry.entity_id,
            "changes": entry.changes,
            "reason": entry.reason,
            "requestId": entry.request_id,
        }
    assert any(r.request_id not in (None, "cli") for r in rows)  # the HTTP request ids
    assert result.head == Anchor(rows[-1].seq, rows[-1].hash)
    assert result.message() == f"ok: {len(rows)} entries, head {rows[-1].hash}"


async def test_entries_of_one_transaction_keep_the_order_they_were_recorded_in(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await write_entries(gql)  # am.chen owns three customers
    head = (await check(services)).head.seq
    await gql.data(
        "admin",
        'mutation { deactivateUser(input: {userId: "am.chen", reason: "left"}) { user { id } } }',
    )
    async with services.db.reader() as session:
        rows = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.seq > head).order_by(AuditEntry.seq)
            )
        )
    # users.deactivate records the user, then release_book each customer, then each request.
    assert [(r.action, r.entity_type) for r in rows] == [
        ("deactivateUser", "User"),
        *[("deactivateUser", "Customer")] * 3,
        *[("requestReassignment", "ReassignmentRequest")] * 3,
    ]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert (await check(services)).ok


async def test_set_based_assignment_runs_are_chained(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    for name in ("A", "B", "C"):
        await gql.data("admin", CREATE, {"input": {"name": name, "territory": "CN/East"}})
    await gql.data(
        "admin", CREATE, {"input": {"name": "D", "territory": "CN/East", "ownerId": "am.wu"}}
    )
    await gql.data(
        "admin",
        """mutation { createAssignmentRule(input: {name: "East", priority: 1,
        strategy: FIXED_OWNER, ownerId: "am.chen", conditions: {territories: ["CN/East"]}})
        { rule { id } } }""",
    )
    run = await gql.data(
        "admin", "mutation { runAssignment(input: {}) { assigned { id } requests { id } } }"
    )
    assert len(run["runAssignment"]["assigned"]) == 3
    assert len(run["runAssignment"]["requests"]) == 1
    result = await check(services)
    assert result.ok, result.message()
    async with services.db.reader() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action).order_by(AuditEntry.seq.desc()).limit(4)
            )
        )
    assert actions[::-1] == ["runAssignment"] * 3 + ["requestReassignment"]


async def test_an_empty_log_verifies_with_the_genesis_head(empty_database: str) -> None:
    db = Database(empty_database)
    try:
        await db.upgrade()
        async with db.reader() as session:
            result = await verify(session)
            anchored = await verify(session, Anchor(0, GENESIS))
    finally:
        await db.dispose()
    assert result.ok and result.entries == 0
    assert result.head == Anchor(0, GENESIS)
    assert anchored.ok


# --- tampering with the SQLite file ---------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.skipif("sqlite" not in BACKENDS, reason="SQLite not selected")
class TestTamperingIsDetected:
    @pytest.fixture(autouse=True)
    async def _entries(self, gql: GraphQLClient, services: Services, admin: str) -> None:
        await write_entries(gql)
        assert (await check(services)).ok

    async def test_an_altered_change_value(self, services: Services, database_url: str) -> None:
        with tamper(database_url) as conn:
            row = conn.execute(
                "SELECT * FROM audit_entries WHERE action = 'updateCustomer' ORDER BY seq"
            ).fetchone()
            changes = json.loads(row["changes"])
            for change in changes:
                if change["field"] == "paymentTermsDays":
                    change["after"] = 90
            conn.execute(
                "UPDATE audit_entries SET changes = ? WHERE id = ?",
                (json.dumps(changes), row["id"]),
            )
        result = await check(services)
        assert (result.bad_seq, result.bad_id) == (row["seq"], row["id"])
        assert result.reason == "its columns differ from its hashed body (changes altered)"
        assert result.entries == row["seq"] - 1

    async def test_an_altered_body_with_its_own_hash_recomputed(
        self, services: Services, database_url: str
    ) -> None:
        with tamper(database_url) as conn:
            row = entries(conn)[5]
            body = set_body(conn, row, reason="nothing to see")
            conn.execute(
                "UPDATE audit_entries SET hash = ? WHERE id = ?",
                (chain_hash(row["prev_hash"], body), row["id"]),
            )
        result = await check(services)
        assert result.bad_seq == row["seq"] + 1
        assert "prev_hash does not match entry 6's hash" in (result.reason or "")

    async def test_a_deleted_middle_entry(self, services: Services, database_url: str) -> None:
        with tamper(database_url) as conn:
            conn.execute("DELETE FROM audit_entries WHERE seq = 7")
            after = conn.execute("SELECT id FROM audit_entries WHERE seq = 8").fetchone()["id"]
        result = await check(services)
        assert (result.bad_seq, result.bad_id) == (7, None)
        assert result.reason == (
            f"missing (deleted): the log goes from seq 6 to seq 8 (id {after})"
        )
        assert result.message().startswith("audit entry 7 (id -): missing (deleted)")

    def _insert_forged(self, conn: sqlite3.Connection, seq: int, *, careful: bool) -> int:
        """Make room at ``seq`` and insert a forged entry there (copying its neighbour)."""
        rows = entries(conn)
        model, before = rows[seq - 1], rows[seq - 2]
        conn.execute("UPDATE audit_entries SET seq = -seq WHERE seq >= ?", (seq,))
        conn.execute("UPDATE audit_entries SET seq = 1 - seq WHERE seq < 0")
        body = json.loads(model["body"])
        body.update(seq=seq, entityId="cus_forged", reason="forged")
        body_text = canonical_json(body)
        digest = chain_hash(before["hash"], body_text) if careful else "f" * 64
        cursor = conn.execute(
            "INSERT INTO audit_entries (at, actor_id, action, entity_type, entity_id, changes, "
            "reason, request_id, seq, body, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, 'cus_forged', ?, 'forged', ?, ?, ?, ?, ?)",
            (
                model["at"],
                model["actor_id"],
                model["action"],
                model["entity_type"],
                model["changes"],
                model["request_id"],
                seq,
                body_text,
                before["hash"],
                digest,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def test_an_inserted_forged_entry(self, services: Services, database_url: str) -> None:
        with tamper(database_url) as conn:
            forged = self._insert_forged(conn, 4, careful=False)
        result = await check(services)
        assert (result.bad_seq, result.bad_id) == (4, forged)
        assert result.reason == "its hash does not match its body (body or hash altered)"

    async def test_an_inserted_entry_with_a_valid_hash_breaks_the_next_link(
        self, services: Services, database_url: str
    ) -> None:
        with tamper(database_url) as conn:
            displaced = entries(conn)[3]["id"]
            self._insert_forged(conn, 4, careful=True)
        result = await check(services)
        assert (result.bad_seq, result.bad_id) == (5, displaced)
        assert (result.reason or "").startswith("its hashed body says seq 4: moved")

    async def test_two_swapped_entries(self, services: Services, database_url: str) -> None:
        with tamper(database_url) as conn:
            rows = entries(conn)
            conn.execute("UPDATE audit_entries SET seq = -1 WHERE seq = 3")
            conn.execute("UPDATE audit_entries SET seq = 3 WHERE seq = 9")
            conn.execute("UPDATE audit_entries SET seq = 9 WHERE seq = -1")
        result = await check(services)
        assert (result.bad_seq, result.bad_id) == (3, rows[8]["id"])
        assert (result.reason or "").startswith("its hashed body says seq 9: moved")

    async def test_a_truncated_tail_is_caught_by_the_anchor(
        self, services: Services, database_url: str
    ) -> None:
        anchor = (await check(services)).head
        with tamper(database_url) as conn:
            conn.execute("DELETE FROM audit_entries WHERE seq > ?", (anchor.seq - 2,))
            last_id = entries(conn)[-1]["id"]
        assert (await check(services)).ok  # a shorter chain is a valid chain ...
        result = await check(services, anchor)  # ... but not the one anchored
        assert (result.bad_seq, result.bad_id) == (anchor.seq - 1, None)
        assert result.reason == (
            f"missing (truncated): the log ends at seq {anchor.seq - 2} (id {last_id}) "
            f"but the anchor records seq {anchor.seq}"
        )

    async def test_a_full_rewrite_is_caught_by_the_anchor(
        self, services: Services, database_url: str
    ) -> None:
        anchor = (await check(services)).head
        with tamper(database_url) as conn:
            row = entries(conn)[1]
            set_body(conn, row, changes=[{"field": "name", "before": None, "after": "Mallory"}])
            rechain(conn, start=2)
        assert (await check(services)).ok  # consistent, so only the anchor can tell
        result = await check(services, anchor)
        assert result.bad_seq == anchor.seq
        assert (
            result.reason == "its hash differs from the anchor's: the log up to here was rewritten"
        )
        # An older anchor, from before the rewritten entry, cannot see it.
        assert (await check(services, Anchor(1, entries_hash(database_url, 1)))).ok


def entries_hash(database_url: str, seq: int) -> str:
    with tamper(database_url) as conn:
        return str(
            conn.execute("SELECT hash FROM audit_entries WHERE seq = ?", (seq,)).fetchone()[0]
        )


# --- the command line -----------------------------------------------------------------------


def baton(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.skipif("sqlite" not in BACKENDS, reason="SQLite not selected")
def test_cli_verify_and_anchor(database_url: str, tmp_path: Path) -> None:
    for uid in ("am.a", "am.b", "am.c", "am.d"):
        code, out = baton(
            "user", "add", uid, "--name", uid, "--role", "auditor", "--database", database_url
        )
        assert code == 0, out
    code, out = baton("audit", "verify", "--database", database_url)
    assert code == 0, out
    with tamper(database_url) as conn:
        rows = entries(conn)
    assert out.strip() == f"ok: {len(rows)} entries, head {rows[-1]['hash']}"

    anchor_file = tmp_path / "anchor.json"
    code, out = baton("audit", "anchor", "--out", str(anchor_file), "--database", database_url)
    assert code == 0, out
    assert json.loads(anchor_file.read_text()) == {"seq": len(rows), "hash": rows[-1]["hash"]}
    code, out = baton("audit", "anchor", "--database", database_url)
    assert code == 0 and json.loads(out) == json.loads(anchor_file.read_text())

    with tamper(database_url) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = ?", (len(rows),))
    code, out = baton("audit", "verify", "--database", database_url)
    assert code == 0, out  # without the anchor, a removed tail goes unseen
    code, out = baton("audit", "verify", "--anchor", str(anchor_file), "--database", database_url)
    assert code == 1
    assert out.strip() == (
        f"audit entry {len(rows)} (id -): missing (truncated): the log ends at seq "
        f"{len(rows) - 1} (id {rows[-2]['id']}) but the anchor records seq {len(rows)}"
    )

    with tamper(database_url) as conn:
        conn.execute("UPDATE audit_entries SET reason = 'hidden' WHERE seq = 2")
    code, out = baton("audit", "verify", "--database", database_url)
    assert code == 1
    assert out.strip() == (
        f"audit entry 2 (id {rows[1]['id']}): its columns differ from its hashed body "
        "(reason altered)"
    )
    code, out = baton("audit", "anchor", "--database", database_url)
    assert code == 1 and "no anchor written" in out

    anchor_file.write_text('{"seq": "x"}')
    code, out = baton("audit", "verify", "--anchor", str(anchor_file), "--database", database_url)
    assert code == 2 and "cannot read the anchor" in out


def test_anchor_files_are_checked() -> None:
    assert Anchor.parse('{"seq": 3, "hash": "%s"}' % ("a" * 64)) == Anchor(3, "a" * 64)
    for bad in ("[]", '{"seq": -1, "hash": "%s"}' % ("a" * 64), '{"seq": 1, "hash": "ab"}'):
        with pytest.raises(ValueError):
            Anchor.parse(bad)


# --- PostgreSQL: refused by the database, safe under concurrency ----------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not selected")
async def test_postgresql_refuses_update_delete_and_truncate(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    await write_entries(gql)
    for statement in (
        "UPDATE audit_entries SET reason = 'hidden' WHERE seq = 2",
        "UPDATE audit_entries SET seq = seq + 100",
        "DELETE FROM audit_entries WHERE seq = 3",
        "TRUNCATE audit_entries",
    ):
        with pytest.raises(DBAPIError, match="audit_entries is append-only"):
            async with services.db.engine.begin() as conn:
                await conn.execute(text(statement))
    result = await check(services)
    assert result.ok and result.entries >= 12


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not selected")
async def test_concurrent_mutations_append_one_valid_chain(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    head = (await check(services)).head.seq
    created = await asyncio.gather(
        *[gql.data("admin", CREATE, {"input": {"name": f"Concurrent {i}"}}) for i in range(40)]
    )
    customers = [d["createCustomer"]["customer"] for d in created]
    await asyncio.gather(
        *[
            gql.data(
                "admin",
                UPDATE,
                {"input": {"id": c["id"], "expectedVersion": c["version"], "paymentTermsDays": i}},
            )
            for i, c in enumerate(customers)
        ],
        *[
            services.users.create(Actor.system(), f"am.n{i}", f"N{i}", roles=["auditor"])
            for i in range(10)
        ],
    )
    result = await check(services)
    assert result.ok, result.message()
    async with services.db.reader() as session:
        seqs = list(await session.scalars(select(AuditEntry.seq).where(AuditEntry.seq > head)))
    assert len(seqs) == len(set(seqs)) == 40 + 40 + 10
    assert sorted(seqs) == list(range(head + 1, head + 91))
    assert result.entries == head + 90


async def test_a_transaction_of_many_entries_appends_after_the_head_this_process_knows(
    services: Services,
) -> None:
    """A realignment or a group move writes hundreds of entries in one transaction, after
    this process committed an append (so it knows the head): SQLite refused more than 500 in
    the one INSERT … SELECT that appends after a known head."""
    before = (await check(services)).entries
    at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    for count in (1, 600):  # the first commit makes the head known
        async with services.db.transaction() as session:
            writer = AuditWriter(session, Actor.system(), at)
            for i in range(count):
                change = {"field": "owner", "before": None, "after": "am.chen"}
                writer.record("assignOwner", "Customer", f"cus_{count}_{i}", [change])
    result = await check(services)
    assert result.ok, result.message()
    assert result.entries == before + 601


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not selected")
async def test_a_writer_that_has_not_committed_yet_holds_up_nobody(services: Services) -> None:
    """The chain is locked only while a COMMIT runs (the entries are sealed by the database
    then), not from a transaction's append until its client gets round to committing; a
    rolled-back transaction leaves nothing behind."""
    head = (await check(services)).head.seq
    at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    change = [{"field": "name", "before": None, "after": "x"}]
    async with services.db.transaction() as slow:
        await audit_chain.append(slow, [_entry(at, "cus_slow", change)])
        # The slow writer's client is busy elsewhere; another writer commits meanwhile.
        async with asyncio.timeout(10):
            await services.customers.create(Actor.system(), {"name": "Quick"}, auto_assign=False)
    with pytest.raises(RuntimeError):
        async with services.db.transaction() as rolled_back:
            await audit_chain.append(rolled_back, [_entry(at, "cus_gone", change)])
            raise RuntimeError("the mutation fails after its append")
    result = await check(services)
    assert result.ok, result.message()
    async with services.db.reader() as session:
        order = list(
            await session.scalars(
                select(AuditEntry.entity_id).where(AuditEntry.seq > head).order_by(AuditEntry.seq)
            )
        )
        pending = await session.scalar(select(sa.func.count()).select_from(AuditPending))
    assert order[-1] == "cus_slow" and "cus_gone" not in order  # sealed when it committed
    assert len(order) >= 2 and pending == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not selected")
async def test_entries_that_escaped_the_sealing_trigger_fail_verification(
    gql: GraphQLClient, services: Services, admin: str
) -> None:
    """With the trigger disabled (by someone who may), a mutation commits and its entry stays
    in audit_pending, outside the chain: verify says so instead of reporting an intact log."""
    await write_entries(gql)
    assert (await check(services)).ok
    async with services.db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_pending DISABLE TRIGGER audit_pending_seal"))
    await services.customers.create(Actor.system(), {"name": "Unsealed"}, auto_assign=False)
    result = await check(services)
    assert not result.ok
    assert "1 committed entry was never sealed into the chain" in result.message()
    assert "audit_pending_seal" in result.message()


def _entry(at: datetime, entity_id: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "at": at,
        "actor_id": None,
        "action": "test",
        "entity_type": "Customer",
        "entity_id": entity_id,
        "changes": changes,
        "reason": None,
        "request_id": None,
    }


# --- migration 0009 chains the entries that exist ---------------------------------------------

_n = itertools.count()


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    uri = request.getfixturevalue("postgres")
    name = f"chain_migration_{next(_n)}"
    asyncio.run(_pg_execute(uri, f"CREATE DATABASE {name}"))
    return asyncpg_url(uri, name)


def _alembic(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, revision)


async def test_migration_chains_existing_entries_in_id_order(empty_database: str) -> None:
    db = Database(empty_database)
    old_entries = sa.table(
        "audit_entries",
        sa.column("id", sa.Integer()),
        sa.column("at", UTCDateTime()),
        sa.column("actor_id", sa.String()),
        sa.column("action", sa.String()),
        sa.column("entity_type", sa.String()),
        sa.column("entity_id", sa.String()),
        sa.column("changes", sa.JSON()),
        sa.column("reason", sa.Text()),
        sa.column("request_id", sa.String()),
    )
    at = datetime(2026, 1, 5, 8, 30, 15, 250000, tzinfo=UTC)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_alembic, "upgrade", "0008")
            await conn.execute(
                sa.insert(old_entries),
                [
                    {
                        "id": i,
                        "at": at,
                        "actor_id": "admin" if i % 2 else None,
                        "action": "updateCustomer",
                        "entity_type": "Customer",
                        "entity_id": f"cus_{i}",
                        "changes": [{"field": "name", "before": "Ä", "after": f"Ö {i}"}],
                        "reason": None,
                        "request_id": f"req-{i}",
                    }
                    for i in (3, 1, 7, 2)  # ids with a gap, inserted out of order
                ],
            )
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), 7)")
                )
            await conn.run_sync(_alembic, "upgrade", "0009")
            await conn.run_sync(_alembic, "upgrade", "head")  # what verify reads
        async with db.reader() as session:
            result = await verify(session)
            rows = (await session.execute(select(AuditEntry.id, AuditEntry.seq))).all()
            first = await session.scalar(select(AuditEntry).where(AuditEntry.seq == 1))
        assert result.ok, result.message()
        assert sorted((seq, id_) for id_, seq in rows) == [(1, 1), (2, 2), (3, 3), (4, 7)]
        assert first is not None
        assert first.body == body_of(
            {
                "seq": 1,
                "at": at,
                "actor_id": "admin",
                "action": "updateCustomer",
                "entity_type": "Customer",
                "entity_id": "cus_1",
                "changes": [{"field": "name", "before": "Ä", "after": "Ö 1"}],
                "reason": None,
                "request_id": "req-1",
            }
        )
        # New entries continue the backfilled chain; down and up again keeps it valid.
        async with db.transaction() as session:
            AuditWriter(session, Actor.system(), at).record(
                "test", "Customer", "cus_9", [{"field": "name", "before": None, "after": "9"}]
            )
        async with db.engine.begin() as conn:
            await conn.run_sync(_alembic, "downgrade", "0008")
            await conn.run_sync(_alembic, "upgrade", "head")
        async with db.reader() as session:
            result = await verify(session)
        assert result.ok and result.entries == 5
    finally:
        await db.dispose()


async def test_two_processes_appending_in_turn_keep_one_chain(
    services: Services, database_url: str, admin: str
) -> None:
    """Each process appends after the head it last committed without reading it, but only
    while that is still the head: when the other process appended in between, the head is
    read again. Two engines on one database stand for two processes."""
    other = Services.create(Database(database_url))
    await other.prepare()
    try:
        before = (await check(services)).entries
        system = Actor.system()
        for i in range(6):
            writer = services if i % 2 == 0 else other
            await writer.customers.create(system, {"name": f"In turn {i}"}, auto_assign=False)
            await writer.customers.create(system, {"name": f"Again {i}"}, auto_assign=False)
        result = await check(services)
        assert result.ok, result.message
        assert result.entries == before + 12
    finally:
        await other.db.dispose()
