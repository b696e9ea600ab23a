"""RabbitMQ through aio-pika: declares the contract's topology, consumes `itrace.inbound`, publishes confirmed.

The only module that imports aio-pika on the gateway's side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, DeliveryError
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp.commands import Basic

from gateway.core.errors import ConfigurationError, TransientError
from gateway.core.ports import GiveUp, Handler, Inbound, PublishFailed
from gateway.core.wire_names import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, INBOUND_EXCHANGE, outbound_queue

log = structlog.get_logger("tracegate.amqp")
__all__ = [  # the contract's names, as this module has always offered them, and its own
    "DEAD_LETTER_EXCHANGE",
    "DEAD_LETTER_QUEUE",
    "INBOUND_EXCHANGE",
    "INBOUND_QUEUE",
    "RETRIED_USER_HEADER",
    "TRIAGE_EXCHANGE",
    "TRIAGE_QUEUE",
    "AmqpBroker",
    "original_user",
    "outbound_queue",
    "state_queue",
    "user_of",
]

INBOUND_QUEUE = "itrace.gateway.inbound"  # earlier versions' one shared queue: drained on upgrade, never declared
# Where the states' inbound queues dead-letter to, consumed by the gateway: a message whose AMQP expiration lapsed
# before it was read is answered from here (refused STALE_MESSAGE), so its sender learns of it; anything else
# (given up after repeated faults, over a quorum queue's delivery limit) is passed on to `itrace.dead-letter`, held
# for the operator (`tracegate dead-letters`).
TRIAGE_EXCHANGE = "itrace.gateway.dead-letter"
TRIAGE_QUEUE = "itrace.gateway.dead-letter"
Properties = Basic.Properties
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
# Set by `tracegate dead-letters retry` on the copy it publishes as the gateway's own broker user: the broker user
# that sent the original. Believed only on a message whose broker-validated user_id is the gateway's own.
RETRIED_USER_HEADER = "x-tracegate-user-id"


def user_of(url: str) -> str:
    """The user an AMQP URL connects as (`guest` when it names none)."""
    return unquote(urlsplit(url).username or "guest")


def original_user(user_id: str | None, headers: Mapping[str, Any] | None, own_user: str) -> str | None:
    """Who sent a message: its broker-validated `user_id`, except on a dead letter the gateway's own user sent back,
    which names the original sender in `RETRIED_USER_HEADER` (None there: the original had no user_id)."""
    if user_id is None or user_id != own_user:
        return user_id
    named = (headers or {}).get(RETRIED_USER_HEADER)
    if isinstance(named, bytes):
        named = named.decode("utf-8", "replace")
    return named if isinstance(named, str) and named else None


def state_queue(state: str) -> str:
    """The gateway's inbound queue for one state's requests, bound to `itrace.inbound` with the state's code."""
    return f"{INBOUND_QUEUE}.{state}"


class AmqpBroker:
    """One robust connection, a confirming publisher channel and a consumer channel.

    Each state's requests wait in a queue of their own (`state_queue`), consumed by a consumer of its own with
    `prefetch` unacknowledged messages at most: a backlog in one state's queue holds at most `prefetch` of the
    messages in flight, and another state's request is delivered beside them, not behind the backlog. In flight
    in all: at most `prefetch` per consumer. `state_queue_limit` (0: none) caps each state's queue; a publish
    beyond it is refused (a publisher using confirms gets basic.nack), other states' queues unaffected."""

    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 32,
        queue_type: str = "classic",
        delivery_limit: int = 5,
        user_prefix: str = "npc-",
        state_queue_limit: int = 10_000,
    ) -> None:
        self.url = url
        self.prefetch = prefetch
        self.state_queue_limit = state_queue_limit
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit
        self.user_prefix = user_prefix
        self.own_user = user_of(url)
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._consume_channel: AbstractRobustChannel | None = None
        self._consumer_tags: dict[str, str] = {}  # queue name -> consumer tag, while consuming
        self._queues: dict[str, Any] = {}  # queue name -> the queue the gateway consumes
        self._on_message: Any = None
        self._callbacks: dict[str, Any] = {}  # queue name -> its consumer, where not `_on_message`
        # Backpressure: while this many publishes wait for their confirms, no new delivery is handled. Without it a
        # flood from one state is consumed faster than its answers can be published, and every other state's
        # answers wait behind that outbound backlog however fairly the inbound is served (docs/performance.md).
        self.max_unconfirmed = 2 * prefetch
        self._unconfirmed = 0
        self._room = asyncio.Event()
        self._room.set()
        self.on_state: Callable[[bool], None] = lambda up: None

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the connection and channels; `ConnectionError` if the broker is unreachable."""
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, timeout=timeout, client_properties={"connection_name": "tracegate"}
            )
        except (TimeoutError, OSError, AMQPError) as err:
            raise ConnectionError(f"cannot reach the broker: {err}") from err
        self._connection.close_callbacks.add(lambda *_: self._state(up=False))
        self._connection.reconnect_callbacks.add(lambda *_: self._state(up=True))
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._consume_channel = await self._connection.channel()
        # Per consumer (global_=False), for each consumer created after it: every state's queue has its own window.
        await self._consume_channel.set_qos(prefetch_count=self.prefetch, global_=False)

    def _state(self, *, up: bool) -> None:
        """Log and report a lost or restored broker connection (aio-pika reconnects by itself)."""
        log.warning("broker connection restored" if up else "broker connection lost; reconnecting")
        self.on_state(up)

    def _queue_arguments(self) -> dict[str, Any]:
        """Arguments of the gateway's inbound queues: dead-lettering, quorum where configured, and the per-state
        limit (a publish beyond it is refused: basic.nack to a publisher using confirms)."""
        args: dict[str, Any] = {"x-dead-letter-exchange": TRIAGE_EXCHANGE}
        if self.state_queue_limit > 0:
            args.update({"x-max-length": self.state_queue_limit, "x-overflow": "reject-publish"})
        if self.queue_type == "quorum":
            args.update(
                {
                    "x-queue-type": "quorum",
                    "x-delivery-limit": self.delivery_limit,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            )
        return args

    async def declare_topology(self, states: Iterable[str], *, outbound: Iterable[str] | None = None) -> None:
        """Declare, idempotently, the exchange, each state's inbound queue bound with its code, and each outbound
        queue; unbind the states from an earlier version's shared queue, which is still consumed (not stranded).

        `outbound`: the queues the gateway publishes to (the routing table's, where a state's entry names a queue
        of its own); by default each state's `itrace.outbound.<CC>`. A queue the gateway publishes to but never
        declared would return every message sent to it (publishes are mandatory), and the relay would retry them
        for ever. A queue that exists with other arguments (another limit, queue type) is a `ConfigurationError`."""
        channel = self._consume_channel
        assert channel is not None, "connect first"
        exchange = await channel.declare_exchange(INBOUND_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
        dlx = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
        dead = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": self.queue_type})
        await dead.bind(dlx)
        triage_exchange = await channel.declare_exchange(TRIAGE_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
        triage = await self._declare(
            channel, TRIAGE_QUEUE, {"x-queue-type": self.queue_type, "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
        )
        await triage.bind(triage_exchange)
        states = list(states)
        self._queues = {}
        for state in states:
            name = state_queue(state)
            queue = await self._declare(channel, name, self._queue_arguments())
            await queue.bind(exchange, routing_key=state)  # bound before the shared queue lets the key go
            self._queues[name] = queue
        legacy = await self._legacy_queue(states)
        if legacy is not None:
            self._queues[INBOUND_QUEUE] = legacy
        self._queues[TRIAGE_QUEUE] = triage
        for name in dict.fromkeys(outbound if outbound is not None else map(outbound_queue, states)):
            await self._declare(channel, name, {"x-queue-type": self.queue_type})

    async def _declare(self, channel: AbstractRobustChannel, name: str, arguments: dict[str, Any]) -> Any:
        """Declare a durable queue; one that exists with other arguments is a `ConfigurationError` saying so."""
        try:
            return await channel.declare_queue(name, durable=True, arguments=arguments)
        except ChannelPreconditionFailed as err:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(arguments.items()))
            raise ConfigurationError(
                f"queue {name} exists with other arguments than this configuration gives it ({wanted}); the broker "
                f"said: {err}. RabbitMQ cannot change a queue's arguments: set TRACEGATE_STATE_QUEUE_LIMIT and "
                f"TRACEGATE_QUEUE_TYPE back to what the queue was declared with, or stop the gateway, let the queue "
                f"drain and delete it (rabbitmqctl delete_queue {name} --if-empty), then start the gateway again"
            ) from err

    async def _legacy_queue(self, states: list[str]) -> Any:
        """An earlier version's shared `itrace.gateway.inbound`, if it exists: unbind the states' keys from it (their
        own queues are bound by now) and return it, to be consumed beside them until it is deleted."""
        assert self._connection is not None and self._consume_channel is not None
        probe = await self._connection.channel()  # a passive declare of a missing queue closes its channel
        try:
            await probe.declare_queue(INBOUND_QUEUE, passive=True)
        except ChannelNotFoundEntity:
            return None
        finally:
            with contextlib.suppress(AMQPError, RuntimeError):
                await probe.close()
        queue = await self._consume_channel.declare_queue(INBOUND_QUEUE, passive=True)
        for state in states:
            await queue.unbind(INBOUND_EXCHANGE, routing_key=state)
        log.warning("draining an earlier version's shared inbound queue", queue=INBOUND_QUEUE)
        return queue

    def _state_of(self, user_id: str | None) -> str | None:
        """The state a broker-validated user speaks for: `npc-ZA` is ZA (a user named by its code alone is too)."""
        if not user_id:
            return None
        return (
            user_id[len(self.user_prefix) :] if self.user_prefix and user_id.startswith(self.user_prefix) else user_id
        )

    def _attempt(self, message: AbstractIncomingMessage) -> int:
        """Which delivery this is: quorum queues count them; classic queues only say "redelivered"."""
        count = (message.headers or {}).get("x-delivery-count")
        if isinstance(count, int):
            return count + 1
        return 2 if message.redelivered else 1

    @property
    def max_attempts(self) -> int:
        """Deliveries before a message that keeps failing is dead-lettered."""
        return self.delivery_limit if self.queue_type == "quorum" else 2

    async def consume(self, handler: Handler, give_up: GiveUp | None = None) -> None:
        """Start consuming; each message is acked only after `handler` has committed its effects.

        A fault a retry may cure returns the message to the queue. Any other fault is retried up to
        `max_attempts` deliveries; then `give_up` tells the sender and the message goes to the dead-letter queue.
        """
        assert self._queues, "declare the topology first"

        async def on_message(message: AbstractIncomingMessage, *, lapsed: bool = False) -> None:
            if not self._room.is_set():  # the outbound side is behind: let the backlog wait in the state queues
                await self._room.wait()
            inbound = Inbound(
                body=message.body,
                routing_key=message.routing_key or "",
                user_id=self._state_of(original_user(message.user_id, message.headers, self.own_user)),
                message_id=message.message_id,
                content_type=message.content_type,
                redelivered=bool(message.redelivered),
                attempt=self._attempt(message),
                lapsed=lapsed,
            )
            try:
                await handler(inbound)
            except TransientError as err:
                log.warning("transient fault; message returned to the queue", error=str(err))
                await message.nack(requeue=True)
                return
            except Exception as err:
                await self._failed(message, inbound, err, give_up)
                return
            # Straight onto the delivery's channel, without waiting for the frame to be written: nothing waits on
            # the ack, and the wait cost a turn of the loop per message (aio-pika's `ack` waits).
            await message.channel.basic_ack(cast(int, message.delivery_tag), wait=False)

        async def on_dead_letter(message: AbstractIncomingMessage) -> None:
            if self._lapsed(message):
                await on_message(message, lapsed=True)
            else:  # held for the operator in `itrace.dead-letter`, as the message's first death asked
                await message.nack(requeue=False)

        self._on_message = on_message
        self._callbacks = {TRIAGE_QUEUE: on_dead_letter}
        await self.resume_consuming()

    def _lapsed(self, message: AbstractIncomingMessage) -> bool:
        """Whether a dead letter came from a state's inbound queue because its AMQP expiration lapsed there. The
        broker puts the latest death first in `x-death`; a publisher can add entries of its own, but not one that
        comes before the broker's."""
        deaths: Any = (message.headers or {}).get("x-death") or []
        if not deaths or not isinstance(deaths[0], Mapping):
            return False
        latest = deaths[0]
        queue = latest.get("queue")
        return latest.get("reason") == "expired" and queue in self._queues and queue != TRIAGE_QUEUE

    async def _failed(
        self, message: AbstractIncomingMessage, inbound: Inbound, err: Exception, give_up: GiveUp | None
    ) -> None:
        """An unexpected fault: retry, or after the last attempt, tell the sender and dead-letter."""
        if inbound.attempt < self.max_attempts:
            log.warning("unexpected fault; retrying", attempt=inbound.attempt, error=repr(err))
            await message.nack(requeue=True)
            return
        log.error("unexpected fault on the last attempt; dead-lettered", attempt=inbound.attempt, error=repr(err))
        if give_up is not None:
            try:
                await give_up(inbound, err)
            except Exception:  # telling the sender is best effort; the message itself is kept
                log.exception("could not record the failure")
        await message.nack(requeue=False)

    async def stop_consuming(self) -> None:
        """Stop taking new messages; those in flight finish."""
        for name, tag in list(self._consumer_tags.items()):
            with contextlib.suppress(AMQPError, RuntimeError):
                await self._queues[name].cancel(tag)
            del self._consumer_tags[name]

    async def resume_consuming(self) -> None:
        """Take messages again after `stop_consuming` (and at the start): one consumer per queue."""
        if self._on_message is None:
            return
        for name, queue in self._queues.items():
            if name not in self._consumer_tags:
                callback = self._callbacks.get(name, self._on_message)
                self._consumer_tags[name] = await queue.consume(callback, no_ack=False)

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is open now."""
        return self._connection is not None and not self._connection.is_closed

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """Publish persistently and mandatorily to a queue; returns once the broker confirmed.

        Straight onto the channel (aio-pika's underlying aiormq channel), without an aio-pika `Message` per
        publish, and without waiting for the frames to be written before waiting for the confirm: the relay
        publishes every gateway message, so this is its hot path.
        """
        channel = self._publish_channel
        if channel is None:
            raise PublishFailed("not connected")
        properties = Properties(
            message_id=message_id,
            content_type="application/xml",
            message_type=kind,
            app_id="tracegate",
            delivery_mode=PERSISTENT,
        )
        self._unconfirmed += 1
        if self._unconfirmed >= self.max_unconfirmed:
            self._room.clear()
        try:
            underlay = cast(aiormq.Channel, await channel.get_underlay_channel())  # the class that takes `wait`
            confirmation = await underlay.basic_publish(
                body, routing_key=queue, properties=properties, mandatory=True, timeout=30, wait=False
            )
        except DeliveryError as err:
            raise PublishFailed(f"{queue}: broker returned or refused the message") from err
        except (TimeoutError, AMQPError, OSError, RuntimeError) as err:
            raise PublishFailed(f"{queue}: {type(err).__name__}: {err}") from err
        finally:
            self._unconfirmed -= 1
            if self._unconfirmed < self.max_unconfirmed:
                self._room.set()
        if not isinstance(confirmation, Basic.Ack):
            raise PublishFailed(f"{queue}: broker did not confirm the message ({type(confirmation).__name__})")

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
