"""The `tracegate` command: serve, the development PKI, routing table checks, the demo."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import uvloop

from gateway.errors import ConfigurationError, GatewayError, Refused
from gateway.logs import configure_logging
from gateway.model import TraceStatus
from gateway.settings import Settings, load_settings


def _settings(ctx: click.Context) -> Settings:
    """The settings, loaded once per invocation; a bad setting ends the command with its message."""
    if ctx.obj is None:
        try:
            ctx.obj = load_settings(config_file=ctx.find_root().params.get("config"))
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
    settings: Settings = ctx.obj
    return settings


@click.group()
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings file (default: $TRACEGATE_CONFIG or config/tracegate.toml).",
)
@click.version_option(package_name="tracegate")
def cli(config: Path | None) -> None:
    """tracegate: the secure switch between national firearm tracing centres (ISACS 05.31)."""


@cli.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the switch: consume itrace.inbound, relay the outbox, drain on SIGTERM."""
    from gateway.app import Gateway

    settings = _settings(ctx)
    configure_logging(settings.log_level, settings.log_format)
    try:
        gateway = Gateway(settings)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # libuv: less overhead per message
            runner.run(gateway.serve_forever())
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err
    except ConnectionError as err:
        raise click.ClickException(
            f"{err}. Start RabbitMQ (`rabbitmq-server -detached`) or set TRACEGATE_BROKER_URL."
        ) from err


@cli.group()
def pki() -> None:
    """The development PKI (never for production keys)."""


@pki.command("init")
@click.option("--states", default="", help="Comma-separated state codes (default: the routing table's).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var/pki"))
@click.option("--force", is_flag=True, help="Replace existing keys and certificates.")
@click.pass_context
def pki_init(ctx: click.Context, states: str, out_dir: Path, force: bool) -> None:
    """Create a CA, a key pair per state and the gateway's key; write trust material to the trust directory."""
    from gateway.pki import create_dev_pki
    from gateway.routing.table import load_table

    settings = _settings(ctx)
    codes = [s.strip().upper() for s in states.split(",") if s.strip()]
    if not codes:
        try:
            table = load_table(settings.routing_table)
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
        codes = sorted(c for c, e in table.states.items() if e.delegate is None)
    made = create_dev_pki(out_dir, settings.trust_dir, codes, now=datetime.now(UTC), force=force)
    click.echo(f"development PKI in {made.out_dir}; trust material in {made.trust_dir} for {', '.join(made.states)}")


@cli.group()
def routes() -> None:
    """The administrators' routing table."""


@routes.command("check")
@click.argument("table_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def routes_check(ctx: click.Context, table_file: Path | None) -> None:
    """Validate a routing table (default: the configured one) and print its version."""
    from gateway.routing.table import load_table
    from gateway.trust import TrustStore

    settings = _settings(ctx)
    try:
        trust = TrustStore.load(settings.trust_dir)
        table = load_table(table_file or settings.routing_table, trusted=trust.states())
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err
    for code, entry in sorted(table.states.items()):
        extra = f" (delegates to {entry.delegate})" if entry.delegate else ""
        click.echo(f"{code}  {entry.status.value:<9}  {entry.queue:<22} {entry.name}{extra}")
    click.echo(f"valid: {len(table.states)} states, version {table.version}")


@routes.command("explain")
@click.argument("request_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def routes_explain(ctx: click.Context, request_file: Path) -> None:
    """Print where a TraceRequest would go and why, without sending anything."""
    from gateway.envelope import open_envelope
    from gateway.messages import read_trace_request
    from gateway.routing.rules import explain
    from gateway.routing.table import load_table
    from gateway.schemas import SchemaSet

    settings = _settings(ctx)
    try:
        table = load_table(settings.routing_table)
        envelope = open_envelope(request_file.read_bytes(), max_bytes=settings.max_message_bytes)
        SchemaSet.load().validate(envelope.root)
        if envelope.kind != "TraceRequest":
            raise click.ClickException(f"{request_file} is a {envelope.kind}, not a TraceRequest")
        request = read_trace_request(envelope.root)
    except Refused as err:
        raise click.ClickException(f"{request_file}: {err.code}: {err.detail}") from err
    except GatewayError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{request_file.name} from {request.header.sender}: {explain(request, table)}")
    if request.missing_items:
        state = "justified" if request.justified else "would be refused INCOMPLETE"
        click.echo(f"missing essential items ({state}): {', '.join(request.missing_items)}")


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Bring up the whole switch on the local RabbitMQ and play national systems against it."""
    from gateway.demo import run_demo

    settings = _settings(ctx)
    sys.exit(asyncio.run(run_demo(settings)))


def main() -> None:
    """Entry point of the `tracegate` script: a database fault is one clear line, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        cli(prog_name="tracegate")
    except (SQLAlchemyError, OSError) as err:
        detail = str(getattr(err, "orig", None) or err).splitlines()[0]
        click.echo(f"Error: the database could not be used: {detail}", err=True)
        sys.exit(2)


@cli.group()
def traces() -> None:
    """Administrators' view of traces."""


def _store(ctx: click.Context) -> Any:
    """The configured store (opened by the caller)."""
    from gateway.store import Store

    settings = _settings(ctx)
    return Store(settings.database_url, schema=settings.database_schema or None)


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
    from gateway.admin import render_traces, trace_record
    from gateway.store.reads import list_traces

    if role and not state:
        raise click.UsageError("--role needs --state")

    async def run() -> list[dict[str, Any]]:
        store = _store(ctx)
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
    from gateway.admin import render_conversation, trace_record
    from gateway.store.reads import conversation, find_trace

    async def run() -> tuple[Any, list[Any]]:
        store = _store(ctx)
        await store.start()
        try:
            return await find_trace(store, trace_id), await conversation(store, trace_id)
        finally:
            await store.close()

    trace, entries = asyncio.run(run())
    if trace is None:
        raise click.ClickException(f"no trace {trace_id}")
    click.echo(render_conversation(trace_record(trace, datetime.now(UTC)), entries, fmt), nl=False)


from gateway.cli_audit import audit  # noqa: E402  (defined apart: it imports this module lazily)

cli.add_command(audit)

from gateway.cli_deadletters import dead_letters  # noqa: E402

cli.add_command(dead_letters)

from gateway.cli_topology import topology  # noqa: E402

cli.add_command(topology)

from gateway.cli_trust import trust  # noqa: E402

cli.add_command(trust)
