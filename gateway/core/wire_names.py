"""The names the wire contract fixes for the broker (contract section 2), in one place: every module that names an
exchange or a queue of the contract takes it from here."""

from __future__ import annotations

INBOUND_EXCHANGE = "itrace.inbound"
DEAD_LETTER_EXCHANGE = "itrace.dead-letter"
DEAD_LETTER_QUEUE = "itrace.dead-letter"
OUTBOUND_PREFIX = "itrace."  # every queue the contract names starts so (a routing table may name others)


def outbound_queue(state: str) -> str:
    """The queue a state's NPC consumes (contract section 2)."""
    return f"itrace.outbound.{state}"
