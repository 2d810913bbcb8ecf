"""Load test: `baton serve --workers 2` on PostgreSQL under a mixed workload of many users.

    python -m benchmarks.load [--clients 16] [--requests 3000] [--max-seconds 180]
                              [--against REV [--rounds 3]]

One run starts a throwaway embedded PostgreSQL, migrates it and seeds the demo data with the
`baton` command, serves it with two worker processes on 127.0.0.1, and drives it from
``--clients`` concurrent clients acting as the demo users:

- reads: customer lists and details as account managers, managers, finance and service;
- updates: account managers increment a counter in ``invoiceRequirements`` on a few hot
  customers they own, with ``expectedVersion`` (a CONFLICT is re-read and retried);
- reassignments: an owner asks for a colleague to take over, the manager approves;
- handover steps: handbook, review, two meetings, notification, completion.

It prints requests/s, p50 and p99 per kind and overall, and the errors (goal 0; a CONFLICT
on a hot customer is the expected answer to a race and is counted apart). Then it checks the
invariants on the database: every acknowledged update is there exactly once (counter, version
and audit entries agree: no lost update), every completed handover moved the owner, no customer
has two active owners, and `baton audit verify` passes. It exits non-zero if any check fails.

With ``--against REV`` (a commit, e.g. the one before a performance change), the same run is
made first with the server of that commit, then with this tree, back to back on the same
machine, ``--rounds`` times with the order alternating, and the comparison is printed: each
round's throughput and p99 of this tree against that commit's, and their medians. The earlier
commit runs from a temporary git worktree on a virtualenv of its own dependencies (built once
and kept under ``~/.cache/baton-bench``), pinned to the versions this virtualenv has: what
that commit would run on this machine, without the dependencies added since (uvloop and
httptools, which uvicorn would otherwise pick up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks.pg import throwaway_database
from core.demo import USERS
from core.identity import issue_token

BATON = str(Path(sys.executable).parent / "baton")
SECRET = "load-test-secret-that-is-long-enough-for-hs256"
ACCOUNT_MANAGERS = [u for u in USERS if "account_manager" in u.roles]
READERS = [u.id for u in USERS if u.roles[0] in {"account_manager", "team_manager", "finance"}]
READERS += ["cs.liu", "sd.wang"]

LIST = """query($after: String) { customers(first: 50, after: $after) {
  edges { node { id name territory owner { id } } } pageInfo { hasNextPage endCursor } } }"""
FINANCE_LIST = """{ customers(first: 50) { edges { node { id name paymentTermsDays
  paymentMethod invoiceRequirements } } } }"""
DETAIL = """query($id: ID!) { customer(id: $id) { id name version valueTier owner { id }
  ownershipHistory { owner { id } since until } } }"""
ALL = """query($after: String) { customers(first: 100, after: $after) {
  edges { node { id version valueTier invoiceRequirements owner { id } } }
  pageInfo { hasNextPage endCursor } } }"""
READ_COUNTER = "query($id: ID!) { customer(id: $id) { version invoiceRequirements } }"
UPDATE = """mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) { customer { version invoiceRequirements } } }"""
REQUEST = """mutation($input: RequestReassignmentInput!) {
  requestReassignment(input: $input) { request { id } } }"""
REVIEW = """mutation($input: ReviewReassignmentInput!) {
  reviewReassignment(input: $input) { handover { id version } } }"""
# (mutation, its input type, who takes the step, the step's own input fields)
HANDOVER_STEPS = [
    (
        "submitHandbook",
        "SubmitHandbookInput",
        "outgoing",
        {
            "profileSummary": "Load-test customer",
            "openItems": "None",
            "strategyAdvice": "Keep in touch",
            "riskWarnings": "None",
        },
    ),
    ("reviewHandbook", "ReviewHandbookInput", "manager", {"decision": "APPROVE"}),
    (
        "recordHandoverMeeting",
        "RecordHandoverMeetingInput",
        "outgoing",
        {"kind": "BRIEFING", "heldAt": "2026-12-01T10:00:00Z"},
    ),
    (
        "recordHandoverMeeting",
        "RecordHandoverMeetingInput",
        "outgoing",
        {"kind": "SIMULATION", "heldAt": "2026-12-01T14:00:00Z"},
    ),
    ("notifyCustomer", "HandoverStepInput", "outgoing", {}),
    ("completeHandover", "HandoverStepInput", "manager", {}),
]


@dataclass
class Flow:
    """One customer's way from its owner to a colleague, one step per turn."""

    customer_id: str
    outgoing: str
    incoming: str
    manager: str
    step: int = 0  # 0 request, 1 review, 2.. handover steps
    request_id: str | None = None
    handover_id: str | None = None
    version: int = 0
    failed: bool = False  # a step answered an error (counted): the flow stops

    @property
    def done(self) -> bool:
        return self.step == 2 + len(HANDOVER_STEPS)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    samples: list[str] = field(default_factory=list)


class Load:
    """The clients' shared state: tokens, hot customers, flows, what was acknowledged."""

    def __init__(self, url: str, customers: list[dict[str, Any]], rng: random.Random) -> None:
        self.url = url
        self.rng = rng
        now = datetime.now(UTC)
        self.tokens = {
            u.id: issue_token(u.id, SECRET, now=now, ttl=timedelta(hours=2)) for u in USERS
        }
        self.ids = [c["id"] for c in customers]
        # STRATEGIC and HIGH customers need a week's notice before a handover completes.
        movable = [c for c in customers if c["owner"] and c["valueTier"] in {"MEDIUM", "LOW"}]
        rng.shuffle(movable)
        # Disjoint sets, so each invariant is about one kind of change.
        self.hot = movable[:8]
        self.flows = [self._flow(c) for c in movable[8:48]]
        self.acknowledged: Counter[str] = Counter()
        self.tally = Tally()

    def _flow(self, customer: dict[str, Any]) -> Flow:
        owner = next(u for u in ACCOUNT_MANAGERS if u.id == customer["owner"]["id"])
        colleagues = [u.id for u in ACCOUNT_MANAGERS if u.team == owner.team and u.id != owner.id]
        assert owner.manager is not None
        return Flow(customer["id"], owner.id, self.rng.choice(colleagues), owner.manager)

    async def call(
        self, client: httpx.AsyncClient, kind: str, user: str, query: str, variables: Any = None
    ) -> dict[str, Any] | None:
        """One request; its latency under ``kind``. Returns the data, or None on a CONFLICT."""
        began = time.perf_counter()
        response = await post(client, self.tokens[user], query, variables)
        self.tally.latencies[kind].append(time.perf_counter() - began)
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
        if response.status_code == 200 and codes == ["CONFLICT"] and kind == "update":
            self.tally.conflicts += 1
            return None
        if response.status_code != 200 or codes:
            self.tally.errors[f"{kind}: HTTP {response.status_code} {codes}"] += 1
            if len(self.tally.samples) < 5:
                self.tally.samples.append(f"{kind} as {user}: {response.text[:300]}")
            return None
        return body["data"]  # type: ignore[no-any-return]

    async def read(self, client: httpx.AsyncClient) -> None:
        user = self.rng.choice(READERS)
        if user == "fin.he":
            await self.call(client, "read", user, FINANCE_LIST)
        elif user.startswith("am.") and self.rng.random() < 0.5:
            await self.call(client, "read", user, LIST)
        else:
            await self.call(client, "read", "sd.wang", DETAIL, {"id": self.rng.choice(self.ids)})

    async def update(self, client: httpx.AsyncClient) -> None:
        customer = self.rng.choice(self.hot)
        owner = customer["owner"]["id"]
        for _ in range(20):  # re-read and retry on CONFLICT, as a frontend would
            current = await self.call(client, "read", owner, READ_COUNTER, {"id": customer["id"]})
            if current is None:
                return
            counter = current["customer"]["invoiceRequirements"] or ""
            count = int(counter.removeprefix("load n=")) if counter.startswith("load n=") else 0
            changed = await self.call(
                client,
                "update",
                owner,
                UPDATE,
                {
                    "input": {
                        "id": customer["id"],
                        "expectedVersion": current["customer"]["version"],
                        "invoiceRequirements": f"load n={count + 1}",
                    }
                },
            )
            if changed is not None:
                self.acknowledged[customer["id"]] += 1
                return

    async def advance(self, client: httpx.AsyncClient) -> bool:
        """One step of a flow nobody else is advancing; False when every flow is done."""
        waiting = [f for f in self.flows if not (f.done or f.failed)]
        if not waiting:
            return False
        flow = self.rng.choice(waiting)
        self.flows.remove(flow)  # taken while in flight
        try:
            await self._step(client, flow)
        finally:
            self.flows.append(flow)
        return True

    async def _step(self, client: httpx.AsyncClient, flow: Flow) -> None:
        if flow.step == 0:
            data = await self.call(
                client,
                "reassignment",
                flow.outgoing,
                REQUEST,
                {
                    "input": {
                        "customerId": flow.customer_id,
                        "toOwnerId": flow.incoming,
                        "trigger": "ROLE_CHANGE",
                        "reason": "load test",
                    }
                },
            )
            if data:
                flow.request_id = data["requestReassignment"]["request"]["id"]
        elif flow.step == 1:
            data = await self.call(
                client,
                "reassignment",
                flow.manager,
                REVIEW,
                {"input": {"requestId": flow.request_id, "decision": "APPROVE"}},
            )
            if data:
                handover = data["reviewReassignment"]["handover"]
                flow.handover_id, flow.version = handover["id"], handover["version"]
        else:
            name, input_type, actor, extra = HANDOVER_STEPS[flow.step - 2]
            query = (
                f"mutation($input: {input_type}!) "
                f"{{ {name}(input: $input) {{ handover {{ version }} }} }}"
            )
            user = flow.outgoing if actor == "outgoing" else flow.manager
            variables = {
                "input": {"handoverId": flow.handover_id, "expectedVersion": flow.version, **extra}
            }
            data = await self.call(client, "handover", user, query, variables)
            if data:
                flow.version = data[name]["handover"]["version"]
        if data:
            flow.step += 1
        else:
            flow.failed = True


async def drive(load: Load, requests: int, clients: int, max_seconds: float) -> float:
    """Run operations from ``clients`` concurrent clients until ``requests`` have been sent."""
    deadline = time.monotonic() + max_seconds
    weights = {"read": 55, "update": 25, "advance": 20}

    def sent() -> int:
        return sum(len(v) for v in load.tally.latencies.values())

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=load.url, timeout=30) as client:
            while sent() < requests and time.monotonic() < deadline:
                kind = load.rng.choices(list(weights), weights=list(weights.values()))[0]
                if kind == "advance" and await load.advance(client):
                    continue
                if kind == "update":
                    await load.update(client)
                else:
                    await load.read(client)

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return time.perf_counter() - began


async def post(
    client: httpx.AsyncClient, token: str, query: str, variables: Any = None
) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )


async def fetch_all(url: str, token: str) -> list[dict[str, Any]]:
    customers: list[dict[str, Any]] = []
    after = None
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while True:
            body = (await post(client, token, ALL, {"after": after})).json()
            page = body["data"]["customers"]
            customers += [e["node"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return customers
            after = page["pageInfo"]["endCursor"]


async def invariants(dsn: str, load: Load, started: datetime) -> list[str]:
    """What the database must show after the run; the failures, if any."""
    failures = []
    hot = [c["id"] for c in load.hot]
    done = {f.customer_id: f.incoming for f in load.flows if f.done}
    conn = await asyncpg.connect(dsn)
    try:
        stored = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, version, invoice_requirements FROM customers WHERE id = ANY($1)", hot
            )
        }
        audited = dict(
            await conn.fetch(
                "SELECT entity_id, count(*) FROM audit_entries WHERE entity_id = ANY($1) "
                "AND action = 'updateCustomer' AND at >= $2 GROUP BY entity_id",
                hot,
                started,
            )
        )
        owners = dict(
            await conn.fetch(
                "SELECT customer_id, owner_id FROM ownerships "
                "WHERE customer_id = ANY($1) AND valid_to IS NULL",
                list(done),
            )
        )
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT customer_id FROM ownerships WHERE valid_to IS NULL "
            "GROUP BY customer_id HAVING count(*) > 1) AS d"
        )
    finally:
        await conn.close()
    for c in load.hot:
        row, acked = stored[c["id"]], load.acknowledged[c["id"]]
        counter, bumps = row["invoice_requirements"], row["version"] - c["version"]
        expected = f"load n={acked}" if acked else c["invoiceRequirements"]
        if (counter, bumps, audited.get(c["id"], 0)) != (expected, acked, acked):
            failures.append(
                f"customer {c['id']}: {acked} acknowledged updates, but counter {counter!r}, "
                f"version +{bumps}, {audited.get(c['id'], 0)} audit entries"
            )
    failures += [
        f"handover of {customer}: owner {owners.get(customer)}"
        for customer, incoming in done.items()
        if owners.get(customer) != incoming
    ]
    if doubled:
        failures.append(f"{doubled} customers have two active owners")
    return failures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Outcome:
    """What one run measured (all requests together), and whether every check passed."""

    throughput: float
    p50: float
    p99: float
    passed: bool


@dataclass(frozen=True)
class Tree:
    """The code the server runs: this checkout, or a worktree of an earlier commit."""

    label: str
    path: Path | None = None
    python: str = sys.executable

    def command(self, *args: str) -> list[str]:
        if self.path is None:
            return [BATON, *args]
        # The earlier commit's code on its own virtualenv: its own directory comes first.
        return [self.python, "-c", "from core.cli import app; app()", *args]

    def env(self, env: dict[str, str]) -> dict[str, str]:
        return env if self.path is None else {**env, "PYTHONPATH": str(self.path)}


@contextmanager
def worktree(rev: str) -> Iterator[Tree]:
    """A temporary git worktree of ``rev`` on its own virtualenv, the worktree removed
    afterwards."""
    path = Path(tempfile.mkdtemp(prefix="baton-load-rev-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], check=True)
    try:
        yield Tree(rev, path, own_virtualenv(path))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], check=False)


def own_virtualenv(tree: Path) -> str:
    """The python of a virtualenv with the runtime dependencies ``tree`` declares, at the
    versions this virtualenv has (a constraint, so nothing this tree added since comes along);
    built once per commit."""
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    home = Path.home() / ".cache" / "baton-bench" / f"venv-{commit}"
    python = home / "bin" / "python"
    if not (home / "complete").exists():
        print(f"--- building a virtualenv for {commit[:12]} in {home}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        freeze = subprocess.run(
            [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        constraints = home / "constraints.txt"
        constraints.write_text(freeze)
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, "-c", str(constraints), str(tree)], check=True)
        (home / "complete").touch()
    return str(python)


def _baton(
    *args: str, env: dict[str, str], tree: Tree = Tree("this tree")
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tree.command(*args),
        env=tree.env(env),
        cwd=tree.path,
        capture_output=True,
        text=True,
        check=False,
    )


def _report(tally: Tally, elapsed: float) -> Outcome:
    total = sum(len(v) for v in tally.latencies.values())
    print(f"{'kind':<14}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
    every = [v for values in tally.latencies.values() for v in values]
    rows = [*sorted(tally.latencies.items()), ("all", every)]
    for kind, values in rows:
        cuts = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
        print(f"{kind:<14}{len(values):>10}{cuts[49] * 1000:>10.1f}{cuts[98] * 1000:>10.1f}")
    print(f"throughput: {total / elapsed:.1f} req/s ({total} requests in {elapsed:.1f} s)")
    print(f"errors: {sum(tally.errors.values())}  conflicts (retried): {tally.conflicts}")
    for error, count in tally.errors.most_common():
        print(f"  {count} x {error}")
    for sample in tally.samples:
        print(f"  e.g. {sample}")
    cuts = statistics.quantiles(every, n=100) if len(every) > 1 else every * 99
    return Outcome(total / elapsed, cuts[49] * 1000, cuts[98] * 1000, not tally.errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--max-seconds", type=float, default=180)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--against", metavar="REV", help="compare with the server of a commit")
    parser.add_argument(
        "--rounds", type=int, default=3, help="with --against: runs of each, alternating"
    )
    args = parser.parse_args()
    if args.against is None:
        return 0 if run(Tree("this tree"), args).passed else 1
    this = Tree("this tree")
    pairs: list[tuple[Outcome, Outcome]] = []
    with worktree(args.against) as earlier:
        for turn in range(args.rounds):
            # Alternating which goes first: neither is favoured by the order or by a passing
            # disturbance of the machine.
            trees = (earlier, this) if turn % 2 == 0 else (this, earlier)
            found = {tree.label: run(tree, args) for tree in trees}
            pairs.append((found[earlier.label], found[this.label]))
    print(f"\n{'round':<8}{'tree':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for turn, pair in enumerate(pairs, 1):
        for label, o in zip((args.against, "this tree"), pair, strict=True):
            print(f"{turn:<8}{label[:16]:<16}{o.throughput:>10.1f}{o.p50:>10.1f}{o.p99:>10.1f}")
    throughputs = [now.throughput / before.throughput for before, now in pairs]
    tails = [now.p99 / before.p99 for before, now in pairs]
    print(
        f"this tree vs {args.against}, median of {len(pairs)} rounds: throughput "
        f"{statistics.median(throughputs):.2f}x (goal >= 2; rounds "
        f"{', '.join(f'{t:.2f}' for t in throughputs)}), p99 {statistics.median(tails):.2f}x "
        f"(goal <= 0.5; rounds {', '.join(f'{t:.2f}' for t in tails)})"
    )
    return 0 if all(o.passed for pair in pairs for o in pair) else 1


def run(tree: Tree, args: argparse.Namespace) -> Outcome:
    """One whole run (cluster, migration, demo data, server, load, invariants) on ``tree``."""
    print(f"--- server: {tree.label}")
    with throwaway_database("baton_load") as (dsn, database):
        env = {**os.environ, "BATON_DATABASE_URL": database, "BATON_JWT_SECRET": SECRET}
        for step in (["db", "upgrade"], ["demo", "--customers", str(args.customers)]):
            done = _baton(*step, env=env, tree=tree)
            if done.returncode:
                print(done.stdout, done.stderr)
                return Outcome(0, 0, 0, passed=False)
        port = _free_port()
        serve = subprocess.Popen(
            tree.command("serve", "--port", str(port), "--workers", str(args.workers)),
            env=tree.env({**env, "BATON_GRAPHIQL": "0"}),
            cwd=tree.path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url)
            database_dsn = dsn.replace("/postgres?", "/baton_load?")
            return asyncio.run(_run(url, args, database_dsn, env, tree))
        finally:
            serve.terminate()
            serve.wait(30)


async def _run(
    url: str, args: argparse.Namespace, dsn: str, env: dict[str, str], tree: Tree
) -> Outcome:
    rng = random.Random(7)
    admin = issue_token("admin", SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1))
    load = Load(url, await fetch_all(url, admin), rng)
    started = datetime.now(UTC)
    print(
        f"{args.workers} workers on PostgreSQL, {len(load.ids)} customers, {args.clients} "
        f"clients, {len(load.hot)} hot customers, {len(load.flows)} handover flows"
    )
    elapsed = await drive(load, args.requests, args.clients, args.max_seconds)
    outcome = _report(load.tally, elapsed)
    completed = sum(f.done for f in load.flows)
    print(f"handovers completed: {completed} of {len(load.flows)}")
    print(f"acknowledged updates: {sum(load.acknowledged.values())}")
    failures = await invariants(dsn, load, started)
    verify = _baton("audit", "verify", env=env, tree=tree)
    print(f"baton audit verify: exit {verify.returncode}: {verify.stdout.strip()}")
    if verify.returncode:
        failures.append("the audit chain does not verify")
    for failure in failures:
        print(f"INVARIANT FAILED: {failure}")
    print("invariants: " + ("FAILED" if failures else "ok (no lost update, one owner each)"))
    return Outcome(outcome.throughput, outcome.p50, outcome.p99, outcome.passed and not failures)


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


if __name__ == "__main__":
    sys.exit(main())
