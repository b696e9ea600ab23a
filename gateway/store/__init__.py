"""The durable store: the only package that speaks to the database."""

from gateway.store.core import Effects, InboundRecord, OutboxMessage, Store, Transaction, trace_from_row
from gateway.store.tables import audit, audit_head, deadlines, inbound, metadata, outbox, routing_tables, traces

__all__ = [
    "Effects",
    "InboundRecord",
    "OutboxMessage",
    "Store",
    "Transaction",
    "audit",
    "audit_head",
    "deadlines",
    "inbound",
    "metadata",
    "outbox",
    "routing_tables",
    "trace_from_row",
    "traces",
]
