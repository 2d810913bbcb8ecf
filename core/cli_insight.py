"""``baton insight refresh [--all]``: the insight_refresh job's refresh by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from core.cli_support import DatabaseOption, run, settings_for
from core.insight.materialised import Refreshed
from core.services import Services

insight_app = typer.Typer(help="Customer insight: engagement, RFM, roll-ups.", no_args_is_help=True)


@insight_app.command("refresh")
def insight_refresh(
    database: DatabaseOption = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="Re-rank every customer and rebuild the monthly roll-up from scratch."
        ),
    ] = False,
) -> None:
    """Bring the engagement and RFM rows and the monthly roll-up up to date: the customers
    marked dirty and the rows time made stale (a re-rank when the last is a day old), or
    everything with --all. Stored health follows in the scheduler's insight_refresh job."""

    async def work(services: Services) -> Refreshed:
        return await services.insight.refresh(full=everything)

    done = run(settings_for(database), work)
    if done.months is not None:
        typer.echo(
            f"re-ranked {done.rows} insight rows; rebuilt the monthly roll-up: {done.months} rows"
        )
    elif done.reranked:
        typer.echo(f"re-ranked {done.rows} insight rows (the last re-rank was a day old or none)")
    else:
        typer.echo(f"refreshed {done.rows} due insight rows and their months in the roll-up")
