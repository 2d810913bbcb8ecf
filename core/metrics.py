"""Prometheus metrics, one process or many (``PROMETHEUS_MULTIPROC_DIR``), and their labels.

With several workers prometheus_client writes each worker's values to files in the
multiprocess directory and ``render`` adds them up, so any worker's ``/metrics`` shows the
whole server. The directory must be set before prometheus_client is imported.
"""

from __future__ import annotations

import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

disable_created_metrics()  # `_created` series only double the output

HTTP_RESPONSES = Counter(
    "baton_http_responses", "HTTP responses by path and status.", ["path", "status"]
)
HTTP_DURATION = Histogram(
    "baton_http_request_duration_seconds", "Time to answer an HTTP request.", ["path"]
)
OPERATION_DURATION = Histogram(
    "baton_graphql_operation_duration_seconds",
    "Time to run a GraphQL operation, by operation name and type (`_count`: how many).",
    ["operation", "type"],
)
ERRORS = Counter("baton_errors", "Errors returned to clients, by extensions.code.", ["code"])
JOB_RUNS = Counter("baton_scheduler_runs", "Scheduled job runs (failed ones too).", ["job"])
JOB_FAILURES = Counter("baton_scheduler_failures", "Scheduled job runs that failed.", ["job"])
JOB_ITEMS = Counter(
    "baton_scheduler_items", "Items a job processed (events, deliveries, customers).", ["job"]
)
JOB_LAST_SUCCESS = Gauge(
    "baton_scheduler_last_success_timestamp_seconds",
    "When a job last succeeded (Unix time, by the service clock).",
    ["job"],
    multiprocess_mode="max",
)
SCHEDULER_LEADER = Gauge(
    "baton_scheduler_leader",
    "1 in the process that leads the scheduler, else 0 (summed over live workers).",
    multiprocess_mode="livesum",
)
WEBHOOK_ATTEMPTS = Counter(
    "baton_webhook_attempts", "Webhook requests sent, by outcome.", ["outcome"]
)

PATHS = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})
MAX_OPERATION_NAMES = 200  # per process; later names count as "other"
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
_seen: set[str] = set()


def path_label(path: str) -> str:
    """The path, for our own routes; "other" for anything a client may invent."""
    return path if path in PATHS else "other"


def operation_label(name: str | None) -> str:
    """A bounded label for an operation name: "anonymous" without one, "other" for a name
    that is not a GraphQL name of at most 64 characters or comes past the cap."""
    if name is None:
        return "anonymous"
    if not _NAME.match(name):
        return "other"
    if name not in _seen:
        if len(_seen) >= MAX_OPERATION_NAMES:
            return "other"
        _seen.add(name)
    return name


def render() -> tuple[bytes, str]:
    """The exposition text of every worker (or of this process alone) and its media type."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST
