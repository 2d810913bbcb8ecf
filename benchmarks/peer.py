"""PostGraphile 4 as a peer: a GraphQL server that compiles a query into one SQL statement
building the JSON inside PostgreSQL, with no field-level authorisation.

Run beside Baton by ``benchmarks.list_customers --postgres`` when ``node`` and ``npm`` are on
the machine; installed once from the npm registry (pinned) into ``~/.cache/baton-bench``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

VERSION = "4.14.1"
HOME = Path.home() / ".cache" / "baton-bench" / f"postgraphile-{VERSION}"
# The same list shape as Baton's: customers → current ownership → owner, ordered by name.
QUERY = """query($first: Int!) { allCustomers(first: $first, orderBy: [NAME_ASC, ID_ASC]) {
  nodes { id name territory valueTier
    ownershipsByCustomerId(condition: {validTo: null}) { nodes { userByOwnerId { id name } } } }
  pageInfo { hasNextPage endCursor } } }"""


def unavailable() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found" if missing else None


def install() -> Path:
    """The PostGraphile CLI, installed from the npm registry on first use."""
    cli = HOME / "node_modules" / ".bin" / "postgraphile"
    if not cli.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", f"postgraphile@{VERSION}"],
            cwd=HOME,
            check=True,
            timeout=600,
        )
    return cli


def node_connection(url: str) -> str:
    """``postgresql+asyncpg://user@/db?host=/socket`` as node-postgres takes it."""
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", ["127.0.0.1"])[0]
    user = parts.username or "postgres"
    database = parts.path.lstrip("/")
    return (
        f"socket:{host}?db={database}&user={user}"
        if host.startswith("/")
        else (f"postgres://{user}@{host}:{parts.port or 5432}/{database}")
    )


def page_of(body: dict[str, Any]) -> list[Any]:
    """The customers of a PostGraphile answer."""
    return body["data"]["allCustomers"]["nodes"]  # type: ignore[no-any-return]


class PostGraphile:
    """PostGraphile serving the database at ``url`` on 127.0.0.1 while the block runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        cli = install()
        self.process = subprocess.Popen(
            [
                str(cli),
                "--connection",
                node_connection(self.url),
                "--schema",
                "public",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-query-log",
                "--disable-graphiql",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NODE_ENV": "production"},
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgraphile exited: {self.process.stderr.read()!r:.500}")  # type: ignore[union-attr]
            try:
                answer = httpx.post(
                    f"{base}/graphql", json={"query": QUERY, "variables": {"first": 1}}, timeout=5
                )
                if answer.status_code == 200 and "errors" not in answer.json():
                    return base
                raise RuntimeError(f"postgraphile answered {answer.text[:500]}")
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("postgraphile did not start")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
