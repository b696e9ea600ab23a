"""`tracegate topology`: print or apply the broker setup of one RabbitMQ user per state (`adapters/broker_users`)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.common import settings_of
from gateway.core.errors import ConfigurationError


@click.command("topology")
@click.option(
    "--apply/--print",
    "do_apply",
    default=False,
    help="Run the commands with rabbitmqctl (default: print them).",
)
@click.option("--vhost", default=None, help="Virtual host (default: the broker URL's, else /).")
@click.option(
    "--secrets-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var/broker-secrets"),
    show_default=True,
    help="Where each state user's password is kept, as <CC>.password (mode 0600).",
)
@click.option("--prefix", default="npc-", show_default=True, help="State users are named <prefix><CC>.")
@click.option("--gateway-user", default=None, help="The gateway's broker user (default: the broker URL's).")
@click.pass_context
def topology(
    ctx: click.Context, do_apply: bool, vhost: str | None, secrets_dir: Path, prefix: str, gateway_user: str | None
) -> None:
    """One broker user per state: configure nothing, write itrace.inbound, read its own outbound queue."""
    from gateway.adapters.broker_users import apply, plan, user_of, vhost_of
    from gateway.routing.table import load_table

    settings = settings_of(ctx)
    try:
        table = load_table(settings.routing_table)
        commands = plan(
            table,
            vhost or vhost_of(settings.broker_url),
            gateway_user or user_of(settings.broker_url),
            prefix=prefix,
        )
        if not do_apply:
            for command in commands:
                click.echo(command.render(secrets_dir))
            return
        for line in apply(commands, secrets_dir):
            click.echo(line)
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err
