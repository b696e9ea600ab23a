"""A large, costly message does not hold the event loop: over `inline_check_bytes` its checks run on a thread beside
the loop (`Pipeline.large`, as `tracegate serve` has it without crypto threads), so another state's small request
handed over just after it is decided first.

No timing is asserted. The order is fixed by the loop itself: the small request's checks run on the loop in the
turn it is handed over, so it joins the committer's queue before the large one's thread can hand its verdict
back; had the large one been checked on the loop, its checks would have run to their end, and it would have
joined the queue, before the small one even started (the last test shows that order, so the first is not
vacuous).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bench.hostile_load import flood_messages, large_forgery
from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.pipeline.flow import Pipeline

from .conftest import Switch

LARGE_FORGERY = 670_000  # random bytes of the photograph: ~900 KB of XML in all, under max_message_bytes (1 MiB)


def _large(switch: Switch, which: str) -> bytes:
    """KE's large message: a ~900 KB wrongly signed request, or a ~150 KB namespace flood (inclusive c14n)."""
    if which == "forgery-900k":
        return large_forgery(switch.signers["KE"], LARGE_FORGERY)
    return flood_messages(switch.signers["KE"])["ns-root-inclusive"]


async def _race(pipeline: Pipeline, switch: Switch, large: bytes) -> tuple[list[str], dict[str, str], bool]:
    """KE's large message handed over, then at once ZA's small genuine request: the order they finished in, their
    outcomes, and whether KE's was still being handled when ZA's outcome came."""
    small = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    finished: list[str] = []
    outcomes: dict[str, str] = {}

    async def handle(body: bytes, state: str) -> None:
        outcome = await pipeline.handle(Inbound(body, routing_key=state, user_id=state))
        outcomes[state] = outcome.code or outcome.outcome
        finished.append(state)

    large_task = asyncio.create_task(handle(large, "KE"))
    await asyncio.sleep(0)  # KE's handling has begun
    await handle(small, "ZA")
    ke_pending = not large_task.done()
    await large_task
    return finished, outcomes, ke_pending


def _record_threads(pipeline: Pipeline) -> dict[int, str]:
    """Wrap the pipeline's checks to note, by body size, the thread each message was checked on."""
    seen: dict[int, str] = {}
    check: Callable[..., Any] = pipeline._open_and_check

    def recording(message: Inbound, now: Any) -> Any:
        seen[len(message.body)] = threading.current_thread().name
        return check(message, now)

    pipeline._open_and_check = recording  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("which", ["forgery-900k", "namespace-flood-150k"])
async def test_a_small_request_overtakes_a_large_one_being_checked(switch: Switch, which: str) -> None:
    """KE's large message, then ZA's ordinary request: ZA's is committed (accepted, its Delivery queued for MZ)
    while KE's is still being checked on the check thread; KE's is then refused."""
    large = _large(switch, which)
    pipeline = switch.pipeline
    assert pipeline.crypto is None  # the default: everything else on the loop
    assert pipeline.inline_check_bytes < len(large) < pipeline.max_message_bytes
    pipeline.large = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-large")  # as `serve` has it
    threads = _record_threads(pipeline)
    try:
        finished, outcomes, ke_pending = await _race(pipeline, switch, large)
    finally:
        pipeline.large.shutdown()
    assert outcomes == {"ZA": "accepted", "KE": "SIGNATURE_INVALID" if which == "forgery-900k" else "FORBIDDEN_XML"}
    assert finished == ["ZA", "KE"] and ke_pending
    assert threads[len(large)].startswith("check-large")  # the large one: beside the loop
    assert threads[min(threads)] == threading.current_thread().name  # the small one: on the loop, as before
    await switch.relay.relay_once()
    assert [g.kind for g in switch.take("MZ")] == ["Delivery"]


async def test_on_the_loop_the_large_one_would_go_first(switch: Switch) -> None:
    """The same pair with the inline limit above the large message's size: checked on the loop, the large one holds
    it, and the order flips (what the first test guards against, shown to be observable)."""
    pipeline = dataclasses.replace(
        switch.pipeline, inline_check_bytes=2**21, large=ThreadPoolExecutor(max_workers=1, thread_name_prefix="x")
    )
    large = _large(switch, "forgery-900k")
    threads = _record_threads(pipeline)
    try:
        finished, outcomes, ke_pending = await _race(pipeline, switch, large)
    finally:
        assert pipeline.large is not None
        pipeline.large.shutdown()
    assert outcomes == {"ZA": "accepted", "KE": "SIGNATURE_INVALID"}
    assert finished == ["KE", "ZA"] and not ke_pending
    assert set(threads.values()) == {threading.current_thread().name}
