"""`tracegate routes`: check the administrators' routing table, explain where a request would go."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.common import settings_of
from gateway.core.errors import ConfigurationError, GatewayError, Refused


@click.group()
def routes() -> None:
    """The administrators' routing table."""


@routes.command("check")
@click.argument("table_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def routes_check(ctx: click.Context, table_file: Path | None) -> None:
    """Validate a routing table (default: the configured one) and print its version."""
    from gateway.routing.table import load_table
    from gateway.xml.trust import TrustStore

    settings = settings_of(ctx)
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
    from gateway.routing.rules import explain
    from gateway.routing.table import load_table
    from gateway.xml.envelope import open_envelope
    from gateway.xml.read import read_trace_request
    from gateway.xml.schemas import SchemaSet

    settings = settings_of(ctx)
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
