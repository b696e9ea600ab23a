"""The dead-letter queue for administrators: list what is held, and send chosen messages through again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from gateway.adapters.amqp import (
    DEAD_LETTER_QUEUE,
    INBOUND_EXCHANGE,
    RETRIED_USER_HEADER,
    TRIAGE_QUEUE,
    original_user,
    user_of,
)


@dataclass(frozen=True)
class DeadLetter:
    """One held message, as an administrator needs to see it (never its content)."""

    message_id: str
    routing_key: str
    user_id: str | None
    size: int
    reason: str
    count: int
    first_death: datetime | None


def _describe(message: AbstractIncomingMessage, own_user: str) -> DeadLetter:
    """What the broker says about why and how often the message died; `user_id` is the original sender's."""
    raw: Any = (message.headers or {}).get("x-death") or []
    deaths: list[Any] = [dict(d) for d in raw]
    # The latest death first; passing through the gateway's triage queue is not why the message died.
    first = [d for d in deaths if d.get("queue") != TRIAGE_QUEUE] or deaths
    death: dict[str, Any] = first[0] if first else {}
    keys = death.get("routing-keys") or [message.routing_key or ""]
    when = death.get("time")
    return DeadLetter(
        message_id=message.message_id or "",
        routing_key=str(keys[0]),
        user_id=original_user(message.user_id, message.headers, own_user),
        size=len(message.body),
        reason=str(death.get("reason", "")),
        count=int(death.get("count", 1) or 1),
        first_death=when if isinstance(when, datetime) else None,
    )


async def _take_all(channel: aio_pika.abc.AbstractChannel, limit: int) -> list[AbstractIncomingMessage]:
    """Up to `limit` held messages, unacknowledged (they return to the queue unless acked)."""
    queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


async def list_dead_letters(url: str, limit: int = 1000) -> list[DeadLetter]:
    """Describe the held messages, leaving them held."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        taken = await _take_all(channel, limit)
        described = [_describe(m, user_of(url)) for m in taken]
        for message in taken:
            await message.nack(requeue=True)
        return described
    finally:
        await connection.close()


async def retry_dead_letters(url: str, message_ids: set[str] | None, limit: int = 1000) -> list[DeadLetter]:
    """Publish the chosen held messages (all when `message_ids` is None) to `itrace.inbound` again.

    Each goes back under its original routing key; a held message is removed only after the broker confirmed
    its copy. The broker checks a user_id against the publishing connection's user, so the original sender's
    cannot be set again: the copy carries `url`'s own user as its user_id and the original in
    `RETRIED_USER_HEADER`, which the gateway believes only from its own user (run this with the gateway's broker
    URL). The sender is therefore the same state on the retry as it was the first time.
    """
    connection = await aio_pika.connect(url)
    retried = []
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INBOUND_EXCHANGE)
        own = user_of(url)
        for message in await _take_all(channel, limit):
            held = _describe(message, own)
            if message_ids is not None and held.message_id not in message_ids:
                await message.nack(requeue=True)
                continue
            copy = aio_pika.Message(
                message.body,
                message_id=message.message_id,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=own,
                headers={"x-tracegate-retried": held.count}
                | ({RETRIED_USER_HEADER: held.user_id} if held.user_id else {}),
            )
            await exchange.publish(copy, routing_key=held.routing_key, mandatory=True)
            await message.ack()
            retried.append(held)
        return retried
    finally:
        await connection.close()
