"""The durable store: the only package that speaks to the database (SQLAlchemy Core; SQLite or PostgreSQL)."""

from sqlalchemy.exc import DBAPIError as DatabaseUnavailable
from sqlalchemy.exc import SQLAlchemyError as DatabaseError

from gateway.core.effects import Effects, InboundRecord, OutboxMessage
from gateway.store.engine import Store
from gateway.store.rows import aware, trace_from_row
from gateway.store.tables import audit, audit_head, deadlines, inbound, metadata, outbox, routing_tables, traces
from gateway.store.transaction import Transaction
from gateway.store.unit_of_work import SqlUnitOfWork

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "Effects",
    "InboundRecord",
    "OutboxMessage",
    "SqlUnitOfWork",
    "Store",
    "Transaction",
    "audit",
    "audit_head",
    "aware",
    "deadlines",
    "inbound",
    "metadata",
    "outbox",
    "routing_tables",
    "trace_from_row",
    "traces",
]
