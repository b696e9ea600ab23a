"""The seams between the core and the outside: a neutral inbound message type and the roles adapters play."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Inbound:
    """One message as the transport handed it over, whatever the transport."""

    body: bytes
    routing_key: str
    user_id: str | None = None
    message_id: str | None = None
    content_type: str | None = None
    redelivered: bool = False
    attempt: int = 1  # which delivery of this message this is (1 for the first)
    lapsed: bool = False  # its AMQP expiration lapsed while it waited in the gateway's queue: refused, not processed

    @property
    def transport_sender(self) -> str:
        """Who the transport says sent it: the broker-validated user where set, else the routing key."""
        return self.user_id or self.routing_key


Handler = Callable[[Inbound], Awaitable[None]]
GiveUp = Callable[[Inbound, BaseException], Awaitable[None]]


class PublishFailed(Exception):
    """The broker did not confirm, or returned, a published message."""


class Publisher(Protocol):
    """Sends one gateway message to a party's queue and returns once the broker has confirmed it."""

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """Publish persistently and mandatorily; raise `PublishFailed` when not confirmed."""
        ...
