"""`tracegate trust check`: the trust material as the gateway will judge it, and what falls due soon."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.common import settings_of
from gateway.core.errors import ConfigurationError


@click.group("trust")
def trust() -> None:
    """The national systems' certificates and revocation lists."""


@trust.command("check")
@click.option(
    "--trust-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The trust directory (default: the configured one).",
)
@click.option("--warn-days", type=click.FloatRange(min=0), help="Warn this many days ahead (default: trust_warn_days).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.pass_context
def check_command(ctx: click.Context, trust_dir: Path | None, warn_days: float | None, strict: bool) -> None:
    """Load the material as `serve` does and list it (per state: each CA and pinned certificate with its subject C
    and notAfter, each CRL with its issuer and nextUpdate); then name every certificate or CRL the gateway refuses
    now (exit 1) and every one that expires or falls due within the warning window (exit 0 unless --strict). A
    directory that does not load at all is an error (exit 1)."""
    from gateway.xml.trust import TrustStore

    settings = settings_of(ctx)
    directory = trust_dir or settings.trust_dir
    try:
        store = TrustStore.load(directory)
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err
    for item in store.inventory():
        until = item.until.isoformat() if item.until is not None else "none"
        if item.kind == "CRL":
            click.echo(f"{item.state:<8} CRL     issuer {item.name}  next update {until}")
        else:
            click.echo(f"{item.state:<8} {item.kind:<7} {item.name}  C={item.country:<2}  not after {until}")
    findings = store.findings(datetime.now(UTC), settings.trust_warn_days if warn_days is None else warn_days)
    for finding in findings:
        click.echo(f"{finding.level}: {finding.text}")
    problems = sum(f.level == "problem" for f in findings)
    warnings = len(findings) - problems
    click.echo(f"{directory}: {len(store.states())} state(s), {problems} problem(s), {warnings} warning(s)")
    if problems or (strict and warnings):
        ctx.exit(1)
