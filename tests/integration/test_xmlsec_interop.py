"""Interoperability with an independent XML-DSig implementation: the `xmlsec1` command-line tool.

What `xmlsec1` signs in the contract's profile, the gateway verifies; what the gateway signs, `xmlsec1`
verifies against the development CA, and refuses once a signed byte changes.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gateway.dev import samples
from gateway.dev.pki import DevPki, load_private_key
from gateway.xml.signatures import Signer, verify
from gateway.xml.trust import TrustStore

from .conftest import Switch

EXAMPLE = Path(__file__).parents[1] / "data" / "examples" / "trace-request-firearm.xml"
TEMPLATE = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <ds:SignedInfo>
    <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
    <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#{method}"/>
    <ds:Reference URI="">
      <ds:Transforms>
        <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      </ds:Transforms>
      <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
      <ds:DigestValue/>
    </ds:Reference>
  </ds:SignedInfo>
  <ds:SignatureValue/>
  <ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
</ds:Signature>"""
KEY_KINDS = {"rsa-sha256": rsa.RSAPrivateKey, "ecdsa-sha256": ec.EllipticCurvePrivateKey}


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    """The xmlsec1 executable; its absence fails the tests, since interoperability is part of the contract."""
    found = shutil.which("xmlsec1")
    if found is None:
        pytest.fail("xmlsec1 is not installed: install it (Debian/Ubuntu: apt-get install xmlsec1) to run these tests")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run xmlsec1 (or anything) without a shell, capturing its output."""
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)


def _state_with(pki: DevPki, method: str) -> str:
    """A state whose key suits `method`."""
    kind = KEY_KINDS[method]
    return next(s for s in pki.states if isinstance(load_private_key(pki.key_path(s)), kind))


def _parse(body: bytes) -> etree._Element:
    """Parse as the gateway would: no entities, no network."""
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


@pytest.mark.parametrize("method", sorted(KEY_KINDS))
def test_gateway_verifies_what_xmlsec1_signs(xmlsec1: str, pki: DevPki, tmp_path: Path, method: str) -> None:
    """A message signed by xmlsec1 from a profile template (RSA and EC) is accepted by verify."""
    state = _state_with(pki, method)
    unsigned = EXAMPLE.read_text(encoding="utf-8")
    template = tmp_path / "template.xml"
    template.write_text(unsigned.replace("</t:TraceRequest>", TEMPLATE.format(method=method) + "</t:TraceRequest>"))
    signed = tmp_path / "signed.xml"
    keys = f"{pki.key_path(state)},{pki.cert_path(state)}"
    done = _run(xmlsec1, "--sign", "--privkey-pem", keys, "--output", str(signed), str(template))
    assert done.returncode == 0, done.stderr
    verified = verify(
        _parse(signed.read_bytes()), sender=state, trust=TrustStore.load(pki.trust_dir), now=datetime.now(UTC)
    )
    assert verified.root.findtext("{urn:itrace:1}Firearm/{urn:itrace:1}SerialNumber") == "BXK291"


@pytest.mark.parametrize("who", ["rsa-sha256", "ecdsa-sha256", "GATEWAY"])
def test_xmlsec1_verifies_what_the_gateway_signs(xmlsec1: str, pki: DevPki, tmp_path: Path, who: str) -> None:
    """xmlsec1 accepts a Signer's output against the development CA, and refuses it once a byte changes."""
    if who == "GATEWAY":
        signer = Signer.from_files(pki.gateway_key_path, pki.gateway_cert_path)
    else:
        state = _state_with(pki, who)
        signer = Signer.from_files(pki.key_path(state), pki.cert_path(state))
    body = signer.sign(etree.parse(str(EXAMPLE)).getroot())
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_bytes(body)
    bad.write_bytes(body.replace(b"BXK291", b"BXK297", 1))
    trusted = str(pki.ca_cert_path)
    accepted = _run(xmlsec1, "--verify", "--trusted-pem", trusted, str(good))
    assert accepted.returncode == 0, accepted.stderr
    refused = _run(xmlsec1, "--verify", "--trusted-pem", trusted, str(bad))
    assert refused.returncode != 0
    assert "FAIL" in refused.stderr or "digest" in refused.stderr


async def test_xmlsec1_signed_request_goes_through_and_the_delivery_verifies_with_xmlsec1(
    xmlsec1: str, pki: DevPki, tmp_path: Path, switch: Switch
) -> None:
    """A request signed by xmlsec1 is routed; xmlsec1 verifies the gateway's Delivery and the payload inside it."""
    request = samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")])
    template = tmp_path / "template.xml"
    method = "rsa-sha256" if isinstance(load_private_key(pki.key_path("ZA")), rsa.RSAPrivateKey) else "ecdsa-sha256"
    request.append(etree.fromstring(TEMPLATE.format(method=method)))
    template.write_bytes(etree.tostring(request, xml_declaration=True, encoding="UTF-8"))
    signed = tmp_path / "signed.xml"
    keys = f"{pki.key_path('ZA')},{pki.cert_path('ZA')}"
    done = _run(xmlsec1, "--sign", "--privkey-pem", keys, "--output", str(signed), str(template))
    assert done.returncode == 0, done.stderr
    outcome = await switch.send("ZA", signed.read_bytes())
    assert outcome.outcome == "accepted", outcome.detail
    [delivery] = switch.take("MZ")
    relayed, payload = tmp_path / "delivery.xml", tmp_path / "payload.xml"
    relayed.write_bytes(delivery.body)
    payload.write_bytes(base64.b64decode(delivery.find("Payload") or ""))
    assert payload.read_bytes() == signed.read_bytes()
    for document in (relayed, payload):
        checked = _run(xmlsec1, "--verify", "--trusted-pem", str(pki.ca_cert_path), str(document))
        assert checked.returncode == 0, checked.stderr
