"""`tracegate serve` and `tracegate demo`: run the switch, or the whole switch with simulated national systems."""

from __future__ import annotations

import asyncio
import sys

import click
import uvloop

from gateway.cli.common import settings_of
from gateway.core.errors import ConfigurationError
from gateway.logs import configure_logging


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the switch: consume itrace.inbound, relay the outbox, drain on SIGTERM."""
    from gateway.app import Gateway

    settings = settings_of(ctx)
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


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Bring up the whole switch on the local RabbitMQ and play national systems against it."""
    from gateway.dev.demo import run_demo

    settings = settings_of(ctx)
    sys.exit(asyncio.run(run_demo(settings)))
