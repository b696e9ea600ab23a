"""`tracegate audit`: the auditor's commands over the configured store (registered on `tracegate` by cli.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.errors import ConfigurationError

if TYPE_CHECKING:
    from gateway.replay import ReplayReport
    from gateway.settings import Settings

audit = click.Group(
    "audit", help="The audit trail: verify it, replay the decisions, export records and bundles, sign checkpoints."
)


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


def _gateway_certificates(settings: Settings) -> list[Any]:
    """The gateway's certificate(s): the configured one and any kept under the trust directory's GATEWAY/."""
    from cryptography import x509

    pems = [settings.gateway_cert] if settings.gateway_cert.exists() else []
    pems += sorted((settings.trust_dir / "GATEWAY").glob("*.pem")) if (settings.trust_dir / "GATEWAY").is_dir() else []
    return [x509.load_pem_x509_certificate(p.read_bytes()) for p in pems]


@audit.command("verify")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Verify an exported bundle on its own instead of the configured store.",
)
@click.option("--no-signatures", is_flag=True, help="Skip re-verifying the senders' original signatures.")
@click.pass_context
def verify_command(ctx: click.Context, bundle: Path | None, no_signatures: bool) -> None:
    """Check the chain, the checkpoints, every stored row and every original signature; exit 1 on any fault."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gateway.auditor import Report, verify_store
    from gateway.bundle import verify_bundle
    from gateway.cli import _settings
    from gateway.store import Store
    from gateway.trust import TrustStore

    if bundle is not None:
        report: Report = verify_bundle(bundle)
    else:
        settings = _settings(ctx)
        console = Console(stderr=True)

        async def run() -> Report:
            store = Store(settings.database_url, schema=settings.database_schema or None)
            try:
                columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn())
                with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
                    task = bar.add_task("verify", total=None)
                    return await verify_store(
                        store,
                        TrustStore.load(settings.trust_dir),
                        _gateway_certificates(settings),
                        signatures=not no_signatures,
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                    )
            finally:
                await store.close()

        try:
            report = asyncio.run(run())
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
    for problem in report.problems:
        click.echo(problem)
    verdict = "intact" if report.ok else f"{len(report.problems)} problem(s); the first: {report.problems[0]}"
    click.echo(
        f"{report.records} records, {report.checkpoints} checkpoints, {report.messages_checked} messages, "
        f"{report.signatures_checked} original signatures checked: {verdict}"
    )
    if not report.ok:
        ctx.exit(1)


@audit.command("export")
@click.option("--trace", "trace_id", help="Only the records of this trace.")
@click.option("--state", help="Only the records touching this state.")
@click.option("--since", type=click.DateTime(), help="From this time (UTC unless a zone is given).")
@click.option("--until", type=click.DateTime(), help="Up to this time.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="JSON Lines file (default: stdout).")
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=True), help="Write a self-contained bundle here.")
@click.pass_context
def export_command(
    ctx: click.Context,
    trace_id: str | None,
    state: str | None,
    since: datetime | None,
    until: datetime | None,
    output: Path | None,
    bundle: Path | None,
) -> None:
    """Export the records of a trace, a state or a time window as JSON Lines, or as a verifiable bundle."""
    from gateway.bundle import Selection, export_lines, write_bundle
    from gateway.cli import _settings
    from gateway.store import Store

    settings = _settings(ctx)
    selection = Selection(trace_id=trace_id, state=state, since=_utc(since), until=_utc(until))

    async def run() -> int:
        store = Store(settings.database_url, schema=settings.database_schema or None)
        try:
            if bundle is not None:
                manifest = await write_bundle(
                    store, selection, bundle, trust_dir=settings.trust_dir, gateway_cert=settings.gateway_cert
                )
                return len(manifest["matched"])
            count = 0
            out = output.open("w", encoding="utf-8") if output else None
            try:
                async for line in export_lines(store, selection):
                    count += 1
                    if out:
                        out.write(line + "\n")
                    else:
                        click.echo(line)
            finally:
                if out:
                    out.close()
            return count
        finally:
            await store.close()

    count = asyncio.run(run())
    where = f"bundle {bundle}" if bundle else (str(output) if output else "")
    if where:
        click.echo(f"{count} records exported to {where}")


@audit.command("checkpoint")
@click.pass_context
def checkpoint_command(ctx: click.Context) -> None:
    """Sign the audit chain's head now."""
    from gateway.auditor import write_checkpoint
    from gateway.cli import _settings
    from gateway.signatures import Signer
    from gateway.store import Store

    settings = _settings(ctx)

    async def run() -> int | None:
        store = Store(settings.database_url, schema=settings.database_schema or None)
        try:
            signer = Signer.from_files(settings.gateway_key, settings.gateway_cert)
            return await write_checkpoint(store, signer, datetime.now(UTC))
        finally:
            await store.close()

    signed = asyncio.run(run())
    click.echo(f"checkpoint signs record {signed}" if signed else "nothing new since the last checkpoint")


def _utc(moment: datetime | None) -> datetime | None:
    """A naive time from the command line is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
