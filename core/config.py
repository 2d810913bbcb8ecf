"""Settings read from the environment (``BATON_*``), overridable by CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./baton.db"
DEV_JWT_SECRET = "baton-development-secret-change-me-in-production"


def normalise_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``sqlite://`` URLs and pick the async driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def _from_env(name: str, default: str | bool | int | float) -> Any:
    """``BATON_<NAME>`` read as the type of ``default`` (the setting's own default)."""
    variable = f"BATON_{name.upper()}"
    raw = os.environ.get(variable)
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() not in {"0", "false", "no", "off", ""}
    try:
        return type(default)(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r}: expected {type(default).__name__}") from None


def _names(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(name.strip() for name in raw.split(",") if name.strip())


# Settings read from BATON_<NAME> as the type of their default.
_SCALARS = (
    "engagement_new_days",
    "engagement_active_days",
    "engagement_churned_days",
    "jwt_secret",
    "graphiql",
    "max_body_bytes",
    "max_batch_size",
    "max_depth",
    "max_aliases",
    "max_tokens",
    "max_cost",
    "introspection",
    "execution_timeout",
    "idempotency_ttl",
    "log_sql",
    "db_connect_timeout",
    "db_command_timeout",
)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start; one instance per process."""

    database_url: str = DEFAULT_DATABASE_URL
    jwt_secret: str = DEV_JWT_SECRET
    graphiql: bool = True
    max_body_bytes: int = 1024 * 1024
    max_batch_size: int = 10
    # Query limits (docs/frontend/graphql.md, "Query limits"), checked before execution.
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 4000
    max_cost: int = 20000
    introspection: bool = True
    # Seconds a request may run before it is cancelled and its transaction rolled back.
    execution_timeout: float = 30.0
    # Seconds an Idempotency-Key is remembered.
    idempotency_ttl: int = 86400
    log_sql: bool = False
    # PostgreSQL waits (seconds): a connection (new or from the pool), and one statement.
    db_connect_timeout: float = 2.0
    db_command_timeout: float = 15.0
    # Non-working days besides weekends, for deadlines (BATON_HOLIDAYS=2026-10-01,2026-10-02).
    holidays: tuple[date, ...] = ()
    # The plugins to load (BATON_PLUGINS=banking,acme; empty: none); None loads every installed one.
    plugins: tuple[str, ...] | None = None
    # Engagement stage windows in days (docs/guides/health-and-surveys.md).
    engagement_new_days: int = 90
    engagement_active_days: int = 90
    engagement_churned_days: int = 365
    # Only for the benchmark's baseline: never read from the environment.
    authorization: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from ``BATON_*`` variables, then apply explicit overrides."""
        settings = cls(
            database_url=normalise_database_url(
                os.environ.get("BATON_DATABASE_URL", DEFAULT_DATABASE_URL)
            ),
            **{name: _from_env(name, getattr(cls, name)) for name in _SCALARS},
            holidays=tuple(
                date.fromisoformat(d.strip())
                for d in os.environ.get("BATON_HOLIDAYS", "").split(",")
                if d.strip()
            ),
            plugins=_names(os.environ.get("BATON_PLUGINS")),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "database_url" in given:
            given["database_url"] = normalise_database_url(str(given["database_url"]))
        return replace(settings, **given)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
