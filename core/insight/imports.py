"""Bulk history files (CSV with a header row, or JSON lines): parsed and validated whole
before anything is written, each error reported with its line.

Columns (snake_case or camelCase): activities ``customer_id, kind, at, amount, category,
note, days_late``; surveys ``customer_id, kind, score, reason, answered_at, occasion``.
Times are ISO 8601 with an offset (``2026-01-15T09:00:00+08:00``); a time without one is UTC.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from core.domain import ActivityKind, SurveyKind, SurveyOccasion
from core.errors import BadUserInput
from core.insight.service import Answer
from core.insight.surveys import validate_answer
from core.plugins import camel
from core.services.tiering import ActivityRow, validate_activity

T = TypeVar("T")


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


class Invalid(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` of a CSV file (``.csv``) or a JSON-lines file (anything else)."""
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            for record in reader:
                yield reader.line_num, {k: (v if v != "" else None) for k, v in record.items()}
            return
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, {"__error__": f"not JSON: {exc.msg}"}
                continue
            yield n, record if isinstance(record, dict) else {"__error__": "not a JSON object"}


def _get(record: dict[str, Any], name: str, required: bool = False) -> Any:
    key = camel(name)
    value = record.get(name, record.get(key))
    if value is None and required:
        raise Invalid(key, "is required")
    return value


def _moment(record: dict[str, Any], name: str, default: datetime) -> datetime:
    value = _get(record, name)
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise Invalid(name, "is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _enum(record: dict[str, Any], name: str, kind: type[Any], default: Any = None) -> Any:
    value = _get(record, name, required=default is None)
    if value is None:
        return default
    try:
        return kind(str(value).upper())
    except ValueError as exc:
        raise Invalid(name, f"must be one of {', '.join(k.value for k in kind)}") from exc


def _int(record: dict[str, Any], name: str, required: bool = False) -> int | None:
    value = _get(record, name, required)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise Invalid(name, "must be a whole number") from exc


def activity(record: dict[str, Any], now: datetime) -> ActivityRow:
    amount = _get(record, "amount")
    try:
        money = Decimal(str(amount)) if amount is not None else None
    except InvalidOperation as exc:
        raise Invalid("amount", "must be a number") from exc
    row = ActivityRow(
        customer_id=str(_get(record, "customer_id", required=True)),
        kind=_enum(record, "kind", ActivityKind),
        at=_moment(record, "at", now),
        amount=money,
        category=_get(record, "category"),
        note=_get(record, "note"),
        days_late=_int(record, "days_late"),
    )
    validate_activity(row, now)
    return row


def answer(record: dict[str, Any], now: datetime) -> Answer:
    kind = _enum(record, "kind", SurveyKind)
    score = _int(record, "score", required=True)
    assert score is not None
    row = Answer(
        customer_id=str(_get(record, "customer_id", required=True)),
        kind=kind,
        score=score,
        reason=_get(record, "reason"),
        answered_at=_moment(record, "answered_at", now),
        occasion=_enum(record, "occasion", SurveyOccasion, SurveyOccasion.AD_HOC),
    )
    validate_answer(row.kind, row.score, row.reason)
    if row.answered_at is not None and row.answered_at > now:
        raise Invalid("answeredAt", "must not be in the future")
    return row


def parse(
    path: Path,
    convert: Callable[[dict[str, Any], datetime], T],
    now: datetime,
    progress: Callable[[int], object] | None = None,
) -> tuple[list[tuple[int, T]], list[LineError]]:
    """Every record of ``path`` converted, with its line; and every error, with its line."""
    rows: list[tuple[int, T]] = []
    errors: list[LineError] = []
    for line, record in records(path):
        if progress is not None:
            progress(line)
        if "__error__" in record:
            errors.append(LineError(line, "line", record["__error__"]))
            continue
        try:
            rows.append((line, convert(record, now)))
        except Invalid as exc:
            errors.append(LineError(line, exc.field, exc.reason))
        except BadUserInput as exc:
            errors += [LineError(line, e.path.removeprefix("input."), e.reason) for e in exc.errors]
    return rows, errors
