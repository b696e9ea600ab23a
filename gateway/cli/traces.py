"""`tracegate traces`: the administrators' view of traces."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import open_store
from gateway.core.model import TraceStatus


@click.group()
def traces() -> None:
    """Administrators' view of traces."""


@traces.command("list")
@click.option("--state", help="Only traces this state takes part in.")
@click.option("--role", type=click.Choice(["incoming", "outgoing"]), help="With --state: asked of it, or asked by it.")
@click.option("--status", type=click.Choice([s.value for s in TraceStatus]))
@click.option("--overdue", is_flag=True, help="Only traces whose requested state is late.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to a file instead.")
@click.pass_context
def traces_list(
    ctx: click.Context,
    state: str | None,
    role: str | None,
    status: str | None,
    overdue: bool,
    fmt: str,
    output: Path | None,
) -> None:
    """List traces, filtered; export as CSV or JSON."""
    from gateway.cli.views import render_traces, trace_record
    from gateway.store.reads import list_traces

    if role and not state:
        raise click.UsageError("--role needs --state")

    async def run() -> list[dict[str, Any]]:
        store = open_store(ctx)
        await store.start()
        try:
            found = await list_traces(store, state=state.upper() if state else None, role=role, status=status)
        finally:
            await store.close()
        now = datetime.now(UTC)
        return [r for r in (trace_record(t, now) for t in found) if r["overdue"] or not overdue]

    text = render_traces(asyncio.run(run()), fmt)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@traces.command("show")
@click.argument("trace_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def traces_show(ctx: click.Context, trace_id: str, fmt: str) -> None:
    """One trace: status, deadlines, restrictions, and the whole conversation in order."""
    from gateway.cli.views import render_conversation, trace_record
    from gateway.store.reads import conversation, find_trace

    async def run() -> tuple[Any, list[Any]]:
        store = open_store(ctx)
        await store.start()
        try:
            return await find_trace(store, trace_id), await conversation(store, trace_id)
        finally:
            await store.close()

    trace, entries = asyncio.run(run())
    if trace is None:
        raise click.ClickException(f"no trace {trace_id}")
    click.echo(render_conversation(trace_record(trace, datetime.now(UTC)), entries, fmt), nl=False)
