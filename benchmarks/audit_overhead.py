"""What the audit write adds to a single-field customer update.

    python -m benchmarks.audit_overhead [--updates 300] [--rounds 5] [--database URL | --postgres]

One run seeds customers (on a fresh SQLite file, or the migrated, empty database ``--database``
names) and times the update use case (``CustomerService.update``: load under lock, version
check, diff, write) for ``--updates`` distinct customers, changing one field each, in
alternating rounds: audited as always, and with the audit entry's recording switched off in this
process only (the benchmark's baseline; there is no such switch in the service). Prints the
median milliseconds per update of each and their ratio (goal: audited ≤ 1.3x the baseline).
The update is measured at the service, without GraphQL and HTTP around it, so the ratio is
the strictest one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.pg import add_database_choice, on_chosen_database
from core.db import Database
from core.domain import AuditEntry
from core.services import Actor, Services
from core.services import audit as audit_module

EDITOR = "am.audit"


@contextmanager
def audit_off() -> Iterator[None]:
    """The baseline: ``AuditWriter.record`` does nothing while the block runs."""
    record = audit_module.AuditWriter.record
    audit_module.AuditWriter.record = lambda *_args, **_kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        audit_module.AuditWriter.record = record  # type: ignore[method-assign]


async def seed(services: Services, count: int) -> dict[str, int]:
    """Customers by id, with their versions."""
    system = Actor.system()
    await services.users.create(system, EDITOR, "Audit Bench", roles=["admin"])
    versions = {}
    for i in range(count):
        customer = await services.customers.create(
            system, {"name": f"Audit bench {i:05d}", "kind": "ENTERPRISE"}, auto_assign=False
        )
        versions[customer.id] = customer.version
    return versions


async def one_round(services: Services, versions: dict[str, int], label: str) -> float:
    """Milliseconds per update over the customers, each changing ``invoiceRequirements``."""
    actor = Actor(EDITOR)
    began = time.perf_counter()
    for cid, version in versions.items():
        customer = await services.customers.update(
            actor, cid, version, {"invoice_requirements": f"{label} {version}"}
        )
        versions[cid] = customer.version
    return (time.perf_counter() - began) * 1000 / len(versions)


async def run(url: str, args: argparse.Namespace) -> int:
    db = Database(url)
    services = Services.create(db)
    await services.prepare()
    versions = await seed(services, args.updates)
    audited: list[float] = []
    baseline: list[float] = []
    warm = dict(list(versions.items())[:20])
    await one_round(services, warm, "warm-up")
    versions.update(warm)
    for r in range(args.rounds):
        audited.append(await one_round(services, versions, f"audited {r}"))
        with audit_off():
            baseline.append(await one_round(services, versions, f"baseline {r}"))
    async with db.reader() as session:
        entries = await session.scalar(
            select(func.count()).where(AuditEntry.action == "updateCustomer")
        )
    await db.dispose()
    on, off = statistics.median(audited), statistics.median(baseline)
    print(f"{args.updates} updates x {args.rounds} rounds, {url.split(':')[0]}")
    print(f"audited  {on:8.2f} ms/update  (audit entries written: {entries})")
    print(f"baseline {off:8.2f} ms/update  (audit recording off)")
    print(f"audited / baseline: {on / off:.3f}  (goal <= 1.3)")
    expected = args.updates * args.rounds + 20
    if entries != expected:
        print(f"FAIL: {entries} audit entries, expected {expected}")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    add_database_choice(parser, "a migrated, empty database; default: fresh SQLite")
    args = parser.parse_args()
    return on_chosen_database(args, "baton_audit", lambda url: asyncio.run(run(url, args)))
    url = args.database or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'audit.db'}"
    return asyncio.run(run(url, args))


if __name__ == "__main__":
    sys.exit(main())
