"""The checks that need no database, in order: envelope, schema, message type, transport rules, signature and
trust, sender identity, connection, freshness. Stateless: safe on any thread (lxml and xmlsec release the GIL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.core.errors import ErrorCode, Refused
from gateway.core.ports import Inbound
from gateway.core.snapshot import Verified
from gateway.routing.table import RoutingTable
from gateway.xml.envelope import Envelope, open_envelope
from gateway.xml.read import read_header
from gateway.xml.schemas import GATEWAY_MESSAGE_TYPES, NPC_MESSAGE_TYPES, SchemaSet
from gateway.xml.signatures import verify
from gateway.xml.trust import TrustStore

# The refusal of a message without user_id where each state has its own broker user (replay recognises it).
NO_USER_ID = "this switch gives each state its own broker user: publish with the AMQP user_id property set"
# The contract's transport rules (section 2), where the publisher set the property at all.
XML_TYPE = "application/xml"
WRONG_CONTENT_TYPE = "the AMQP content_type is not application/xml, as the contract requires (section 2)"
MESSAGE_ID_DIFFERS = "the AMQP message_id differs from Header/MessageId; the contract requires them equal (section 2)"
# A message whose AMQP expiration lapsed in the gateway's queue: its sender is told, once its signature is checked.
LAPSED = (
    "the AMQP expiration of this message lapsed while it waited in the gateway's queue, so it was not processed "
    "(the contract gives expiration no meaning: publish without one); send it again with a new MessageId"
)
UNVERIFIED_PREFIX = "unverified:"


@dataclass(frozen=True)
class Limits:
    """The operator's limits on what is accepted."""

    max_message_bytes: int = 1_048_576
    max_age_seconds: float = 72 * 3600
    max_skew_seconds: float = 300
    require_user_id: bool = False


def open_and_check(
    message: Inbound, now: datetime, *, schemas: SchemaSet, trust: TrustStore, table: RoutingTable, limits: Limits
) -> tuple[Envelope | None, Verified | Refused]:
    """The envelope (if readable) and the verdict of every check that needs no database."""
    envelope: Envelope | None = None
    try:
        envelope = open_envelope(message.body, max_bytes=limits.max_message_bytes)
        return envelope, check(envelope, message, now, schemas=schemas, trust=trust, table=table, limits=limits)
    except Refused as refusal:
        return envelope, refusal


def check(
    envelope: Envelope,
    message: Inbound,
    now: datetime,
    *,
    schemas: SchemaSet,
    trust: TrustStore,
    table: RoutingTable,
    limits: Limits,
) -> Verified:
    """Schema, message type, signature and trust, sender identity, freshness; no database."""
    schemas.validate(envelope.root)
    if envelope.kind in GATEWAY_MESSAGE_TYPES:
        raise Refused(ErrorCode.NOT_AUTHORIZED, f"only the gateway sends {envelope.kind} messages")
    if envelope.kind not in NPC_MESSAGE_TYPES:
        raise Refused(ErrorCode.SCHEMA_INVALID, f"{envelope.kind} is not a message of the contract")
    if limits.require_user_id and not message.user_id:
        raise Refused(ErrorCode.SENDER_MISMATCH, NO_USER_ID)
    if message.content_type and message.content_type.split(";")[0].strip().lower() != XML_TYPE:
        raise Refused(ErrorCode.MALFORMED_XML, WRONG_CONTENT_TYPE)
    if message.message_id and (envelope.message_id or "").lower() != message.message_id.lower():
        raise Refused(ErrorCode.SCHEMA_INVALID, MESSAGE_ID_DIFFERS)
    signed = verify(envelope.root, sender=envelope.sender or "", trust=trust, now=now)
    header = read_header(signed.root)
    if header.sender != message.transport_sender:
        raise Refused(
            ErrorCode.SENDER_MISMATCH,
            f"Header/Sender is {header.sender} but the message came in as {message.transport_sender}",
        )
    if table.entry(header.sender) is None:
        raise Refused(ErrorCode.NOT_AUTHORIZED, f"{header.sender} is not connected to the switch")
    if message.lapsed:
        raise Refused(ErrorCode.STALE_MESSAGE, LAPSED)
    age = (now - header.created_at).total_seconds()
    if age > limits.max_age_seconds:
        raise Refused(
            ErrorCode.STALE_MESSAGE,
            f"CreatedAt is {age / 3600:.1f} hours old; the limit is {limits.max_age_seconds / 3600:.0f} hours",
        )
    if -age > limits.max_skew_seconds:
        raise Refused(ErrorCode.STALE_MESSAGE, f"CreatedAt is {-age:.0f} s in the future")
    return Verified(root=signed.root, header=header, kind=envelope.kind)


def slot_of(checked: Verified | Refused) -> str:
    """The duplicate slot a message takes: its verified sender's MessageId (UUIDs compare case-insensitively).

    A message refused before its signature, sender, connection and freshness were all verified takes a slot of its
    own, which nothing will ever repeat: it is kept as evidence and audited, but it cannot be filed under a
    state's (sender, MessageId) and so block that state's genuine message with the same MessageId (a forger's
    publish under another state's routing key, or the state's own retry after fixing its signing fault).
    """
    if isinstance(checked, Verified):
        return checked.header.message_id.lower()[:80]
    return f"{UNVERIFIED_PREFIX}{uuid.uuid4()}"
