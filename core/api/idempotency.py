"""Idempotent retries: the first answer to an ``Idempotency-Key`` is stored in the database (so
every worker process sees it) and a retry with the same key gets it back, running nothing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, exists, select, update

from core.clock import Clock
from core.db import Database
from core.domain import AuditEntry, IdempotencyKey, IdempotencyState

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


class KeyReused(Exception):
    """The key came with a different request before."""


class KeyInFlight(Exception):
    """The first request with this key is still running."""


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def is_valid_key(key: str) -> bool:
    """1 to 128 visible ASCII characters."""
    return bool(_KEY.match(key))


def fingerprint(payload: Any) -> str:
    """sha256 of the request body in canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class IdempotencyKeys:
    """Reservations and stored responses, per user and key, forgotten after ``ttl``.

    A reservation older than ``runs_for`` (the execution timeout) cannot belong to a running
    request any more: its process died before answering, so it is forgotten too.
    """

    def __init__(self, db: Database, clock: Clock, ttl: timedelta, runs_for: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self.runs_for = runs_for

    async def reserve(self, user_id: str, key: str, fingerprint: str) -> StoredResponse | None:
        """Reserve ``key`` for a new request (None), or return the earlier request's answer.

        Raises ``KeyReused`` for a different request, ``KeyInFlight`` while the first runs,
        and ``Conflict`` when a concurrent request reserved the key first.
        """
        now = self.clock.now()
        async with self.db.transaction() as session:
            record = await session.get(IdempotencyKey, (user_id, key))
            if record is not None and record.created_at + self._kept(record) <= now:
                await session.delete(record)
                await session.flush()
                record = None
            if record is None:
                session.add(
                    IdempotencyKey(
                        user_id=user_id,
                        key=key,
                        fingerprint=fingerprint,
                        state=IdempotencyState.IN_PROGRESS,
                        created_at=now,
                    )
                )
                return None
        if record.fingerprint != fingerprint:
            raise KeyReused
        if record.state is IdempotencyState.IN_PROGRESS or record.status is None:
            raise KeyInFlight
        return StoredResponse(record.status, record.response or b"")

    def _kept(self, record: IdempotencyKey) -> timedelta:
        return self.runs_for if record.state is IdempotencyState.IN_PROGRESS else self.ttl

    async def finish(self, user_id: str, key: str, response: StoredResponse) -> None:
        """Store the answer that retries will get."""
        async with self.db.transaction() as session:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                .values(state=IdempotencyState.DONE, status=response.status, response=response.body)
            )

    async def release(self, user_id: str, key: str) -> None:
        """Forget the reservation, so that a retry runs."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.state == IdempotencyState.IN_PROGRESS,
                )
            )

    async def wrote(self, request_id: str) -> bool:
        """Whether a mutation of the request committed (each one audits with its request id)."""
        async with self.db.reader() as session:
            return bool(
                await session.scalar(select(exists().where(AuditEntry.request_id == request_id)))
            )
