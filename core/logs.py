"""Logging: one JSON object per line (or plain text), each stamped with the request id.

``logging_config`` is a ``logging.config.dictConfig`` for the whole process, uvicorn's own
loggers included; ``baton serve`` hands it to uvicorn, which applies it in every worker.
"""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

# Stamped by the HTTP layer (or the CLI): every log line and audit entry names its request.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "baton_request_id", default=None
)

LogFormat = Literal["json", "text"]
# Attributes every LogRecord has; anything else on a record came from ``extra=``
# (except uvicorn's terminal-coloured copy of the message).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``extra`` fields, and the request id (from the context unless given)."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    fields.setdefault("request_id", current_request_id.get())
    return fields


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "pid", "message", "request_id", …extra, "traceback"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # which worker
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id] message key=value …`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s")  # so that format() sets record.asctime

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        request_id = fields.pop("request_id")
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        tag = f" [{request_id}]" if request_id else ""
        head = f"{record.asctime} {record.levelname} {record.name}{tag}"
        return f"{head} {record.getMessage()}{extra}"


def logging_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """Everything, uvicorn's loggers too, to stderr through one formatter."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"baton": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "baton"}},
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn configures these with their own handlers unless told otherwise.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
