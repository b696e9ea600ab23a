"""The gateway's signer on generated documents: libxmlsec1 verifies every signature it makes.

The signer canonicalises with libxml2 (through lxml) and signs with `cryptography`; what it produces must be the
profile's signature exactly, whatever the document holds: namespaces declared anywhere, default namespaces,
attributes and text that need escaping, carriage returns, comments, processing instructions, any Unicode.
The check is libxmlsec1's own verification with the certificate's key (not the gateway's `verify`, which also
applies the profile's refusals, e.g. of comments).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.xml.signatures import DS, ECDSA_SHA256, ECDSA_SHA384, RSA_SHA256, Signer
from tests.certs import certificate, name

D = f"{{{DS}}}"
NAMESPACES = ["urn:itrace:1", "urn:a", "http://example.org/b?x=1&y=2", ""]
PREFIXES = ["a", "b", "ns0", "t"]
XML_CHARS = st.characters(
    exclude_categories=["Cs"], exclude_characters="\ufffe\uffff", min_codepoint=0x20
) | st.sampled_from("\t\n\r&<>\"'")
TEXT = st.text(XML_CHARS, max_size=40)
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True)


def _signer(key: Any) -> Signer:
    """A signer with a self-signed certificate for `key`."""
    return Signer.from_objects(key, certificate(key, name(COMMON_NAME="signer under test"), now=datetime.now(UTC)))


SIGNERS = {
    RSA_SHA256: _signer(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ECDSA_SHA256: _signer(ec.generate_private_key(ec.SECP256R1())),
    ECDSA_SHA384: _signer(ec.generate_private_key(ec.SECP384R1())),
}


@st.composite
def _element(draw: st.DrawFn, parent: etree._Element | None, depth: int) -> etree._Element:
    """An element with generated namespaces, attributes, text, children, comments and PIs."""
    namespace = draw(st.sampled_from(NAMESPACES))
    nsmap: dict[Any, str] = {}  # a None key declares the default namespace
    if draw(st.booleans()):
        nsmap[draw(st.sampled_from([None, *PREFIXES]))] = draw(st.sampled_from([n for n in NAMESPACES if n]))
    tag = f"{{{namespace}}}{draw(NAME)}" if namespace else draw(NAME)
    element = etree.Element(tag, nsmap=nsmap) if parent is None else etree.SubElement(parent, tag, nsmap=nsmap)
    for attribute in draw(st.lists(NAME, max_size=3, unique=True)):
        qualified = draw(st.sampled_from([None, "urn:a", "urn:itrace:1"]))
        element.set(f"{{{qualified}}}{attribute}" if qualified else attribute, draw(TEXT))
    element.text = draw(TEXT) or None
    if depth < 3:
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["element", "element", "comment", "pi"]))
            if kind == "element":
                child = draw(_element(element, depth + 1))
            elif kind == "comment":
                child = etree.Comment(draw(TEXT).replace("--", "- -").rstrip("-").replace("\r", ""))
                element.append(child)
            else:
                # Only what a parser can produce: a PI's data never starts with white space (the separator), and
                # no CR survives in a PI or a comment (they cannot be escaped there; parsing turns CR into LF).
                data = draw(TEXT).replace("?>", "").replace("\r", "").lstrip(" \t\n")
                child = etree.ProcessingInstruction(draw(NAME).replace("xml", "x_l"), data)
                element.append(child)
            child.tail = draw(TEXT) or None
    return element


def _xmlsec_verifies(body: bytes, certificate: x509.Certificate) -> bool:
    """libxmlsec1's verdict on the one signature of `body`, with the certificate's public key."""
    root = etree.fromstring(body)
    signature = root[len(root) - 1]
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(
        certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        xmlsec.constants.KeyDataFormatPem,
    )
    try:
        context.verify(signature)
    except xmlsec.Error:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_element(None, 0), method=st.sampled_from(sorted(SIGNERS)))
def test_every_generated_document_signed_verifies_with_libxmlsec1(document: etree._Element, method: str) -> None:
    """Signed by RSA, P-256 or P-384, each generated document verifies; the signer's tree is left unsigned."""
    signer = SIGNERS[method]
    before = etree.tostring(document)
    body = signer.sign(document)
    assert etree.tostring(document) == before
    assert _xmlsec_verifies(body, signer.certificate)
    signed = etree.fromstring(body)
    assert (
        signed[len(signed) - 1].xpath("string(ds:SignedInfo/ds:SignatureMethod/@Algorithm)", namespaces={"ds": DS})
        == method
    )


@settings(max_examples=60, deadline=None)
@given(document=_element(None, 0), position=st.integers(0, 10_000), byte=st.integers(1, 255))
def test_a_generated_document_altered_after_signing_does_not_verify(
    document: etree._Element, position: int, byte: int
) -> None:
    """Any change to the signed content (here: one character of a text or attribute value) is caught."""
    signer = SIGNERS[ECDSA_SHA256]
    signed = etree.fromstring(signer.sign(document))
    signed.set("altered", str(byte))
    assert not _xmlsec_verifies(etree.tostring(signed), signer.certificate)


def test_the_digest_is_of_the_document_without_its_signature_in_exclusive_c14n() -> None:
    """DigestValue is SHA-256 of exactly the content, as a verifier recomputes it after the enveloped transform."""
    document = etree.fromstring(b'<r xmlns="urn:itrace:1" xmlns:u="urn:unused"><a x="1">t<!-- c --></a></r>')
    signed = etree.fromstring(SIGNERS[ECDSA_SHA256].sign(document))
    signature = signed[len(signed) - 1]
    signed.remove(signature)
    canonical = etree.tostring(signed, method="c14n", exclusive=True, with_comments=False)
    assert (
        signature.findtext(f"{D}SignedInfo/{D}Reference/{D}DigestValue")
        == base64.b64encode(hashlib.sha256(canonical).digest()).decode()
    )


def test_ecdsa_values_are_r_and_s_of_the_curve_size_not_der() -> None:
    """XML-DSig's ECDSA SignatureValue is r then s, each the curve's size (64 bytes for P-256, 96 for P-384)."""
    for method, size in ((ECDSA_SHA256, 64), (ECDSA_SHA384, 96)):
        signed = etree.fromstring(SIGNERS[method].sign(etree.fromstring(b"<r/>")))
        value = base64.b64decode(signed[0].findtext(f"{D}SignatureValue") or "")
        assert len(value) == size


def test_only_a_whole_document_is_signed() -> None:
    """A child element is not signed on its own; a comment or PI beside the root (a prolog) is left out of the
    signed output, which holds the root element alone, as its signature covers."""
    signer = SIGNERS[RSA_SHA256]
    parent = etree.fromstring(b"<r><child/></r>")
    with pytest.raises(ValueError, match="whole document"):
        signer.sign(parent[0])
    with_prolog = etree.fromstring(b"<!-- about --><?keep me?><r>t</r><!-- after -->")
    body = signer.sign(with_prolog)
    assert b"about" not in body and b"keep" not in body and b"after" not in body
    assert _xmlsec_verifies(body, signer.certificate)


def test_the_body_is_the_canonical_document_with_its_signature_before_the_root_end_tag() -> None:
    """What is sent is what was digested: the document's exclusive canonical form (no comments, end tags for
    empty elements), the ds:Signature inserted as the root's last child."""
    document = etree.fromstring(b'<r xmlns="urn:itrace:1" b="2" a="1"><e/><!-- note -->text</r>')
    body = SIGNERS[ECDSA_SHA256].sign(document)
    canonical = etree.tostring(document, method="c14n", exclusive=True, with_comments=False)
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n" + canonical[: -len(b"</r>")] + b"<ds:Signature")
    assert body.endswith(b"</ds:Signature></r>")
    assert _xmlsec_verifies(body, SIGNERS[ECDSA_SHA256].certificate)


def test_a_namespace_name_with_an_ampersand_is_escaped_in_the_body() -> None:
    """libxml2's c14n writes namespace names unescaped; a name with '&' (valid in a URI) still reads back."""
    name = "http://example.org/b?x=1&y=2"
    document = etree.Element(f"{{{name}}}A", nsmap={None: name})  # type: ignore[dict-item]
    etree.SubElement(document, f"{{{name}}}B").text = "t"
    body = SIGNERS[RSA_SHA256].sign(document)
    signed = etree.fromstring(body)
    assert signed.tag == f"{{{name}}}A" and signed[0].tag == f"{{{name}}}B"
    assert _xmlsec_verifies(body, SIGNERS[RSA_SHA256].certificate)
