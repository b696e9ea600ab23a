"""Poison messages on quorum queues: bounded attempts, the sender told, held for an administrator, retried."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from gateway.app import Gateway
from gateway.core.effects import Outcome
from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.dev.npc import NationalSystem
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer

from .conftest import settings_for


def tracegate(url: str, *args: str) -> str:
    """Run the command against the broker at `url`."""
    env = {**os.environ, "TRACEGATE_BROKER_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_poison_message_is_retried_held_told_and_replayed(
    pki: DevPki, routing_table: Path, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """A message that makes the gateway fail is tried 3 times, then dead-lettered; ZA hears; retry delivers it."""
    settings = dataclasses.replace(
        settings_for(pki, routing_table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None),
        broker_url=fresh_amqp_url,
        queue_type="quorum",
        delivery_limit=3,
        require_user_id=False,  # one broker user here; the retry keeping a state's user: test_topology.py
    )
    gateway = Gateway(settings)
    attempts: list[int] = []
    real_handle = gateway.pipeline.handle
    broken = True

    async def flaky(message: Inbound) -> Outcome:
        """The pipeline with a fault that strikes one message until it is 'fixed'."""
        if broken and b"POISON" in message.body:
            attempts.append(message.attempt)
            raise RuntimeError("simulated defect")
        return await real_handle(message)

    gateway.pipeline.handle = flaky  # type: ignore[method-assign]
    await gateway.start()
    za, mz = NationalSystem("ZA", fresh_amqp_url), NationalSystem("MZ", fresh_amqp_url)
    try:
        await za.connect()
        await mz.connect()
        root = samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], notes="POISON")
        body = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA")).sign(root)
        message_id = root.findtext("{urn:itrace:1}Header/{urn:itrace:1}MessageId") or ""
        await za.send(body, message_id=message_id)
        [told] = await za.receive(1, timeout=20)
        assert (told.kind, told.find("Code")) == ("Rejection", "PROCESSING_FAILED")
        assert attempts == [1, 2, 3]
        listed = tracegate(fresh_amqp_url, "dead-letters", "list")
        assert message_id in listed and "key=ZA" in listed and "1 message(s) held" in listed
        broken = False
        assert "1 message(s) retried" in tracegate(fresh_amqp_url, "dead-letters", "retry", "--all")
        [receipt] = await za.receive(1, timeout=20)
        [delivery] = await mz.receive(1, timeout=20)
        assert (receipt.kind, receipt.find("Status"), delivery.kind) == ("Receipt", "delivered", "Delivery")
        assert "0 message(s) held" in tracegate(fresh_amqp_url, "dead-letters", "list")
    finally:
        await za.close()
        await mz.close()
        await gateway.stop()
