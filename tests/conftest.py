"""Shared fixtures: a development PKI made per test session, database URLs, a RabbitMQ vhost of our own."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.dev.pki import DevPki, create_dev_pki

STATES = ("AT", "BR", "KE", "MZ", "ZA")
ROUTING_TABLE = """
[states.ZA]
[states.MZ]
[states.BR]
[states.AT]
[states.KE]
[states.MW]
status = "suspended"
[states.LS]
delegate = "ZA"
"""
POSTGRES_URL = os.environ.get("TRACEGATE_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
AMQP_BASE = os.environ.get("TRACEGATE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A development PKI: a CA, one key per state, the gateway's key; trust material per state."""
    base = tmp_path_factory.mktemp("pki")
    # Issued a year ago, so tests may move their clock back in time and still find the certificates valid.
    return create_dev_pki(base / "pki", base / "certs", STATES, now=datetime.now(UTC) - timedelta(days=365), days=1200)


@pytest.fixture(scope="session")
def routing_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test routing table: five active states, one suspended, one delegating."""
    path = tmp_path_factory.mktemp("config") / "routing.toml"
    path.write_text(ROUTING_TABLE)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(URL, schema): a fresh SQLite file, or a fresh schema in the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tracegate.db'}", None
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield POSTGRES_URL, schema
    drop_schema(schema)


def drop_schema(schema: str) -> None:
    """Remove a test's PostgreSQL schema and everything in it."""
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c", drop], check=False, capture_output=True
    )


@contextmanager
def vhost_of_our_own(prefix: str) -> Iterator[str]:
    """A RabbitMQ vhost made for the caller (guest may do anything in it), deleted afterwards; yields its URL."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "rabbitmqctl is needed to make the tests' vhosts"
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True)
    try:
        yield AMQP_BASE.rstrip("/") + "/" + vhost
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], check=False, capture_output=True)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test session's own, so queues never meet another run's."""
    with vhost_of_our_own("tracegate-test") as url:
        yield url


@pytest.fixture
def fresh_amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own (for tests that need other queue arguments, e.g. quorum queues)."""
    with vhost_of_our_own("tracegate-one") as url:
        yield url
