"""A large, costly message is checked beside the event loop, never on it: another state's small request handed
over just after it is decided first (on the loop, the large one's checks would run to their end before the small
one even started)."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

from bench.hostile_load import large_forgery
from gateway import samples
from gateway.ports import Inbound

from .conftest import Switch


async def test_a_small_request_overtakes_a_large_one_being_checked(switch: Switch) -> None:
    """KE's ~700 KB forgery, then ZA's ordinary request: ZA's is committed while KE's is still being checked;
    KE's is then refused SIGNATURE_INVALID."""
    switch.pipeline.large = ThreadPoolExecutor(max_workers=1)  # as `serve` has it without crypto threads
    large = large_forgery(switch.signers["KE"])
    assert len(large) > switch.pipeline.inline_check_bytes
    small = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    finished: list[str] = []

    async def handle(body: bytes, state: str) -> str:
        outcome = await switch.pipeline.handle(Inbound(body, routing_key=state, user_id=state))
        finished.append(state)
        return outcome.code or outcome.outcome

    try:
        results = await asyncio.gather(handle(large, "KE"), handle(small, "ZA"))
    finally:
        switch.pipeline.large.shutdown()
    assert results == ["SIGNATURE_INVALID", "accepted"]
    assert finished == ["ZA", "KE"]


async def test_on_the_loop_the_large_one_would_go_first(switch: Switch) -> None:
    """The same pair with the inline limit above the large message's size: the order flips. (What the first test
    guards against, shown to be observable.)"""
    pipeline = dataclasses.replace(switch.pipeline, inline_check_bytes=2**21, large=ThreadPoolExecutor(max_workers=1))
    large = large_forgery(switch.signers["KE"])
    small = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    finished: list[str] = []

    async def handle(body: bytes, state: str) -> None:
        await pipeline.handle(Inbound(body, routing_key=state, user_id=state))
        finished.append(state)

    await asyncio.gather(handle(large, "KE"), handle(small, "ZA"))
    assert finished == ["KE", "ZA"]
