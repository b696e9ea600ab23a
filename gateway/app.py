"""Composition root: builds every object from the settings, runs the consumer and the relay, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from gateway.adapters.amqp import AmqpBroker
from gateway.adapters.health import Health, serve_health
from gateway.audit.verify import write_checkpoint
from gateway.core.errors import ConfigurationError, TransientError
from gateway.core.ports import Inbound
from gateway.outbox.relay import OutboxRelay
from gateway.pipeline.flow import Pipeline
from gateway.pipeline.scheduler import Scheduler
from gateway.records.matching import Makes
from gateway.routing.table import RoutingTable, load_table
from gateway.settings import Settings
from gateway.store import DatabaseUnavailable, Store
from gateway.xml.schemas import SchemaSet
from gateway.xml.signatures import Signer, check_libxml2_pairing
from gateway.xml.trust import TrustStore, signing_certificate_findings, trust_files, validity

log = structlog.get_logger("tracegate.app")


def utc_now() -> datetime:
    """The wall clock, in UTC: the only clock the running gateway reads."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Parts:
    """What every entry point needs, loaded and validated once."""

    trust: TrustStore
    table: RoutingTable
    schemas: SchemaSet
    signer: Signer
    makes: Makes = field(default_factory=Makes.none)


def load_parts(settings: Settings) -> Parts:
    """Load trust material, the routing table, the XSDs and the gateway's key; fail with a clear error."""
    check_libxml2_pairing()
    trust = TrustStore.load(settings.trust_dir)
    table = load_table(settings.routing_table, trusted=trust.states())
    for path in (settings.gateway_key, settings.gateway_cert):
        if not path.exists():
            raise ConfigurationError(
                f"{path}: the gateway's key or certificate is missing "
                "(create a development PKI with `tracegate pki init`)"
            )
    signer = Signer.from_files(settings.gateway_key, settings.gateway_cert)
    return Parts(trust=trust, table=table, schemas=SchemaSet.load(), signer=signer, makes=load_makes(settings))


def load_makes(settings: Settings) -> Makes:
    """The register's alias list of makes; none where the default file is absent (a file named otherwise must
    exist: a mistyped path would silently weaken matching)."""
    path = settings.makes_file
    if path.exists():
        return Makes.load(path)
    if path != Settings().makes_file:
        raise ConfigurationError(f"{path}: no such file (TRACEGATE_MAKES_FILE, the alias list of firearm makes)")
    return Makes.none()


def build_pipeline(
    settings: Settings,
    parts: Parts,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    on_commit: Callable[[], None] = lambda: None,
) -> Pipeline:
    """The pipeline wired to its parts."""
    return Pipeline(
        schemas=parts.schemas,
        trust=parts.trust,
        signer=parts.signer,
        table=parts.table,
        units=store.unit_of_work,
        policy=settings.deadline_policy(),
        clock=clock,
        max_message_bytes=settings.max_message_bytes,
        max_age_seconds=settings.max_message_age.total_seconds(),
        max_skew_seconds=settings.max_clock_skew.total_seconds(),
        on_commit=on_commit,
        require_user_id=settings.require_user_id,
        inline_check_bytes=settings.inline_check_bytes,
        makes=parts.makes,
    )


class Gateway:
    """A running switch: consumer, outbox relay, and an orderly stop."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self._trust_seen = trust_files(settings.trust_dir)  # before the load: a change during it is seen later
        self._trust_error: str | None = None
        self.parts = load_parts(settings)
        self.store = Store(settings.database_url, schema=settings.database_schema or None, checkpoint_every=1.0)
        self.broker = AmqpBroker(
            settings.broker_url,
            user_prefix=settings.broker_user_prefix,
            prefetch=settings.prefetch,
            queue_type=settings.queue_type,
            delivery_limit=settings.delivery_limit,
            state_queue_limit=settings.state_queue_limit,
        )
        self.relay = OutboxRelay(self.store, self.broker, clock, batch=settings.relay_batch)
        self.pipeline = build_pipeline(settings, self.parts, self.store, clock)
        self.pipeline.hand_over = self.relay.hand_over  # committed rows go to the relay without a read-back
        self.crypto = (
            ThreadPoolExecutor(max_workers=settings.crypto_threads, thread_name_prefix="crypto")
            if settings.crypto_threads > 0
            else None
        )
        self.pipeline.crypto = self.crypto
        self.signing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signing") if self.crypto else None
        self.pipeline.signing = self.signing
        self.large = None if self.crypto else ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-large")
        self.pipeline.large = self.large
        self.scheduler = Scheduler(
            self.store,
            self.parts.signer,
            self.parts.table,
            clock,
            interval=settings.scheduler_interval_seconds,
            hand_over=self.relay.hand_over,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight = 0
        self.health = Health()
        self._recovering: asyncio.Task[None] | None = None
        self._health_server: asyncio.Server | None = None
        self.broker.on_state = lambda up: self.health.set(broker="up" if up else "down")
        self._idle = asyncio.Event()
        self._idle.set()

    async def _connect(self) -> None:
        """Reach the broker, retrying with backoff for `broker_connect_seconds`; then declare the topology."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.5, max=5),
            stop=stop_after_delay(self.settings.broker_connect_seconds),
            retry=retry_if_exception_type(ConnectionError),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning("broker unreachable; retrying", attempt=attempt.retry_state.attempt_number)
                await self.broker.connect()
        table = self.parts.table
        await self.broker.declare_topology(table.states, outbound=[entry.queue for entry in table.states.values()])
        self.health.set(broker="up")

    async def _open_store(self) -> None:
        """Open the database, retrying with backoff (it may still be starting)."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.5, max=5),
            stop=stop_after_delay(self.settings.broker_connect_seconds),
            retry=retry_if_exception_type((OSError, TransientError, DatabaseUnavailable)),
            reraise=True,
        ):
            with attempt:
                await self.store.start()
        self.health.set(database="up")

    async def start(self) -> None:
        """Open the store and broker, declare the topology, start relaying and consuming."""
        if self.settings.health_port:
            self._health_server = await serve_health(self.health, "127.0.0.1", self.settings.health_port)
        await self._open_store()
        await self._connect()
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="deadline-scheduler"))
        self._tasks.append(asyncio.create_task(self._checkpoints(), name="audit-checkpoints"))
        self._report_trust(self.parts.trust, everything=True)
        if self.settings.trust_reload_seconds > 0:
            self._tasks.append(asyncio.create_task(self._trust_reloads(), name="trust-reload"))
        await self.broker.consume(self._handle, give_up=self.pipeline.give_up)
        self.health.set(consuming=True)
        log.info(
            "serving",
            states=len(self.parts.table.states),
            table=self.parts.table.version,
            database=self.store.dialect,
        )

    async def _handle(self, message: Inbound) -> None:
        """Consumer callback: the pipeline, counted so that a stop can wait for messages in flight."""
        self._inflight += 1
        self._idle.clear()
        try:
            await self.pipeline.handle(message)
        except TransientError:
            if self._recovering is None or self._recovering.done():
                self._recovering = asyncio.create_task(self._recover_database(), name="database-recovery")
            raise
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _checkpoints(self) -> None:
        """Sign the audit chain's head every `checkpoint_interval_seconds` (when it moved)."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.checkpoint_interval_seconds)
            try:
                await write_checkpoint(self.store, self.parts.signer, self.clock())
            except TransientError as err:
                log.warning("checkpoint postponed", error=str(err))

    def reload_trust(self) -> bool:
        """Reread the trust directory if a file in it changed; the next message is judged by the new material. A
        directory that no longer loads keeps the material in force, and says so in the log and in health."""
        seen = trust_files(self.settings.trust_dir)
        if seen == self._trust_seen:
            return False
        self._trust_seen = seen
        try:
            fresh = TrustStore.load(self.settings.trust_dir)
        except (ConfigurationError, OSError) as err:  # OSError: a directory unreadable (would end the loop)
            log.error("trust material not reloaded; the material in force is kept", error=str(err))
            self._trust_error = f"not reloaded: {err}"
            self._report_trust(self.parts.trust, everything=False)
            return False
        self._trust_error = None
        self.pipeline.trust = fresh
        self.parts = dataclasses.replace(self.parts, trust=fresh)
        log.info("trust material reloaded", states=len(fresh.states()))
        self._report_trust(fresh, everything=True)
        return True

    def check_trust(self) -> None:
        """One turn of the reload loop: `reload_trust`, or else judge the material in force again at the clock's
        now, so that a certificate or CRL falling due while nothing changes still shows (and is logged once)."""
        if not self.reload_trust():
            self._report_trust(self.parts.trust, everything=False)

    def _report_trust(self, trust: TrustStore, *, everything: bool) -> None:
        """Show in health what the material and the gateway's own certificate need from an operator; log each
        finding (`everything`: at start and after a reload) or only those not shown before."""
        now, days = self.clock(), self.settings.trust_warn_days
        own = self.parts.signer.certificate
        findings = [*signing_certificate_findings(own, now, days), *trust.findings(now, days)]
        lines = tuple(f"{f.level}: {f.text}" for f in findings)
        for finding, line in zip(findings, lines, strict=True):
            if everything or line not in self.health.trust:
                log.warning("trust material", level=finding.level, state=finding.state, finding=finding.text)
        if self._trust_error is not None:
            lines = (f"problem: {self._trust_error}", *lines)
        self.health.set(trust=lines, signing_certificate=validity(own, now))

    async def _trust_reloads(self) -> None:
        """`check_trust` every `trust_reload_seconds`."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.trust_reload_seconds)
            if not self._stop.is_set():
                self.check_trust()

    async def _recover_database(self) -> None:
        """The database cannot commit: stop taking messages, probe it with backoff, resume when it answers."""
        self.health.set(database="down", consuming=False)
        await self.broker.stop_consuming()
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=5), retry=retry_if_exception_type(Exception)
        ):
            with attempt:
                if self._stop.is_set():
                    return
                await self.store.ping()
        self.health.set(database="up")
        if not self._stop.is_set():
            await self.broker.resume_consuming()
            self.health.set(consuming=True)

    def request_stop(self) -> None:
        """Ask the gateway to drain and stop (SIGTERM, SIGINT)."""
        self._stop.set()

    async def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then drain in-flight work and exit."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        # What start loaded (schemas, keys, routing, the libraries' own state) lives as long as the process: the
        # collector's full passes need not walk it again each time (each was a latency spike: docs/performance.md).
        gc.collect()
        gc.freeze()
        await self._stop.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop consuming, let in-flight messages commit, relay what is left, close."""
        log.info("draining")
        self.health.set(consuming=False)
        await self.broker.stop_consuming()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=30)
        except TimeoutError:
            log.warning("stopped with messages in flight; the broker redelivers them", inflight=self._inflight)
        self.scheduler.stop()
        await self.relay.drain()
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TransientError):
            await write_checkpoint(self.store, self.parts.signer, self.clock())  # the last word before exit
        await self.broker.close()
        await self.store.close()
        for pool in (self.crypto, self.signing, self.large):
            if pool is not None:
                pool.shutdown(wait=False)
        if self._health_server is not None:
            self._health_server.close()
        log.info("stopped")
