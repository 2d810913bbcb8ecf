"""Settings read from the environment (``BATON_*``), overridable by CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./baton.db"
# The secret older releases fell back to; it is public, so Baton refuses to start with it.
DEV_JWT_SECRET = "baton-development-secret-change-me-in-production"
MIN_SECRET_BYTES = 32
USER_CLAIMS = ("sub", "email", "preferred_username")
SECRET_HELP = (
    "set BATON_JWT_SECRET to a random value of 32 bytes or more, e.g. "
    "BATON_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), "
    "the same on every replica; or configure OpenID Connect (BATON_OIDC_ISSUER) and leave "
    "it unset to turn service tokens off"
)
SCHEDULE_PREFIX = "BATON_SCHEDULE_"


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
    "jwt_audience",
    "jwt_issuer",
    "jwt_leeway",
    "oidc_issuer",
    "jwks_url",
    "oidc_audience",
    "oidc_user_claim",
    "oidc_provision_role",
    "jwks_lifespan",
    "jwks_cooldown",
    "graphiql",
    "max_body_bytes",
    "max_batch_size",
    "max_depth",
    "max_aliases",
    "max_tokens",
    "max_cost",
    "introspection",
    "persisted_queries",
    "execution_timeout",
    "idempotency_ttl",
    "log_sql",
    "db_connect_timeout",
    "db_command_timeout",
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "smtp_starttls",
    "smtp_tls",
    "smtp_ca_file",
    "smtp_from",
    "smtp_timeout",
    "email_max_attempts",
    "default_locale",
    "max_subscriptions_per_user",
    "subscription_lease",
    "scheduler",
    "scheduler_tick",
    "webhook_timeout",
    "webhook_max_attempts",
    "webhook_backoff",
    "webhook_concurrency",
    "webhook_allow_private",
)
# Settings that are secrets: shown only as set or unset (``Settings.effective``).
SECRETS = ("jwt_secret", "smtp_password")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start; one instance per process."""

    database_url: str = DEFAULT_DATABASE_URL
    # Service tokens (HS256, `baton token`): off while empty. See docs/admin/sign-in.md.
    jwt_secret: str = ""
    jwt_audience: str = ""  # when set, service tokens carry and must carry this `aud`
    jwt_issuer: str = ""  # when set, service tokens carry and must carry this `iss`
    jwt_leeway: int = 30  # seconds of clock skew allowed on exp, nbf and iat
    # OpenID Connect sign-in (RS256/ES256 tokens of an identity provider): off while both
    # the issuer and the JWKS URL are empty.
    oidc_issuer: str = ""
    jwks_url: str = ""
    oidc_audience: str = ""
    oidc_user_claim: str = "sub"  # which claim names the Baton user: sub, email, preferred_username
    oidc_provision_role: str = ""  # when set, unknown users signing in are created with this role
    jwks_lifespan: float = 300.0  # seconds the provider's key set is cached
    jwks_cooldown: float = 30.0  # least seconds between refetches for an unknown key id
    # Browser origins allowed to call the API cross-origin (BATON_CORS_ORIGINS); none: CORS off.
    cors_origins: tuple[str, ...] = ()
    graphiql: bool = True
    max_body_bytes: int = 1024 * 1024
    max_batch_size: int = 10
    # Query limits (docs/frontend/graphql.md, "Query limits"), checked before execution.
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 4000
    max_cost: int = 20000
    introspection: bool = True
    # Automatic persisted queries (docs/frontend/graphql.md, "Persisted queries"): on, a
    # client may send a registered document's sha256 instead of its text.
    persisted_queries: bool = True
    # Seconds a request may run before it is cancelled and its transaction rolled back.
    execution_timeout: float = 30.0
    # Seconds an Idempotency-Key is remembered.
    idempotency_ttl: int = 86400
    log_sql: bool = False
    # PostgreSQL waits (seconds): a connection (new or from the pool), and one statement.
    db_connect_timeout: float = 2.0
    db_command_timeout: float = 15.0
    # Run the scheduler (core.notify) in this process; `baton serve` and `baton worker` turn
    # it on (BATON_SCHEDULER=0 keeps `baton serve` from scheduling), apps built in code don't.
    scheduler: bool = False
    # Seconds between the scheduler's looks at what is due (and at its leadership).
    scheduler_tick: float = 5.0
    # Job intervals by job name, from BATON_SCHEDULE_<JOB>=15m|1h|2d|900|quarterly|off.
    schedules: tuple[tuple[str, str], ...] = ()
    # Webhooks: seconds one request may take, attempts before DEAD, the first retry's delay
    # (doubling each time, with jitter), requests in flight at once.
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 8
    webhook_backoff: float = 30.0
    webhook_concurrency: int = 8
    # Allow webhook endpoints on loopback, link-local, private and metadata addresses
    # (core.notify.addresses); off, such URLs are refused at registration and at delivery.
    webhook_allow_private: bool = False
    # Non-working days besides weekends, for deadlines (BATON_HOLIDAYS=2026-10-01,2026-10-02).
    holidays: tuple[date, ...] = ()
    # The plugins to load (BATON_PLUGINS=banking,acme; empty: none); None loads every installed one.
    plugins: tuple[str, ...] | None = None
    # E-mail notices (docs/admin/notifications.md); no host: no e-mail is planned or sent.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)  # never printed
    smtp_starttls: bool = True  # upgrade a plain connection with STARTTLS (port 587)
    smtp_tls: bool = False  # TLS from the first byte instead (port 465)
    smtp_ca_file: str = ""  # CA bundle to trust besides the system's (a private relay)
    smtp_from: str = "baton@localhost"
    smtp_timeout: float = 10.0
    email_max_attempts: int = 8  # then the notice is FAILED
    # The language of e-mails to users who chose none (zh or en).
    default_locale: str = "zh"
    # Open GraphQL subscriptions (WebSocket connections) per user, across every worker on
    # PostgreSQL (leases a crashed worker's connections lose after subscription_lease seconds).
    max_subscriptions_per_user: int = 5
    subscription_lease: float = 60.0
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
            cors_origins=_names(os.environ.get("BATON_CORS_ORIGINS")) or (),
            schedules=tuple(
                sorted(
                    (name.removeprefix(SCHEDULE_PREFIX).lower(), value)
                    for name, value in os.environ.items()
                    if name.startswith(SCHEDULE_PREFIX)
                )
            ),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "database_url" in given:
            given["database_url"] = normalise_database_url(str(given["database_url"]))
        return replace(settings, **given)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer or self.jwks_url)

    def problems(self) -> list[str]:
        """What makes these settings unsafe or unusable; empty when they may serve."""
        found = []
        secret = self.jwt_secret
        if secret == DEV_JWT_SECRET:
            found.append(f"BATON_JWT_SECRET is the public development value; {SECRET_HELP}")
        elif secret and len(secret.encode()) < MIN_SECRET_BYTES:
            found.append(
                f"BATON_JWT_SECRET is {len(secret.encode())} bytes, under "
                f"{MIN_SECRET_BYTES}; {SECRET_HELP}"
            )
        elif not secret and not self.oidc_enabled:
            found.append(f"no way to sign in: BATON_JWT_SECRET is unset; {SECRET_HELP}")
        if self.oidc_enabled and not self.oidc_audience:
            found.append(
                "BATON_OIDC_AUDIENCE is unset: set it to the audience (client id or API "
                "identifier) the identity provider puts in tokens meant for Baton"
            )
        if self.oidc_user_claim not in USER_CLAIMS:
            found.append(f"BATON_OIDC_USER_CLAIM must be one of {', '.join(USER_CLAIMS)}")
        for name, url in (
            ("BATON_OIDC_ISSUER", self.oidc_issuer),
            ("BATON_JWKS_URL", self.jwks_url),
        ):
            if url and not url.startswith(("https://", "http://")):
                found.append(f"{name} must be an https:// URL")
        for origin in self.cors_origins:
            if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
                found.append(
                    f"BATON_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )
        if self.jwt_leeway < 0 or self.jwt_leeway > 300:
            found.append("BATON_JWT_LEEWAY must be 0 to 300 seconds")
        if self.jwks_lifespan <= 0 or self.jwks_cooldown < 0:
            found.append("BATON_JWKS_LIFESPAN must be over 0 and BATON_JWKS_COOLDOWN 0 or more")
        return found

    def effective(self) -> dict[str, str]:
        """Every setting as text, secrets masked (``baton doctor``)."""
        shown = {}
        for name in ("database_url", *_SCALARS, "holidays", "plugins", "cors_origins"):
            value = getattr(self, name)
            if name in SECRETS:
                text = f"set ({len(value.encode())} bytes)" if value else "unset"
            elif name == "database_url":
                text = _mask_password(value)
            elif isinstance(value, tuple):
                text = ",".join(map(str, value))
            elif value is None:
                text = "(all installed)"
            else:
                text = str(value)
            shown[f"BATON_{name.upper()}"] = text
        return shown


class InsecureSettings(ValueError):
    """The settings may not serve; the message lists each problem and how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("refusing to start: " + "; and ".join(problems))
        self.problems = problems


def _mask_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show nothing of it
        return "(unparseable)"
