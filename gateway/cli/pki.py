"""`tracegate pki`: the development PKI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.common import settings_of
from gateway.core.errors import ConfigurationError


@click.group()
def pki() -> None:
    """The development PKI (never for production keys)."""


@pki.command("init")
@click.option("--states", default="", help="Comma-separated state codes (default: the routing table's).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var/pki"))
@click.option("--force", is_flag=True, help="Replace existing keys and certificates.")
@click.pass_context
def pki_init(ctx: click.Context, states: str, out_dir: Path, force: bool) -> None:
    """Create a CA, a key pair per state and the gateway's key; write trust material to the trust directory."""
    from gateway.dev.pki import create_dev_pki
    from gateway.routing.table import load_table

    settings = settings_of(ctx)
    codes = [s.strip().upper() for s in states.split(",") if s.strip()]
    if not codes:
        try:
            table = load_table(settings.routing_table)
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
        codes = sorted(c for c, e in table.states.items() if e.delegate is None)
    made = create_dev_pki(out_dir, settings.trust_dir, codes, now=datetime.now(UTC), force=force)
    click.echo(f"development PKI in {made.out_dir}; trust material in {made.trust_dir} for {', '.join(made.states)}")
