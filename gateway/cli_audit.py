"""`tracegate audit`: the auditor's commands over the configured store (registered on `tracegate` by cli.py)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from gateway.errors import ConfigurationError

if TYPE_CHECKING:
    from gateway.replay import ReplayReport
    from gateway.settings import Settings

audit = click.Group("audit", help="The audit trail: replay the recorded traffic against the decisions on record.")


async def _replay_with_progress(settings: Settings) -> ReplayReport:
    """Replay the configured store, with a progress bar when standard error is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gateway.replay import replay
    from gateway.store import Store

    console = Console(stderr=True)
    store = Store(settings.database_url, schema=settings.database_schema or None)
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task("replay", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return await replay(store, settings, progress=advance)
    finally:
        await store.close()


def _plural(n: int, noun: str) -> str:
    """`1 message`, `2 messages`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


@audit.command("replay")
@click.pass_context
def replay_command(ctx: click.Context) -> None:
    """Re-decide every recorded message and report each divergence; exit 1 if there is any.

    Each message's stored bytes go through a real pipeline with the routing table and the time recorded for it.
    Nothing is sent and the store is only read: the replay writes to a temporary SQLite database of its own.
    """
    from gateway.cli import _settings
    from gateway.logs import configure_logging

    settings = _settings(ctx)
    configure_logging("warning", settings.log_format)  # the replay's pipeline logs each message at info
    try:
        report = asyncio.run(_replay_with_progress(settings))
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err
    for divergence in report.divergences:
        click.echo(str(divergence))
    count = len(report.divergences)
    click.echo(f"replayed {_plural(report.replayed, 'message')}: {_plural(count, 'divergence')}")
    if report.divergences:
        ctx.exit(1)
