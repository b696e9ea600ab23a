"""Sealing a gateway message for the wire: signed, capped, addressed to its recipient's queue."""

from __future__ import annotations

from lxml import etree

from gateway.core.effects import OutboxMessage
from gateway.core.errors import OutboundTooLarge
from gateway.core.model import MAX_MESSAGE_BYTES, NS
from gateway.core.wire_names import outbound_queue
from gateway.routing.table import RoutingTable
from gateway.xml.signatures import Signer

_T = f"{{{NS}}}"


def seal(
    signer: Signer,
    table: RoutingTable,
    kind: str,
    recipient: str,
    root: etree._Element,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> OutboxMessage:
    """Sign a gateway message and address it to the recipient's queue: the exact bytes that will be sent, never more
    than `max_bytes` (the contract's cap binds the gateway too: `OutboundTooLarge` otherwise)."""
    body = signer.sign(root)
    if len(body) > max_bytes:
        raise OutboundTooLarge(f"a {kind} for {recipient} came to {len(body)} bytes, over the {max_bytes}-byte cap")
    entry = table.entry(recipient)
    header = next(root.iterchildren(f"{_T}Header"))  # composed by the gateway: always the first child
    return OutboxMessage(
        message_id=next(header.iterchildren(f"{_T}MessageId")).text or "",
        recipient=recipient,
        queue=entry.queue if entry else outbound_queue(recipient),
        kind=kind,
        trace_id=next((e.text for e in header.iterchildren(f"{_T}TraceId")), None),
        body=body,
    )
