"""Engine, sessions and migrations for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import ColumnElement, Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.util import await_

from core.errors import Conflict, ServiceUnavailable

log = logging.getLogger("baton.db")

MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE = "baton_write"
_READ = "baton_read"  # SQLite reads: statements on their own, no BEGIN
PING_TIMEOUT = 1.0  # seconds for a pooled connection to answer; a healthy one takes ~1 ms


def alembic_config() -> Config:
    """Alembic configuration pointing at ``core/migrations`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for write transactions.

    pysqlite's own transaction handling begins lazily and upgrades read locks to write
    locks, which deadlocks concurrent writers; we emit BEGIN ourselves instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_READ) or options.get("isolation_level") == "AUTOCOMMIT":
            return  # reads: each statement on its own, no transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")


def _ping_on_checkout(engine: AsyncEngine, timeout: float) -> None:
    """Ping each PostgreSQL connection as the pool hands it out, within ``timeout``.

    SQLAlchemy's own pre-ping may wait as long as any statement (the command timeout) on a
    hung server. A connection that does not answer in time is replaced instead (SQLAlchemy
    allows its close 2 s, then a new connection its connect timeout); once the server is
    back the replacement succeeds, so service resumes by itself.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        try:
            await_(dbapi_conn.driver_connection.execute("SELECT 1", timeout=timeout))
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer") from exc


_AFTER_COMMIT = "baton_after_commit"
_BEFORE_COMMIT = "baton_before_commit"


def one_of(column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """``column IN (values)``, as ``column = value`` for a single value: an IN list is rendered
    anew for every execution (its length may change), an equality is compiled once."""
    if len(values) == 1:
        return column == next(iter(values))
    return column.in_(values)


def in_transaction(session: AsyncSession) -> bool:
    """True for a session opened by ``Database.transaction``."""
    return bool(session.info.get(_WRITE))


def before_commit(
    session: AsyncSession, key: str, callback: Callable[[AsyncSession], Awaitable[None]]
) -> None:
    """Run ``callback`` last in the transaction of ``session`` (from ``Database.transaction``),
    once per ``key``, just before it commits."""
    session.info.setdefault(_BEFORE_COMMIT, {}).setdefault(key, callback)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the transaction of ``session`` (from ``Database.transaction``)
    has committed; never when it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


# Failures to reach the database at all, as opposed to a statement the database refused.
# OSError covers refused and reset connections and timeouts (TimeoutError is an OSError).
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    PoolTimeout,
    OperationalError,
    InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def database_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The ``ServiceUnavailable`` that ``exc`` amounts to when it is a failure to reach the
    database (refused, lost, timed out, pool exhausted), else None."""
    for cause in _causes(exc):
        if isinstance(cause, ServiceUnavailable):
            return cause
        if isinstance(cause, _UNREACHABLE) or (
            isinstance(cause, DBAPIError) and cause.connection_invalidated
        ):
            return ServiceUnavailable("database unavailable; retry later")
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (drivers wrap each other's errors)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__


_ROLLED_BACK_BY_SERVER = frozenset({"40P01", "40001"})  # deadlock, serialization failure


class NotMigrated(RuntimeError):
    """The PostgreSQL database is behind the code's migrations."""


class Database:
    """The process's connection pool and session factory.

    On PostgreSQL every wait is bounded, so that an outage fails requests fast instead of
    hanging them: ``connect_timeout`` for a new connection and for a free one from the pool,
    ``command_timeout`` for one statement, and pooled connections are pinged before use.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        connect_timeout: float = 5.0,
        command_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.connect_timeout = connect_timeout
        options: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            options.update(
                pool_size=10,
                max_overflow=10,
                pool_timeout=connect_timeout,
                connect_args={"timeout": connect_timeout, "command_timeout": command_timeout},
            )
        self.engine = create_async_engine(url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        else:
            _ping_on_checkout(self.engine, PING_TIMEOUT)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads run without an enclosing transaction, so each statement sees the latest
        # committed state, including what a mutation earlier in the same request wrote.
        # On SQLite the driver is in autocommit already (``_configure_sqlite``): a read only
        # skips BEGIN. Setting the isolation level instead costs four driver calls (each a
        # hop to aiosqlite's thread) per checkout, to set it and to reset it.
        reads: dict[str, Any] = (
            {_READ: True} if self.is_sqlite else {"isolation_level": "AUTOCOMMIT"}
        )
        self._readers = async_sessionmaker(
            self.engine.execution_options(**reads), expire_on_commit=False
        )

    @asynccontextmanager
    async def transaction(self, *, commit: bool = True) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed when the block succeeds, rolled back otherwise.

        ``commit=False`` is a dry run: the block runs as it would (locks, reads of its own
        writes), then everything is rolled back, audit entries and outbox events included.

        A constraint violation or a lost optimistic-lock race at this point means a
        concurrent change won (inputs were validated before), so it becomes CONFLICT.
        """
        try:
            async with self.sessions() as session:
                # Options must be set before the transaction begins (BEGIN IMMEDIATE).
                await session.connection(execution_options={_WRITE: True})
                session.info[_WRITE] = True
                try:
                    yield session
                    if not commit:
                        session.info.pop(_BEFORE_COMMIT, None)
                        session.info.pop(_AFTER_COMMIT, None)
                        await session.rollback()
                        return
                    for callback in session.info.pop(_BEFORE_COMMIT, {}).values():
                        await callback(session)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
                for callback in session.info.pop(_AFTER_COMMIT, ()):
                    callback()
        except (IntegrityError, StaleDataError) as exc:
            raise Conflict("a concurrent change won; reload and retry") from exc
        except DBAPIError as exc:
            # PostgreSQL broke a deadlock or a serialisation conflict by rolling us back.
            if getattr(exc.orig, "sqlstate", None) in _ROLLED_BACK_BY_SERVER:
                raise Conflict("a concurrent change won; reload and retry") from exc
            raise

    def reader(self) -> AsyncSession:
        """A session for reads; the caller closes it."""
        return self._readers()

    async def ping(self, timeout: float) -> None:
        """Raise unless the database answers within ``timeout`` seconds."""
        probe = asyncio.ensure_future(self._select_one())
        done, _ = await asyncio.wait({probe}, timeout=timeout)
        if not done:
            # Cancelling a statement asks the (unresponsive) server to cancel it: let that
            # finish in the background rather than keep the caller waiting for it too.
            probe.cancel()
            probe.add_done_callback(lambda task: task.cancelled() or task.exception())
            raise TimeoutError(f"the database did not answer within {timeout} s")
        probe.result()

    async def _select_one(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def upgrade(self) -> None:
        """Apply all pending migrations."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade_sync)

    async def current_revision(self) -> str | None:
        """The database's Alembic revision, or None when it has none."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def is_current(self) -> bool:
        """True when every migration has been applied."""
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        return await self.current_revision() == head

    async def prepare(self) -> None:
        """Make the database usable: SQLite is migrated in place (the embedded default);
        PostgreSQL must already be current, because several workers must not race to migrate.
        """
        if self.is_sqlite:
            await self.upgrade()
        else:
            await self.require_current()

    async def require_current(self) -> None:
        """Raise ``NotMigrated`` unless every migration has been applied."""
        if not await self.is_current():
            raise NotMigrated("the database is not migrated: run `baton db upgrade` first")

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade_sync(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


LISTENER_PROBE_SECONDS = 2.0


class Listener:
    """A PostgreSQL ``LISTEN channel`` kept open in the background from ``start`` to ``stop``
    (nothing on SQLite: one process). It calls ``on_notify(payload)`` for each notification
    and reconnects after any failure (an outage, a restart); ``on_state(True)`` runs on each
    (re)connection and ``on_state(False)`` on each loss: notifications may have been missed
    in between."""

    def __init__(
        self,
        db: Database,
        channel: str,
        on_notify: Callable[[str], None],
        on_state: Callable[[bool], object],
        name: str,
    ) -> None:
        self.db = db
        self.channel = channel
        self.on_notify = on_notify
        self.on_state = on_state
        self.name = name
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.db.is_sqlite:
            self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        url = make_url(self.db.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        timeout = self.db.connect_timeout
        lost = False  # log an outage once, not on every retry
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=timeout)
                try:
                    await conn.add_listener(self.channel, lambda *a: self.on_notify(a[-1]))
                    self.on_state(True)
                    if lost:
                        log.info("%s listener reconnected", self.name)
                        lost = False
                    # A lost peer does not always close the socket: probe it.
                    while True:
                        await asyncio.sleep(LISTENER_PROBE_SECONDS)
                        await conn.execute("SELECT 1", timeout=timeout)
                finally:
                    await conn.close(timeout=timeout)
            except asyncio.CancelledError:
                raise
            except Exception:  # reconnect after any connection failure
                if not lost:
                    log.warning(
                        "%s listener lost its connection; retrying", self.name, exc_info=True
                    )
                lost = True
                self.on_state(False)
                await asyncio.sleep(1)
