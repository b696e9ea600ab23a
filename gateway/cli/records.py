"""`tracegate records`: the administrators' view of the register (contract 4.3), its imports and its hits."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from gateway.cli.common import open_store
from gateway.records.register import STATUSES, WITHDRAWN

T = TypeVar("T")
FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
SINCE = click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="From this day (UTC), inclusive.")
UNTIL = click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="To this day (UTC), inclusive.")
LIST_COLUMNS = ("state", "reference", "status", "serial", "make", "model", "caliber", "date", "updated_at", "version")


@click.group()
def records() -> None:
    """The register of lost, stolen, trafficked and smuggled firearms."""


def _with_store(ctx: click.Context, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(store)` on the configured store, opened and closed around it."""

    async def run() -> T:
        store = open_store(ctx)
        await store.start()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _day(value: datetime | None, *, end: bool = False) -> datetime | None:
    """A `--since`/`--until` day as the UTC moment it starts (the day after, for an inclusive end)."""
    if value is None:
        return None
    day = value.date() + timedelta(days=1) if end else value.date()
    return datetime.combine(day, time(), tzinfo=UTC)


def render(rows: list[dict[str, Any]], fmt: str, columns: Sequence[str], title: str) -> str:
    """Rows as JSON, CSV (every column) or a terminal table (`columns`)."""
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(columns))
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c))[:40] for c in columns))
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def _echo(text: str, output: Path | None) -> None:
    """To the file named, else to the terminal."""
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@records.command("list")
@click.option("--state", help="Only records this state reported.")
@click.option("--status", type=click.Choice([*STATUSES, WITHDRAWN]))
@SINCE
@UNTIL
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@FORMAT
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to a file instead.")
@click.pass_context
def records_list(
    ctx: click.Context,
    state: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    fmt: str,
    output: Path | None,
) -> None:
    """List records by state, status and when they last changed; export as CSV or JSON."""
    from gateway.store.register_reads import list_records

    found = _with_store(
        ctx,
        lambda store: list_records(
            store,
            state=state.upper() if state else None,
            status=status,
            since=_day(since),
            until=_day(until, end=True),
            limit=limit,
        ),
    )
    _echo(render(found, fmt, LIST_COLUMNS, f"{len(found)} record(s)"), output)


@records.command("show")
@click.argument("state")
@click.argument("reference")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def records_show(ctx: click.Context, state: str, reference: str, fmt: str) -> None:
    """One record as it stands, and the hits it made."""
    from gateway.store.register_reads import list_hits, record_versions

    async def work(store: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        versions = await record_versions(store, state.upper(), reference)
        hits = [h for h in await list_hits(store, state=state.upper()) if h["reference"] == reference]
        return versions, hits

    versions, hits = _with_store(ctx, work)
    if not versions:
        raise click.ClickException(f"{state.upper()} has reported no record {reference}")
    current = versions[-1]
    if fmt == "json":
        click.echo(json.dumps({"record": current, "hits": hits}, indent=2, default=str))
        return
    for key, value in current.items():
        if value not in (None, ""):
            click.echo(f"{key:>20}: {value}")
    click.echo(f"{'hits':>20}: {len(hits)}")
    for hit in hits:
        click.echo(f"{'':>20}  {hit['at'][:19]} trace {hit['trace_id']} found by {hit['found_by']} ({hit['score']})")


@records.command("history")
@click.argument("state")
@click.argument("reference")
@FORMAT
@click.pass_context
def records_history(ctx: click.Context, state: str, reference: str, fmt: str) -> None:
    """Every version of one record: reported, updated, imported, withdrawn, by which message or import."""
    from gateway.store.register_reads import record_versions

    versions = _with_store(ctx, lambda store: record_versions(store, state.upper(), reference))
    if not versions:
        raise click.ClickException(f"{state.upper()} has reported no record {reference}")
    columns = ("version", "change", "status", "updated_at", "source", "serial", "make", "withdrawal_reason")
    click.echo(render(versions, fmt, columns, f"{state.upper()} {reference}: {len(versions)} version(s)"), nl=False)


@records.command("hits")
@click.option("--state", help="Only hits where this state reported the record or found the firearm.")
@SINCE
@UNTIL
@FORMAT
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to a file instead.")
@click.pass_context
def records_hits(
    ctx: click.Context, state: str | None, since: datetime | None, until: datetime | None, fmt: str, output: Path | None
) -> None:
    """Hits (a trace request's firearm matched a record) by state and period."""
    from gateway.store.register_reads import HIT_VIEW, list_hits

    found = _with_store(
        ctx,
        lambda store: list_hits(
            store, state=state.upper() if state else None, since=_day(since), until=_day(until, end=True)
        ),
    )
    _echo(render(found, fmt, HIT_VIEW, f"{len(found)} hit(s)"), output)


@records.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--state", required=True, help="The state whose register the file holds.")
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--show-refused", type=click.IntRange(min=0), default=20, help="List at most this many refused rows.")
@click.pass_context
def records_import(ctx: click.Context, file: Path, state: str, dry_run: bool, show_refused: int) -> None:
    """Import a state's national register from CSV (in one transaction, audited with the file's SHA-256).

    Columns: reference, status, serial_number, date (required); make, model, caliber, country_of_manufacture,
    place, circumstances. A row for a reference the state has reported already updates that record."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gateway.core.errors import ConfigurationError
    from gateway.store.imports import import_file

    code = state.upper()
    if len(code) != 2 or not code.isalpha():
        raise click.UsageError("--state is a two-letter state code")
    with file.open("rb") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("checking" if dry_run else "importing", total=total)
        try:
            summary = _with_store(
                ctx,
                lambda store: import_file(
                    store,
                    file,
                    code,
                    now=datetime.now(UTC),
                    dry_run=dry_run,
                    progress=lambda done: bar.update(task, completed=done),
                ),
            )
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
    verb = "would take" if dry_run else "took"
    click.echo(
        f"{file.name} (sha256 {summary.file_sha256[:16]}...): {verb} {summary.taken} row(s) for {code} "
        f"({summary.new} new, {summary.updated} updated), refused {len(summary.refused)}"
        + ("" if dry_run else f"; import {summary.import_id}, audited")
    )
    for refusal in summary.refused[:show_refused]:
        click.echo(f"  line {refusal.line}: {refusal.reason}")
    if len(summary.refused) > show_refused:
        click.echo(f"  ... and {len(summary.refused) - show_refused} more")
