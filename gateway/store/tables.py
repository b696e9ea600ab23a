"""The store's tables (SQLAlchemy Core). Indexes serve the hot path and the deadline scan."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.schema import CreateColumn

metadata = MetaData()


def _ts(name: str, *, nullable: bool = False) -> Column[datetime]:
    """A timezone-aware timestamp column."""
    return Column(name, DateTime(timezone=True), nullable=nullable)


inbound = Table(
    "inbound",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender", String(16), nullable=False),  # the transport identity: AMQP user_id, else routing key
    Column("dedup_key", String(80), nullable=False),
    Column("message_id", String(64)),
    Column("kind", String(64), nullable=False),
    Column("trace_id", String(64)),
    _ts("received_at"),
    Column("body", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),  # accepted | refused
    Column("code", String(40)),
    Column("detail", Text),
    Column("rule", String(20)),
    Column("table_version", String(80)),
    UniqueConstraint("sender", "dedup_key", name="uq_inbound_sender_key"),
)

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(64), primary_key=True),
    Column("requester", String(16), nullable=False),
    Column("party", String(16), nullable=False),
    Column("destination", String(16), nullable=False),
    Column("rule", String(20), nullable=False),
    Column("table_version", String(80), nullable=False),
    Column("status", String(20), nullable=False),
    _ts("acknowledge_by"),
    _ts("respond_by"),
    _ts("opened_at"),
    _ts("updated_at"),
    Column("confidentiality_guaranteed", Boolean, nullable=False),
    Column("confidentiality_reason", Text),
    Column("restrictions", Text),  # JSON: {"codes": [...], "text": ...}
    Column("delay_reason", String(40)),
    Column("delay_expected_by", String(10)),
    Column("current_request_id", String(64), nullable=False),
    # The current request's acknowledgement (8.3.1), added later (`add_missing_columns`): when, by which message,
    # and how (explicit: an `Acknowledgement`; implied: an answer sent before one). NULL: not acknowledged.
    _ts("acknowledged_at", nullable=True),
    Column("acknowledged_by", String(64)),
    Column("acknowledgement", String(10)),
    Index("ix_traces_requester", "requester"),
    Index("ix_traces_party", "party"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("queue", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("trace_id", String(64)),
    Column("inbound_id", Integer),
    Column("body", LargeBinary, nullable=False),
    _ts("created_at"),
    _ts("sent_at", nullable=True),
    Index(
        "ix_outbox_unsent",
        "id",
        sqlite_where=Column("sent_at").is_(None),
        postgresql_where=Column("sent_at").is_(None),
    ),
    Index("ix_outbox_inbound", "inbound_id"),
)

routing_tables = Table(
    "routing_tables",
    metadata,
    Column("version", String(80), primary_key=True),
    Column("content", Text, nullable=False),
    _ts("first_used_at"),
)


deadlines = Table(
    "deadlines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # acknowledgement-reminder ... response-overdue
    _ts("fire_at"),
    _ts("due_at"),
    Column("status", String(12), nullable=False),  # pending | fired | cancelled
    _ts("settled_at", nullable=True),
    Index(
        "ix_deadlines_pending",
        "fire_at",
        sqlite_where=Column("status") == "pending",
        postgresql_where=Column("status") == "pending",
    ),
    Index("ix_deadlines_trace", "trace_id"),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("type", String(20), nullable=False),
    Column("trace_id", String(64)),
    Column("body_sha256", String(64)),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_trace", "trace_id"),
)

# One row: the chain's head. Locked by every transaction that appends, so two gateways never fork the chain.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)


def _record_columns() -> list[Column[Any]]:
    """The columns of a register record's version: the current one (`records`) and every one (`record_history`)."""
    return [
        Column("state", String(16), nullable=False),  # the reporting state
        Column("reference", String(64), nullable=False),
        Column("status", String(12), nullable=False),  # lost | stolen | trafficked | smuggled | withdrawn
        Column("serial", Text),
        Column("serial_key", String(200), nullable=False),  # `matching.serial_key`
        Column("shape_key", String(200), nullable=False),  # `matching.shape_key`: what a match probes
        Column("make", Text),
        Column("model", Text),
        Column("caliber", Text),
        Column("country", String(8)),
        Column("date", String(10), nullable=False),
        Column("place", Text),
        Column("circumstances", Text),
        _ts("reported_at"),
        _ts("updated_at"),
        Column("version", Integer, nullable=False),
        Column("source", String(80), nullable=False),  # the MessageId that made the version, or import:<id>
        Column("withdrawal_reason", String(12)),
        Column("withdrawal_text", Text),
        Column("reported_status", String(12)),
    ]


# The register (contract 4.3): one row per (state, reference), its latest version. A match is one probe of
# `ix_records_shape` per serial (look-alikes fold into the key), never a scan.
records = Table(
    "records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_record_columns(),
    UniqueConstraint("state", "reference", name="uq_records_state_reference"),
    Index("ix_records_shape", "shape_key"),
    Index("ix_records_reference", "reference"),
)

# Every version of every record, the latest included, and what made it.
record_history = Table(
    "record_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_record_columns(),
    Column("change", String(12), nullable=False),  # reported | updated | withdrawn | imported
    Column("inbound_id", Integer),  # the message that made it
    Column("import_id", Integer),  # or the import
    Index("ix_record_history_key", "state", "reference"),
    Index("ix_record_history_import", "import_id"),
)

# A trace request's firearm matched a record: once per (record, trace).
record_hits = Table(
    "record_hits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("status", String(12), nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("found_by", String(16), nullable=False),
    Column("score", String(10), nullable=False),
    Column("matched_on", String(120), nullable=False),  # comma-separated, in the contract's order
    _ts("at"),
    Column("inbound_id", Integer),
    UniqueConstraint("state", "reference", "trace_id", name="uq_record_hits"),
    Index("ix_record_hits_trace", "trace_id"),
    Index("ix_record_hits_at", "at"),
)

# A national register migrated by `tracegate records import`: the file's hash and what was taken.
record_imports = Table(
    "record_imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    _ts("at"),
    Column("taken", Integer, nullable=False),
    Column("refused", Integer, nullable=False),
    Column("rows_sha256", String(64), nullable=False),  # over the versions taken, in order (see `records.imports`)
)


def add_missing_columns(conn: Connection) -> list[str]:
    """Add the nullable columns that a table created by an earlier version lacks (`create_all` creates missing
    tables only): the additive upgrade `Store.start` runs. Returns "table.column" for each column added."""
    inspector = inspect(conn)
    quote = conn.dialect.identifier_preparer
    guard = " IF NOT EXISTS" if conn.dialect.name == "postgresql" else ""  # two gateways starting at once
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.c:
            if column.name not in present and column.nullable:
                spec = CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {quote.format_table(table)} ADD COLUMN{guard} {spec}")
                added.append(f"{table.name}.{column.name}")
    return added
