"""Hostile input through the switch: each attack refused with its code, nothing delivered, the switch still serving."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.dev import samples
from gateway.dev.pki import DevPki
from tests import forge

from .conftest import Switch

TO_MZ = {"exports": [("ZA", "MZ", "2019-06-14")]}
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE t:TraceRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<t:TraceRequest xmlns:t="urn:itrace:1"><t:Header><t:MessageId>&xxe;</t:MessageId></t:Header></t:TraceRequest>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<t:TraceRequest xmlns:t="urn:itrace:1">&lol3;</t:TraceRequest>"""
REMOTE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE t:TraceRequest SYSTEM "http://127.0.0.1:9/evil.dtd"><t:TraceRequest xmlns:t="urn:itrace:1"/>"""


def attacks(switch: Switch, pki: DevPki) -> list[tuple[str, bytes, str]]:
    """(name, body published by ZA, expected code)."""
    now = datetime.now(UTC)
    request = samples.trace_request
    genuine = switch.sign("ZA", request("ZA", **TO_MZ))  # type: ignore[arg-type]
    evil = request("ZA", exports=[("ZA", "BR", "2024-01-01")])
    return [
        ("xxe", XXE, "FORBIDDEN_XML"),
        ("entity expansion", LAUGHS, "FORBIDDEN_XML"),
        ("remote dtd", REMOTE_DTD, "FORBIDDEN_XML"),
        ("signature wrapping", forge.wrap_keeping_signature(genuine, evil), "SCHEMA_INVALID"),
        ("comment injection", genuine.replace(b"BXK291<", b"BXK<!---->291<", 1), "SIGNATURE_INVALID"),
        ("foreign key", forge.stranger("ZA", now).sign(request("ZA", **TO_MZ)), "CERTIFICATE_UNTRUSTED"),  # type: ignore[arg-type]
        (
            "key confusion",
            forge.swap_key_info(
                forge.stranger("ZA", now).sign(request("ZA", **TO_MZ)),  # type: ignore[arg-type]
                switch.signers["ZA"],
            ),
            "SIGNATURE_INVALID",
        ),
        ("expired certificate", forge.expired(pki, "ZA", now).sign(request("ZA", **TO_MZ)), "CERTIFICATE_EXPIRED"),  # type: ignore[arg-type]
        ("sha-1", forge.weak_sign(request("ZA", **TO_MZ), pki, "ZA"), "SIGNATURE_INVALID"),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("index", range(9))
async def test_attack_is_refused_and_the_switch_keeps_serving(switch: Switch, pki: DevPki, index: int) -> None:
    """The attack gets a signed Rejection with its code, nothing reaches another state, a good request still passes."""
    name, body, code = attacks(switch, pki)[index]
    outcome = await switch.send("ZA", body)
    assert (outcome.outcome, outcome.code) == ("refused", code), f"{name}: {outcome.detail}"
    [rejection] = switch.take("ZA")
    assert rejection.find("Code") == code
    assert b"/etc/passwd" not in rejection.body and b"lol" not in rejection.body
    assert switch.take("MZ") == [] and switch.take("BR") == []
    after = await switch.send("ZA", samples.trace_request("ZA", **TO_MZ))  # type: ignore[arg-type]
    assert after.outcome == "accepted"
