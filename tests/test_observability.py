"""/metrics in Prometheus text format, and JSON log lines that carry the request id."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.logs import JsonFormatter, TextFormatter, current_request_id
from core.metrics import MAX_OPERATION_NAMES, operation_label
from tests.conftest import GraphQLClient

CREATE_USER = 'mutation { createUser(input: {id: "x.y", name: "X"}) { user { id } } }'
CREATE = 'mutation CreateAcme { createCustomer(input: {name: "Acme"}) { customer { id } } }'


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _samples(gql: GraphQLClient) -> Samples:
    response = await gql.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_operations_errors_and_statuses(gql: GraphQLClient, admin: str) -> None:
    before = await _samples(gql)
    await gql.data("am.chen", "query ViewerRoles { viewer { roles } }")
    await gql.data("am.chen", "query ViewerRoles { viewer { roles } }")
    await gql.data("am.chen", CREATE)
    await gql.execute("am.chen", "{ customers(first: 500) { totalCount } }")  # BAD_USER_INPUT
    await gql.execute(
        "am.chen", 'mutation { createUser(input: {id: "x.y", name: "X"}) { user { id } } }'
    )
    assert (
        await gql.http.post("/graphql", json={"query": "{ viewer { roles } }"})
    ).status_code == 401
    after = await _samples(gql)

    count = "baton_graphql_operation_duration_seconds_count"
    assert _delta(before, after, count, operation="ViewerRoles", type="query") == 2
    assert _delta(before, after, count, operation="CreateAcme", type="mutation") == 1
    assert _delta(before, after, count, operation="anonymous", type="mutation") == 1
    assert _delta(before, after, "baton_errors_total", code="BAD_USER_INPUT") == 1
    assert _delta(before, after, "baton_errors_total", code="FORBIDDEN") == 1
    assert _delta(before, after, "baton_errors_total", code="UNAUTHENTICATED") == 1
    responses = "baton_http_responses_total"
    assert _delta(before, after, responses, path="/graphql", status="200") == 5
    assert _delta(before, after, responses, path="/graphql", status="401") == 1
    assert _delta(before, after, "baton_http_request_duration_seconds_count", path="/graphql") == 6


def test_operation_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.metrics._seen", set())
    assert operation_label(None) == "anonymous"
    assert operation_label("x" * 65) == "other"
    assert operation_label("drop table;") == "other"
    names = [operation_label(f"Op{n}") for n in range(MAX_OPERATION_NAMES + 5)]
    assert names[:MAX_OPERATION_NAMES] == [f"Op{n}" for n in range(MAX_OPERATION_NAMES)]
    assert set(names[MAX_OPERATION_NAMES:]) == {"other"}
    assert operation_label("Op0") == "Op0"  # names already seen keep their label


async def test_a_request_logs_one_json_access_line_with_its_request_id(
    gql: GraphQLClient, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="baton.access"):
        response = await gql.post("am.chen", "query ViewerRoles { viewer { roles } }")
    (record,) = [r for r in caplog.records if r.name == "baton.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == response.headers["x-request-id"]
    assert line | {"ts": None, "duration_ms": None} == {
        "ts": None,
        "level": "INFO",
        "logger": "baton.access",
        "pid": os.getpid(),
        "message": "POST /graphql 200",
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "duration_ms": None,
        "operation": "ViewerRoles",
        "request_id": response.headers["x-request-id"],
        "user": "am.chen",
    }
    assert line["duration_ms"] >= 0


def test_log_lines_carry_the_current_request_id_and_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("baton.api", logging.ERROR, __file__, 1, "unexpected", (), exc_info)
    token = current_request_id.set("req-42")
    try:
        line = json.loads(JsonFormatter().format(record))
        text = TextFormatter().format(record)
    finally:
        current_request_id.reset(token)
    assert line["request_id"] == "req-42"
    assert "ValueError: boom" in line["traceback"]
    assert "[req-42] unexpected" in text and "ValueError: boom" in text
