"""The records register end to end: `tracegate serve` as a process, national systems over the real RabbitMQ, and
the gateway's HitNotices and query results verified by an independent XML-DSig implementation (`xmlsec1`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.core.model import NS
from gateway.dev import samples
from gateway.dev.npc import NationalSystem, Received
from gateway.dev.pki import DevPki

from .conftest import answer, signer

T = f"{{{NS}}}"
REF = "ZA-SAPS-2026-004512"


def verified_by_xmlsec1(pki: DevPki, got: Received, tmp_path: Path) -> None:
    """xmlsec1 accepts the gateway's signature on what a national system received."""
    found = shutil.which("xmlsec1")
    if found is None:
        pytest.fail("xmlsec1 is not installed: install it (Debian/Ubuntu: apt-get install xmlsec1)")
    document = tmp_path / f"{got.kind}-{got.message_id}.xml"
    document.write_bytes(got.body)
    done = subprocess.run(
        [found, "--verify", "--trusted-pem", str(pki.ca_cert_path), str(document)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def matches(result: Received) -> list[tuple[str | None, str | None]]:
    """(Reference, Score) of every Match of a RecordQueryResult."""
    return [(m.findtext(T + "Reference"), m.findtext(T + "Score")) for m in result.root.iter(T + "Match")]


async def test_report_hit_query_and_withdrawal_over_the_broker(
    npcs: dict[str, NationalSystem], pki: DevPki, tmp_path: Path
) -> None:
    """ZA reports; KE's request elsewhere hits and both get a HitNotice xmlsec1 verifies; queries exact and
    probable; after the withdrawal nothing matches."""
    za, ke, br = signer(pki, "ZA"), signer(pki, "KE"), signer(pki, "BR")
    report = samples.record_report("ZA", REF, serial="BER-D12345Z", make="Beretta", model="92FS", made_in="IT")
    receipt = await answer(npcs, "ZA", za.sign(report))
    assert (receipt.kind, receipt.find("Status")) == ("Receipt", "stolen")
    request = samples.trace_request("KE", serial="ber d12345z", make="BERETTA", made_in="AT")
    await npcs["KE"].send(ke.sign(request))
    to_ke = await npcs["KE"].receive(2, timeout=15)
    [to_za] = await npcs["ZA"].receive(1, timeout=15)
    [delivery] = await npcs["AT"].receive(1, timeout=15)
    assert delivery.kind == "Delivery" and sorted(g.kind for g in to_ke) == ["HitNotice", "Receipt"]
    [hit_ke] = [g for g in to_ke if g.kind == "HitNotice"]
    for notice in (hit_ke, to_za):
        assert notice.kind == "HitNotice"
        assert (notice.find("ReportingState"), notice.find("Reference"), notice.find("FoundBy")) == ("ZA", REF, "KE")
        assert notice.find("Score") == "exact"
        verified_by_xmlsec1(pki, notice, tmp_path)
    exact = await answer(npcs, "BR", br.sign(samples.record_query("BR", "BER D12345Z", make="beretta")))
    assert exact.kind == "RecordQueryResult" and matches(exact) == [(REF, "exact")]
    verified_by_xmlsec1(pki, exact, tmp_path)
    probable = await answer(npcs, "BR", br.sign(samples.record_query("BR", "8ER-DI2345Z")))
    assert matches(probable) == [(REF, "probable")]
    withdrawn = await answer(npcs, "ZA", za.sign(samples.record_withdrawal("ZA", REF)))
    assert (withdrawn.kind, withdrawn.find("Status")) == ("Receipt", "withdrawn")
    after = await answer(npcs, "BR", br.sign(samples.record_query("BR", "BER-D12345Z")))
    assert matches(after) == []
    again = samples.trace_request("MZ", serial="BER-D12345Z", make="Beretta", made_in="AT")
    await npcs["MZ"].send(signer(pki, "MZ").sign(again))
    assert [g.kind for g in await npcs["MZ"].receive(2, timeout=5)] == ["Receipt"]
    assert await npcs["ZA"].receive(1, timeout=1) == []
