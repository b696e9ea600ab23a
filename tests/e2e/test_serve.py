"""`tracegate serve` as its own process; national systems as separate AMQP clients over the real RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import samples
from gateway.adapters.npc import NationalSystem, Received
from gateway.pki import DevPki, issue_certificate
from gateway.signatures import Signer

STATES = ("AT", "BR", "KE", "MZ", "ZA")


@dataclass
class Served:
    """A running `tracegate serve` and the environment it was given."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path


@pytest.fixture
def served(pki: DevPki, routing_table: Path, amqp_url: str, tmp_path: Path) -> Iterator[Served]:
    """Start `tracegate serve` on a fresh SQLite file in this session's vhost; stop it with SIGTERM."""
    env = dict(os.environ)
    env.update(
        {
            "TRACEGATE_BROKER_URL": amqp_url,
            "TRACEGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
            "TRACEGATE_ROUTING_TABLE": str(routing_table),
            "TRACEGATE_TRUST_DIR": str(pki.trust_dir),
            "TRACEGATE_GATEWAY_KEY": str(pki.gateway_key_path),
            "TRACEGATE_GATEWAY_CERT": str(pki.gateway_cert_path),
            "TRACEGATE_MAX_MESSAGE_BYTES": "65536",
            "TRACEGATE_LOG_FORMAT": "json",
            "TRACEGATE_CONFIG": str(tmp_path / "none.toml"),
        }
    )
    (tmp_path / "none.toml").write_text("[tracegate]\n")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        for _ in range(200):
            if b'"serving"' in log.read_bytes() or process.poll() is not None:
                break
            import time

            time.sleep(0.05)
        assert process.poll() is None, log.read_text()
        yield Served(process, env, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


@pytest.fixture
async def npcs(served: Served, amqp_url: str) -> AsyncIterator[dict[str, NationalSystem]]:
    """One connected national system per state, queues emptied."""
    systems = {s: NationalSystem(s, amqp_url) for s in STATES}
    for npc in systems.values():
        await npc.connect(purge=True)
    yield systems
    for npc in systems.values():
        await npc.close()


async def answer(
    npcs: dict[str, NationalSystem], state: str, body: bytes, *, routing_key: str | None = None
) -> Received:
    """Send as `state` (under `routing_key` if given) and return the one answer its queue receives."""
    await npcs[routing_key or state].send(body, routing_key=routing_key)
    got = await npcs[routing_key or state].receive(1, timeout=15)
    assert got, "the gateway did not answer"
    return got[0]


def signer(pki: DevPki, state: str) -> Signer:
    """The national system's signer."""
    return Signer.from_files(pki.key_path(state), pki.cert_path(state))


async def test_each_routing_rule_and_duplicates(npcs: dict[str, NationalSystem], pki: DevPki) -> None:
    """Requests go by export record, import mark and manufacture; a duplicate is answered again, not re-routed."""
    za, ke, mz = signer(pki, "ZA"), signer(pki, "KE"), signer(pki, "MZ")
    first = za.sign(samples.trace_request("ZA", import_marks=[("BR", 2014)], exports=[("ZA", "MZ", "2019-06-14")]))
    cases = [
        ("ZA", first, "MZ", "export-record"),
        ("KE", ke.sign(samples.trace_request("KE", import_marks=[("BR", 2014)])), "BR", "import-mark"),
        ("MZ", mz.sign(samples.trace_request("MZ", made_in="AT")), "AT", "manufacture"),
    ]
    receipts = {}
    for sender, body, destination, rule in cases:
        receipt = await answer(npcs, sender, body)
        assert (receipt.kind, receipt.find("RoutedTo"), receipt.find("Rule")) == (
            "Receipt",
            destination,
            rule,
        )
        [delivery] = await npcs[destination].receive(1)
        assert (delivery.kind, delivery.find("Route/From"), delivery.find("Route/Rule")) == (
            "Delivery",
            sender,
            rule,
        )
        receipts[sender] = receipt
    again = await answer(npcs, "ZA", first)
    assert (again.kind, again.message_id) == ("Receipt", receipts["ZA"].message_id)
    assert await npcs["MZ"].receive(1, timeout=1.5) == []


async def test_every_refusal_code_reachable_from_a_national_system(
    npcs: dict[str, NationalSystem], pki: DevPki
) -> None:
    """Each refusal reaches the sender as a Rejection with its code, and the switch keeps serving."""
    za, mz, ke = signer(pki, "ZA"), signer(pki, "MZ"), signer(pki, "KE")
    now = datetime.now(UTC)
    rogue_key, rogue_ca = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country="ZA",
        common_name="rogue",
        key_kind="ec",
        is_ca=True,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=9),
    )
    rogue = Signer.from_objects(
        *issue_certificate(
            issuer_key=rogue_key,
            issuer_cert=rogue_ca,
            subject_country="ZA",
            common_name="ZA",
            key_kind="ec",
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=9),
        )
    )
    ca_key = pki.load_ca_key()
    expired = Signer.from_objects(
        *issue_certificate(
            issuer_key=ca_key,
            issuer_cert=pki.load_ca_cert(),
            subject_country="ZA",
            common_name="ZA",
            key_kind="ec",
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        )
    )
    request = samples.trace_request
    to_mz = {"exports": [("ZA", "MZ", "2019-06-14")]}
    unsigned = samples.trace_request("ZA", **to_mz)  # type: ignore[arg-type]
    from lxml import etree

    cases: list[tuple[str, bytes, str | None, str]] = [
        ("ZA", b"<t:TraceRequest xmlns:t='urn:itrace:1'><t:Header>", None, "MALFORMED_XML"),
        ("ZA", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', None, "FORBIDDEN_XML"),
        ("ZA", b"<x>" + b"a" * 70_000 + b"</x>", None, "TOO_LARGE"),
        ("ZA", za.sign(samples.message("TraceRequest", "ZA")), None, "SCHEMA_INVALID"),
        ("ZA", etree.tostring(unsigned, xml_declaration=True, encoding="UTF-8"), None, "SIGNATURE_MISSING"),
        ("ZA", za.sign(request("ZA", **to_mz)).replace(b"BXK291", b"BXK297"), None, "SIGNATURE_INVALID"),  # type: ignore[arg-type]
        ("ZA", rogue.sign(request("ZA", **to_mz)), None, "CERTIFICATE_UNTRUSTED"),  # type: ignore[arg-type]
        ("ZA", expired.sign(request("ZA", **to_mz)), None, "CERTIFICATE_EXPIRED"),  # type: ignore[arg-type]
        ("ZA", mz.sign(request("ZA", **to_mz)), None, "SENDER_MISMATCH"),  # type: ignore[arg-type]
        ("ZA", za.sign(request("ZA", **to_mz)), "KE", "SENDER_MISMATCH"),  # type: ignore[arg-type]
        ("KE", ke.sign(request("KE", omit=("Caliber",))), None, "INCOMPLETE"),
        ("ZA", za.sign(request("ZA", exports=[("ZA", "FR", "2019-06-14")])), None, "NO_ROUTE"),
        ("MZ", mz.sign(request("MZ", exports=[("ZA", "MZ", "2019-06-14")])), None, "DESTINATION_IS_SENDER"),
        ("ZA", za.sign(request("ZA", import_marks=[("MW", 2021)])), None, "DESTINATION_NOT_CONNECTED"),
        ("ZA", za.sign(request("ZA", created_at=now - timedelta(days=30), **to_mz)), None, "STALE_MESSAGE"),  # type: ignore[arg-type]
        (
            "MZ",
            mz.sign(samples.reply("Acknowledgement", "MZ", "0d9a8b7c-6e5f-4a3b-9c2d-1e0f9a8b7c12")),
            None,
            "UNKNOWN_TRACE",
        ),
    ]
    for sender, body, routing_key, code in cases:
        got = await answer(npcs, sender, body, routing_key=routing_key)
        assert (got.kind, got.find("Code")) == ("Rejection", code), got.find("Detail")
        assert got.find("Detail")
    # Still serving after all of it.
    receipt = await answer(npcs, "ZA", za.sign(request("ZA", **to_mz)))  # type: ignore[arg-type]
    assert receipt.kind == "Receipt"


async def test_sigterm_drains_and_exits_cleanly(served: Served, npcs: dict[str, NationalSystem], pki: DevPki) -> None:
    """SIGTERM stops the switch with exit code 0 after answering what it had taken."""
    za = signer(pki, "ZA")
    for _ in range(20):
        await npcs["ZA"].send(za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")])))
    got = await npcs["ZA"].receive(20, timeout=20)
    served.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(served.process.wait, 30) == 0
    assert len(got) == 20
    assert b'"stopped"' in served.log.read_bytes()
