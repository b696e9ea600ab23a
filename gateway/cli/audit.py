"""`tracegate audit`: the auditor's commands over the configured store (registered on `tracegate` by cli.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.common import settings_of
from gateway.core.errors import ConfigurationError

if TYPE_CHECKING:
    from gateway.audit.replay import ReplayReport
    from gateway.settings import Settings

audit = click.Group(
    "audit", help="The audit trail: verify it, replay the decisions, export records and bundles, sign checkpoints."
)


async def _replay_with_progress(settings: Settings) -> ReplayReport:
    """Replay the configured store, with a progress bar when standard error is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gateway.audit.replay import replay
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
    from gateway.logs import configure_logging

    settings = settings_of(ctx)
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
    pems = [settings.gateway_cert] if settings.gateway_cert.exists() else []
    pems += sorted((settings.trust_dir / "GATEWAY").glob("*.pem")) if (settings.trust_dir / "GATEWAY").is_dir() else []
    return _load_certificates(pems)


def _load_certificates(paths: list[Path]) -> list[Any]:
    """Every certificate in these PEM files."""
    from cryptography import x509

    certs: list[Any] = []
    for path in paths:
        try:
            certs += x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError as err:
            raise click.ClickException(f"{path}: not a PEM certificate ({err})") from err
    return certs


def _expected(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[int, str]:
    """`SEQ:HASH` pairs."""
    out: dict[int, str] = {}
    for value in values:
        seq, _, digest = value.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(f"{value!r}: expected SEQ:HASH, as `audit verify` prints the head")
        out[int(seq)] = digest.lower()
    return out


_OUTSIDE = (
    "a bundle is verified against {what} obtained outside it: pass {option} (the copy inside the bundle proves "
    "nothing: whoever altered the bundle could have replaced it)"
)


@audit.command("verify")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Verify an exported bundle instead of the configured store (needs --gateway-cert and --trust-dir).",
)
@click.option(
    "--gateway-cert",
    "gateway_certs",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The gateway's certificate, obtained independently (repeatable). Default for the store: the configured ones.",
)
@click.option(
    "--trust-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The national systems' trust material, obtained independently. Default for the store: the configured one.",
)
@click.option("--no-signatures", is_flag=True, help="Skip re-verifying the senders' original signatures.")
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0),
    help="Seconds between checkpoints the gateway ran with (default: the configured checkpoint_interval_seconds).",
)
@click.option(
    "--expect-head",
    "expect",
    multiple=True,
    callback=_expected,
    metavar="SEQ:HASH",
    help="A record's number and hash kept outside the database (as a verify printed it): it must still be there.",
)
@click.option(
    "--accept-gap",
    "accepted_gaps",
    multiple=True,
    type=int,
    metavar="SEQ",
    help="A late checkpoint (record SEQ) already investigated, e.g. after a crash: noted, not a fault.",
)
@click.pass_context
def verify_command(
    ctx: click.Context,
    bundle: Path | None,
    gateway_certs: tuple[Path, ...],
    trust_dir: Path | None,
    no_signatures: bool,
    checkpoint_interval: float | None,
    expect: dict[int, str],
    accepted_gaps: tuple[int, ...],
) -> None:
    """Check the chain, the checkpoints and their cadence, every stored row against its record and back, and every
    original signature; exit 1 on any fault."""
    from gateway.audit.export import verify_bundle
    from gateway.audit.verify import Report
    from gateway.xml.trust import TrustStore

    settings = settings_of(ctx)
    interval = settings.checkpoint_interval_seconds if checkpoint_interval is None else checkpoint_interval
    if bundle is not None:
        if not gateway_certs:
            raise click.UsageError(_OUTSIDE.format(what="the gateway's certificate", option="--gateway-cert FILE"))
        if trust_dir is None and not no_signatures:
            raise click.UsageError(
                _OUTSIDE.format(what="the national systems' trust material", option="--trust-dir DIR")
                + "; or --no-signatures to check the chain and the checkpoints only"
            )
        trust = None if no_signatures or trust_dir is None else TrustStore.load(trust_dir)
        certs = _load_certificates(list(gateway_certs))
        report: Report = verify_bundle(bundle, certs, trust, checkpoint_interval=interval, expect=expect)
    else:
        certs = _load_certificates(list(gateway_certs)) if gateway_certs else _gateway_certificates(settings)
        if not certs:
            raise click.ClickException(
                f"{settings.gateway_cert}: no gateway certificate to verify checkpoints with (pass --gateway-cert FILE)"
            )
        try:
            report = asyncio.run(
                _verify_store(
                    settings,
                    TrustStore.load(trust_dir or settings.trust_dir),
                    certs,
                    signatures=not no_signatures,
                    checkpoint_interval=interval,
                    expect=expect,
                    accepted_gaps=accepted_gaps,
                )
            )
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
    _print_report(report, bundle is None)
    if not report.ok:
        ctx.exit(1)


async def _verify_store(settings: Settings, trust: Any, certs: list[Any], **options: Any) -> Any:
    """Verify the configured store, with a progress bar when standard error is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gateway.audit.verify import verify_store
    from gateway.store import Store

    console = Console(stderr=True)
    store = Store(settings.database_url, schema=settings.database_schema or None)
    try:
        columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task("verify", total=None)
            return await verify_store(
                store,
                trust,
                certs,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                **options,
            )
    finally:
        await store.close()


def _print_report(report: Any, store: bool) -> None:
    """Problems, notes, the verdict; for the store, the head to keep for a later `--expect-head`."""
    for problem in report.problems:
        click.echo(problem)
    for note in report.notes:
        click.echo(f"note: {note}")
    verdict = "intact" if report.ok else f"{len(report.problems)} problem(s); the first: {report.problems[0]}"
    click.echo(
        f"{report.records} records, {report.checkpoints} checkpoints, {report.messages_checked} messages, "
        f"{report.signatures_checked} original signatures checked: {verdict}"
    )
    if store and report.head is not None:
        seq, digest = report.head
        click.echo(
            f"head: record {seq}, last signed checkpoint: record {report.last_checkpoint}; keep `--expect-head "
            f"{seq}:{digest}` outside the database to find any later rewrite or cut up to it"
        )


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
    from gateway.audit.export import Selection, export_lines, write_bundle
    from gateway.store import Store

    settings = settings_of(ctx)
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
    from gateway.audit.verify import write_checkpoint
    from gateway.store import Store
    from gateway.xml.signatures import Signer

    settings = settings_of(ctx)

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
