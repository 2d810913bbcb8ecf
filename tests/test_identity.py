"""No insecure defaults: refusing unsafe secrets, `baton doctor`, the demo's own secret,
service-token claims (exp, iat, nbf, aud, iss, algorithms), CORS and security headers."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from core.app import create_app
from core.cli import app as cli
from core.clock import FixedClock
from core.config import DEV_JWT_SECRET, InsecureSettings, Settings
from core.http_security import CONTENT_SECURITY_POLICY
from core.identity import issue_token
from core.services import Actor
from tests.conftest import (
    JWT_SECRET,
    GraphQLClient,
    answers,
    client_of,
    free_port,
    running,
)

VIEWER = "{ viewer { user { id } } }"
runner = CliRunner()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "BATON_JWT_SECRET is unset"),
        (DEV_JWT_SECRET, "the public development value"),
        ("short-but-not-empty", "19 bytes, under 32"),
    ],
    ids=["unset", "development-value", "short"],
)
def test_serve_and_create_app_refuse_unsafe_secrets(
    secret: str | None, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_JWT_SECRET", raising=False)
    if secret is not None:
        monkeypatch.setenv("BATON_JWT_SECRET", secret)
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path}/baton.db")
    result = runner.invoke(cli, ["serve", "--port", str(free_port())])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert f"refusing to start: {problem}" in message or problem in message, message
    assert "BATON_JWT_SECRET=$(python3 -c" in message  # says how to set one
    with pytest.raises(InsecureSettings, match=re.escape(problem)):
        create_app()
    assert not (tmp_path / "baton.db").exists()  # nothing written


def test_doctor_masks_secrets_and_lists_each_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("BATON_DATABASE_URL", "postgresql://baton:hunter2@db.internal/baton")
    monkeypatch.setenv("BATON_CORS_ORIGINS", "https://app.example.com")
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert f"BATON_JWT_SECRET=set ({len(JWT_SECRET)} bytes)" in result.output
    assert "BATON_DATABASE_URL=postgresql+asyncpg://baton:***@db.internal/baton" in result.output
    assert "BATON_CORS_ORIGINS=https://app.example.com" in result.output
    assert JWT_SECRET not in result.output and "hunter2" not in result.output
    assert "no problems found" in result.output

    monkeypatch.setenv("BATON_JWT_SECRET", DEV_JWT_SECRET)
    monkeypatch.setenv("BATON_OIDC_ISSUER", "https://login.example.com/realms/baton")
    monkeypatch.setenv("BATON_CORS_ORIGINS", "*")
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3, result.output
    assert DEV_JWT_SECRET not in result.output
    assert "public development value" in problems[0]
    assert "BATON_OIDC_AUDIENCE is unset" in problems[1]
    assert "'*' is not an origin" in problems[2]


def test_the_demo_makes_its_own_secret_once_and_baton_token_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "baton.db"
    for name in [k for k in os.environ if k.startswith("BATON_")]:
        monkeypatch.delenv(name)
    env = dict(os.environ)
    baton = str(Path(sys.executable).parent / "baton")

    # A small data set first, so that `serve --demo` starts at once (it seeds empty databases).
    seeded = runner.invoke(cli, ["demo", "--customers", "5", "--database", f"sqlite:///{db}"])
    assert seeded.exit_code == 0, seeded.output

    def demo() -> tuple[subprocess.Popen[str], str, str]:
        port = free_port()
        server = subprocess.Popen(
            [baton, "serve", "--demo", "--port", str(port), "--database", f"sqlite:///{db}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not answers(base):
            assert server.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.1)
        return server, base, lines[2].strip()

    def viewer(base: str, token: str) -> httpx.Response:
        return httpx.post(
            f"{base}/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
        )

    server, base, printed = demo()
    try:
        assert viewer(base, printed).json()["data"]["viewer"]["user"]["id"] == "admin"
        result = runner.invoke(cli, ["token", "am.chen", "--database", f"sqlite:///{db}"])
        assert result.exit_code == 0, result.output
        chen = viewer(base, result.output.strip())
        assert chen.json()["data"]["viewer"]["user"]["id"] == "am.chen"
    finally:
        server.terminate()
        server.wait(15)
    secret_file = tmp_path / "baton.db.demo-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(secret_file.read_text().strip()) >= 32
    # The next demo run keeps the secret: the token printed before still works.
    server, base, _ = demo()
    try:
        assert viewer(base, printed).status_code == 200
    finally:
        server.terminate()
        server.wait(15)
    # Outside --demo the demo's secret is not used: serving needs a secret of its own.
    refused = runner.invoke(cli, ["serve", "--database", f"sqlite:///{db}"])
    assert refused.exit_code == 1 and "BATON_JWT_SECRET is unset" in refused.output


@asynccontextmanager
async def service(settings: Settings, clock: FixedClock) -> AsyncIterator[GraphQLClient]:
    async with running(settings, clock) as app, client_of(app, clock) as client:
        await app.state.services.users.create(Actor.system(), "admin", "Ada", roles=["admin"])
        yield client


async def status_of(client: GraphQLClient, token: str) -> tuple[int, str]:
    response = await client.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )
    errors = response.json().get("errors") or [{"message": ""}]
    return response.status_code, errors[0]["message"]


def sign(claims: dict[str, Any], algorithm: str = "HS256") -> str:
    key = JWT_SECRET if algorithm == "HS256" else JWT_SECRET * 2  # HS512 wants 64 bytes
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_service_tokens_check_time_claims_with_a_small_leeway(
    settings: Settings, clock: FixedClock
) -> None:
    now = int(time.time())
    async with service(settings, clock) as client:
        within_leeway = sign({"sub": "admin", "iat": now - 60, "exp": now - 10})
        assert await status_of(client, within_leeway) == (200, "")
        assert await status_of(
            client, sign({"sub": "admin", "iat": now - 90, "exp": now - 60})
        ) == (
            401,
            "token expired; get a new one",
        )
        future = {"sub": "admin", "exp": now + 600}
        assert (await status_of(client, sign({**future, "iat": now + 120})))[1].startswith(
            "token not valid yet"
        )
        assert (await status_of(client, sign({**future, "iat": now, "nbf": now + 120})))[
            1
        ].startswith("token not valid yet")
        assert await status_of(client, sign({"sub": "admin", "exp": now + 60})) == (
            401,
            "token lacks the 'iat' claim",
        )
        assert await status_of(client, sign({"sub": "admin", "iat": now})) == (
            401,
            "token lacks the 'exp' claim",
        )
        stronger = sign({"sub": "admin", "iat": now, "exp": now + 60}, "HS512")
        assert await status_of(client, stronger) == (
            401,
            "token algorithm 'HS512' is not accepted",
        )


async def test_service_tokens_carry_and_must_carry_the_configured_audience_and_issuer(
    settings: Settings, clock: FixedClock
) -> None:
    configured = replace(settings, jwt_audience="baton-prod", jwt_issuer="https://baton.example")
    now = datetime.now(UTC)

    def token(**claims: str) -> str:
        return issue_token("admin", JWT_SECRET, now=now, ttl=timedelta(minutes=5), **claims)

    async with service(configured, clock) as client:
        right = token(audience="baton-prod", issuer="https://baton.example")
        assert await status_of(client, right) == (200, "")
        assert await status_of(client, token(issuer="https://baton.example")) == (
            401,
            "token lacks the 'aud' claim",
        )
        wrong_aud = token(audience="baton-staging", issuer="https://baton.example")
        assert (await status_of(client, wrong_aud))[1].startswith("token is not for this service")
        wrong_iss = token(audience="baton-prod", issuer="https://staging.example")
        assert (await status_of(client, wrong_iss))[1].startswith("token is from another issuer")


def test_baton_token_adds_the_configured_audience_and_issuer(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("BATON_JWT_AUDIENCE", "baton-prod")
    monkeypatch.setenv("BATON_JWT_ISSUER", "https://baton.example")
    added = runner.invoke(cli, ["user", "add", "am.x", "--name", "X", "--database", database_url])
    assert added.exit_code == 0, added.output
    result = runner.invoke(cli, ["token", "am.x", "--database", database_url])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(
        result.output.strip(),
        JWT_SECRET,
        algorithms=["HS256"],
        audience="baton-prod",
        issuer="https://baton.example",
    )
    assert claims["sub"] == "am.x" and claims["nbf"] == claims["iat"] < claims["exp"]


async def test_cors_is_off_by_default_and_allows_only_named_origins(
    settings: Settings, clock: FixedClock
) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with service(settings, clock) as client:
        response = await client.http.options("/graphql", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    allowed = replace(settings, cors_origins=("https://app.example.com",))
    async with running(allowed, clock) as app, client_of(app, clock) as client:
        response = await client.http.options("/graphql", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        other = await client.http.options(
            "/graphql", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        answer = await client.http.post(
            "/graphql",
            json={"query": VIEWER},
            headers={"Origin": "https://app.example.com", "Authorization": "Bearer x"},
        )
        assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
        assert (
            answer.headers["access-control-expose-headers"] == "X-Request-Id, Idempotent-Replayed"
        )


async def test_security_headers_on_html_pages_and_every_response(
    settings: Settings, clock: FixedClock
) -> None:
    async with service(settings, clock) as client:
        page = await client.http.get("/graphql", headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        api = await client.http.post("/graphql", json={"query": VIEWER})
        assert api.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in api.headers


def test_baton_token_without_a_secret_says_how_to_set_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no demo secret here either
    monkeypatch.delenv("BATON_JWT_SECRET", raising=False)
    added = runner.invoke(cli, ["user", "add", "am.x", "--name", "X", "--database", database_url])
    assert added.exit_code == 0, added.output
    result = runner.invoke(cli, ["token", "am.x", "--database", database_url])
    assert result.exit_code == 1
    assert "cannot sign a token: set BATON_JWT_SECRET" in " ".join(result.output.split())
