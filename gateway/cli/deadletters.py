"""`tracegate dead-letters`: inspect and retry messages the gateway could not process."""

from __future__ import annotations

import asyncio

import click

from gateway.cli.common import settings_of


@click.group("dead-letters")
def dead_letters() -> None:
    """Messages held after repeated processing failures."""


@dead_letters.command("list")
@click.option("--limit", default=1000, show_default=True)
@click.pass_context
def list_command(ctx: click.Context, limit: int) -> None:
    """List the held messages: id, routing key, user, size, why and how often they failed."""
    from gateway.adapters.deadletters import list_dead_letters

    held = asyncio.run(list_dead_letters(settings_of(ctx).broker_url, limit))
    for m in held:
        when = m.first_death.isoformat() if m.first_death else "?"
        click.echo(
            f"{m.message_id or '(no id)'}  key={m.routing_key}  user={m.user_id or '-'}  {m.size} bytes  "
            f"{m.reason} x{m.count}  since {when}"
        )
    click.echo(f"{len(held)} message(s) held")


@dead_letters.command("retry")
@click.argument("message_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every held message.")
@click.pass_context
def retry_command(ctx: click.Context, message_ids: tuple[str, ...], retry_all: bool) -> None:
    """Send held messages through the gateway again (by MessageId, or --all)."""
    from gateway.adapters.deadletters import retry_dead_letters

    if not message_ids and not retry_all:
        raise click.UsageError("name the messages to retry, or pass --all")
    chosen = None if retry_all else set(message_ids)
    retried = asyncio.run(retry_dead_letters(settings_of(ctx).broker_url, chosen))
    for m in retried:
        click.echo(f"retried {m.message_id or '(no id)'} under routing key {m.routing_key}")
    click.echo(f"{len(retried)} message(s) retried")
