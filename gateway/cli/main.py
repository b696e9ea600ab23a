"""The `tracegate` command: the root group, with each command group added from its own module."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.audit import audit
from gateway.cli.deadletters import dead_letters
from gateway.cli.pki import pki
from gateway.cli.records import records
from gateway.cli.routes import routes
from gateway.cli.run import demo, serve
from gateway.cli.topology import topology
from gateway.cli.traces import traces
from gateway.cli.trust import trust
from gateway.store import DatabaseError


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


for command in (serve, demo, pki, routes, traces, records, audit, dead_letters, topology, trust):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `tracegate` script: a database or file fault is one clear line, not a traceback."""
    try:
        cli(prog_name="tracegate")
    except DatabaseError as err:
        detail = str(getattr(err, "orig", None) or err).splitlines()[0]
        click.echo(f"Error: the database could not be used: {detail}", err=True)
        sys.exit(2)
    except OSError as err:  # a file named by the settings (or made by the command) that cannot be used
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)
