"""``baton import activities|surveys``: CSV and JSON lines, errors by line, all or nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from core.cli import app
from core.db import Database
from core.domain import Activity, AuditEntry, CustomerMonth, Survey
from core.services import Actor, Services

runner = CliRunner()


def baton(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def customers(url: str, n: int) -> list[str]:
    async def run() -> list[str]:
        db = Database(url)
        try:
            services = Services.create(db)
            await services.prepare()
            return [
                (await services.customers.create(Actor.system(), {"name": f"C{i}"})).id
                for i in range(n)
            ]
        finally:
            await db.dispose()

    return asyncio.run(run())


def count(url: str, model: type, *where: Any) -> int:
    async def run() -> int:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                stmt = select(func.count()).select_from(model).where(*where)
                return int(await conn.scalar(stmt) or 0)
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_activities_from_csv_are_imported_and_audited(database_url: str, tmp_path: Path) -> None:
    a, b = customers(database_url, 2)
    path = tmp_path / "history.csv"
    path.write_text(
        "customer_id,kind,at,amount,category,note,days_late\n"
        f"{a},ORDER,2025-10-01T09:00:00+08:00,1200.50,valves,,\n"
        f"{a},PAYMENT,2025-10-20T09:00:00,,,,3\n"
        f"{b},referral,2025-11-02T10:00:00Z,,,new lead,\n"
    )
    code, out = baton("import", "activities", str(path), "--database", database_url)
    assert code == 0, out
    assert "imported 3 activities" in out
    assert count(database_url, Activity) == 3
    # One audit entry per customer.
    assert count(database_url, AuditEntry, AuditEntry.action == "importActivities") == 2


def test_bad_lines_are_reported_by_line_and_nothing_is_imported(
    database_url: str, tmp_path: Path
) -> None:
    (a,) = customers(database_url, 1)
    path = tmp_path / "history.jsonl"
    lines = [
        {"customerId": a, "kind": "ORDER", "at": "2025-10-01T09:00:00Z", "amount": "10"},
        {"customerId": a, "kind": "PURCHASE", "at": "2025-10-01T09:00:00Z"},
        {"customerId": a, "kind": "INTERACTION", "amount": "5", "at": "2025-10-01T09:00:00Z"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    code, out = baton("import", "activities", str(path), "--database", database_url)
    assert code == 1
    assert "line 2: kind: must be one of ORDER" in out
    assert "line 3: amount: only an ORDER has an amount" in out
    assert "line 4: line: not JSON" in out
    assert "3 bad line(s): nothing imported" in out
    assert count(database_url, Activity) == 0


def test_survey_answers_import_all_or_nothing(database_url: str, tmp_path: Path) -> None:
    (a,) = customers(database_url, 1)
    path = tmp_path / "nps.csv"
    header = "customer_id,kind,score,reason,answered_at,occasion\n"
    path.write_text(
        header + f"{a},NPS,9,fast delivery,2025-12-01T00:00:00Z,QUARTERLY\n"
        "cus_unknown,NPS,3,,2025-12-01T00:00:00Z,\n"
    )
    code, out = baton("import", "surveys", str(path), "--database", database_url)
    assert code == 1
    assert "no customer 'cus_unknown'" in out
    assert count(database_url, Survey) == 0
    path.write_text(header + f"{a},NPS,11,,2025-12-01T00:00:00Z,\n")
    code, out = baton("import", "surveys", str(path), "--database", database_url)
    assert (code, "line 2: score: NPS must be between 0 and 10" in out) == (1, True), out
    path.write_text(
        header + f"{a},NPS,9,fast delivery,2025-12-01T00:00:00Z,QUARTERLY\n"
        f"{a},CES,6,,2025-12-02T00:00:00Z,\n"
    )
    code, out = baton("import", "surveys", str(path), "--database", database_url)
    assert code == 0, out
    assert "imported 2 survey answers" in out
    assert count(database_url, Survey) == 2


def test_insight_refresh_brings_the_roll_up_up_to_date(database_url: str, tmp_path: Path) -> None:
    a, b = customers(database_url, 2)
    path = tmp_path / "history.csv"
    path.write_text(
        "customer_id,kind,at,amount,category,note,days_late\n"
        f"{a},ORDER,2025-10-01T09:00:00Z,100,valves,,\n"
        f"{b},REFERRAL,2025-11-02T10:00:00Z,,,,\n"
    )
    assert baton("import", "activities", str(path), "--database", database_url)[0] == 0
    assert count(database_url, CustomerMonth) == 0  # the import marked both customers dirty
    code, out = baton("insight", "refresh", "--database", database_url)
    assert code == 0, out
    assert "re-ranked 2 insight rows" in out  # the first refresh: no re-rank yet
    assert count(database_url, CustomerMonth) == 2
    path.write_text(f"customer_id,kind,at,amount\n{a},ORDER,2025-12-24T09:00:00Z,50\n")
    assert baton("import", "activities", str(path), "--database", database_url)[0] == 0
    code, out = baton("insight", "refresh", "--database", database_url)
    assert (code, out.strip()) == (
        0,
        "refreshed 1 due insight rows and their months in the roll-up",
    )
    assert count(database_url, CustomerMonth) == 3
    code, out = baton("insight", "refresh", "--all", "--database", database_url)
    assert code == 0, out
    assert "re-ranked 2 insight rows; rebuilt the monthly roll-up: 3 rows" in out
