"""Whole traces over the real RabbitMQ through `tracegate serve`, as each national system sees them."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.dev import samples
from gateway.dev.npc import NationalSystem, Received
from gateway.dev.pki import DevPki

from .conftest import Served, serve_env, signer

REQUEST: dict[str, Any] = {"exports": [("ZA", "MZ", "2019-06-14")]}


class Parties:
    """ZA (requesting) and MZ (requested) with their keys: send, then read what each received."""

    def __init__(self, npcs: dict[str, NationalSystem], pki: DevPki) -> None:
        self.npcs = npcs
        self.signers = {s: signer(pki, s) for s in ("ZA", "MZ")}

    async def say(self, state: str, root: etree._Element) -> tuple[Received, Received]:
        """`state` sends; returns (its Receipt, the other party's Delivery), checking both."""
        other = "MZ" if state == "ZA" else "ZA"
        await self.npcs[state].send(self.signers[state].sign(root))
        [receipt] = await self.npcs[state].receive(1, timeout=15)
        assert receipt.kind == "Receipt", receipt.find("Detail")
        [delivery] = await self.npcs[other].receive(1, timeout=15)
        assert delivery.kind == "Delivery" and delivery.find("Route/From") == state
        payload = etree.fromstring(base64.b64decode(delivery.find("Payload") or ""))
        assert etree.QName(payload).localname == etree.QName(root).localname
        return receipt, delivery


async def test_request_ack_return_resubmit_delay_restricted_partial(
    npcs: dict[str, NationalSystem], pki: DevPki
) -> None:
    """The long road of 8.3: every step relayed to the other party, every sender told the new status."""
    p = Parties(npcs, pki)
    receipt, delivery = await p.say("ZA", samples.trace_request("ZA", confidentiality_guaranteed=False, **REQUEST))
    trace = receipt.find("Header/TraceId") or ""
    assert (receipt.find("Status"), delivery.find("Route/Rule")) == ("delivered", "export-record")
    assert delivery.root.find("{urn:itrace:1}Confidentiality").get("guaranteed") == "false"  # type: ignore[union-attr]
    steps = [
        ("MZ", samples.reply("Acknowledgement", "MZ", trace), "acknowledged"),
        ("MZ", samples.reply("ReturnForCompletion", "MZ", trace, MissingItem=["import-mark"]), "returned"),
        (
            "ZA",
            samples.trace_request("ZA", trace_id=trace, resubmits=trace, import_marks=[("MZ", 2015)], **REQUEST),
            "resubmitted",
        ),
        ("MZ", samples.reply("Acknowledgement", "MZ", trace), "acknowledged"),
        (
            "MZ",
            samples.reply(
                "DelayNotice",
                "MZ",
                trace,
                Reason="ongoing-investigation",
                Text="Records held.",
                ExpectedBy="2027-02-15",
            ),
            "delayed",
        ),
        ("ZA", samples.reply("Comment", "ZA", trace, Text="Understood; any partial answer helps."), "delayed"),
    ]
    for sender, root, status in steps:
        receipt, delivery = await p.say(sender, root)
        assert receipt.find("Status") == status
        assert receipt.find("Header/TraceId") == trace == delivery.find("Header/TraceId")
    response = samples.trace_response(
        "MZ",
        trace,
        partial=True,
        partial_reason="ongoing-investigation",
        restrictions=["competent-authorities-only"],
        restriction_text="Prosecutor only.",
    )
    receipt, delivery = await p.say("MZ", response)
    assert receipt.find("Status") == "responded"
    lifted = delivery.root.find("{urn:itrace:1}Restrictions/{urn:itrace:1}Restriction")
    assert lifted is not None and lifted.get("code") == "competent-authorities-only"
    assert delivery.find("Restrictions/Text") == "Prosecutor only."


async def test_refusal_trace(npcs: dict[str, NationalSystem], pki: DevPki) -> None:
    """Acknowledged, then refused with its reason; the requester reads the reason in the relayed refusal."""
    p = Parties(npcs, pki)
    receipt, _ = await p.say("ZA", samples.trace_request("ZA", **REQUEST))
    trace = receipt.find("Header/TraceId") or ""
    await p.say("MZ", samples.reply("Acknowledgement", "MZ", trace))
    receipt, delivery = await p.say(
        "MZ", samples.reply("Refusal", "MZ", trace, Reason="confidentiality-not-guaranteed", Text="See 8.4.")
    )
    assert receipt.find("Status") == "refused"
    assert b"confidentiality-not-guaranteed" in base64.b64decode(delivery.find("Payload") or "")


async def test_withdrawal_trace(npcs: dict[str, NationalSystem], pki: DevPki) -> None:
    """Withdrawn by the requester; the requested state is told; a late acknowledgement is refused."""
    p = Parties(npcs, pki)
    receipt, _ = await p.say("ZA", samples.trace_request("ZA", **REQUEST))
    trace = receipt.find("Header/TraceId") or ""
    receipt, delivery = await p.say("ZA", samples.reply("Withdrawal", "ZA", trace, Text="Case closed."))
    assert receipt.find("Status") == "withdrawn" and delivery.find("Route/To") == "MZ"
    await npcs["MZ"].send(p.signers["MZ"].sign(samples.reply("Acknowledgement", "MZ", trace)))
    [rejection] = await npcs["MZ"].receive(1, timeout=15)
    assert (rejection.kind, rejection.find("Code")) == ("Rejection", "INVALID_STATE")


async def fresh(npc: NationalSystem, count: int, seen: set[str], timeout: float = 30) -> list[Received]:
    """The next `count` messages with a MessageId not seen before (repeats dropped, as a recipient does)."""
    got: list[Received] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        for message in await npc.receive(1, timeout=1):
            if message.message_id not in seen:
                seen.add(message.message_id)
                got.append(message)
    return got


async def test_deadline_notices_survive_a_crash_and_downtime(
    pki: DevPki, routing_table: Path, amqp_url: str, tmp_path: Path
) -> None:
    """Short clocks: reminder, SIGKILL, down past two deadlines, restart: each notice once, in order."""
    day = 1 / 86400  # settings are in days: these clocks run in seconds
    env = serve_env(
        pki,
        routing_table,
        amqp_url,
        tmp_path,
        acknowledge_days=str(6 * day),
        acknowledge_reminder_days=str(4 * day),
        respond_days=str(14 * day),
        respond_reminder_days=str(4 * day),
        scheduler_interval_seconds="0.2",
    )
    served = Served(env, tmp_path / "serve.log")
    served.start()
    za, mz = NationalSystem("ZA", amqp_url), NationalSystem("MZ", amqp_url)
    try:
        for npc in (za, mz):
            await npc.connect(purge=True)
        opened = time.monotonic()
        await za.send(signer(pki, "ZA").sign(samples.trace_request("ZA", **REQUEST)))
        assert [m.kind for m in await za.receive(1)] == ["Receipt"]
        assert [m.kind for m in await mz.receive(1)] == ["Delivery"]
        reminder = await mz.receive(1, timeout=10)
        assert [m.find("Kind") for m in reminder] == ["acknowledgement-reminder"]
        seen = {reminder[0].message_id}
        served.kill()  # t≈2 s: down across the acknowledgement deadline (6 s) and the response reminder (10 s)
        await asyncio.sleep(max(0.0, 11 - (time.monotonic() - opened)))
        served.start()
        # The kill may fall between a notice's publish and its "sent" mark: it is then sent again with the same
        # MessageId, which a recipient drops as a repeat. Count distinct notices, as a recipient does.
        to_mz = await fresh(mz, 3, seen)
        to_za = await fresh(za, 2, seen)
        assert [m.find("Kind") for m in to_mz] == ["acknowledgement-overdue", "response-reminder", "response-overdue"]
        assert [m.find("Kind") for m in to_za] == ["acknowledgement-overdue", "response-overdue"]
        assert await fresh(mz, 1, seen, timeout=2) == [] and await fresh(za, 1, seen, timeout=1) == []
    finally:
        for npc in (za, mz):
            await npc.close()
        served.stop()
