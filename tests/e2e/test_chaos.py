"""A short soak-and-chaos run: the gateway killed, the broker restarted, connections dropped; nothing lost."""

from __future__ import annotations

from bench.chaos import run


async def test_short_chaos_run_loses_duplicates_and_invents_nothing() -> None:
    """150 requests through SIGKILL, a broker restart and dropped connections: each delivered once, no extras."""
    figures = await run(messages=150, kills=1, restarts=1, drops=1, settle=90)
    assert sorted(figures["events"]) == ["broker-restart", "drop", "kill"]
    assert (figures["accepted"], figures["delivered"]) == (150, 150), figures
    assert (figures["lost"], figures["duplicated_with_new_id"], figures["unexpected"]) == (0, 0, 0), figures
