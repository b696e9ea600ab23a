"""The signature profile: what the gateway signs verifies; every deviation or attack is refused by name."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.dev.pki import DevPki, PrivateKey, load_private_key
from gateway.xml.signatures import (
    ALLOWED_DIGESTS,
    ALLOWED_SIGNATURE_METHODS,
    EXC_C14N,
    Signer,
    verify,
)
from gateway.xml.trust import TrustStore

EXAMPLE = Path(__file__).parents[1] / "data" / "examples" / "trace-request-firearm.xml"
DS = "http://www.w3.org/2000/09/xmldsig#"
D = f"{{{DS}}}"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"


class LegacySigner(XMLSigner):
    """signxml with its SHA-1 guard lifted, to forge the weak signatures an old toolkit would send."""

    def check_deprecated_methods(self) -> None:
        """Allow SHA-1 (the point of this signer)."""


def _document() -> etree._Element:
    """The contract's firearm trace request, unsigned."""
    return etree.parse(str(EXAMPLE)).getroot()


def _parse(body: bytes) -> etree._Element:
    """Parse as the gateway would: no entities, no network."""
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


def _material(pki: DevPki, state: str) -> tuple[PrivateKey, x509.Certificate]:
    """A state's key and certificate from the test PKI."""
    return load_private_key(pki.key_path(state)), x509.load_pem_x509_certificate(pki.cert_path(state).read_bytes())


def _state_with(pki: DevPki, kind: type) -> str:
    """The first state of the test PKI whose key is of `kind`."""
    return next(s for s in pki.states if isinstance(load_private_key(pki.key_path(s)), kind))


@pytest.fixture(scope="module")
def trust(pki: DevPki) -> TrustStore:
    """The test PKI's trust store."""
    return TrustStore.load(pki.trust_dir)


@pytest.fixture(scope="module")
def rsa_state(pki: DevPki) -> str:
    """A state whose national system signs with RSA."""
    return _state_with(pki, rsa.RSAPrivateKey)


@pytest.fixture(scope="module")
def ec_state(pki: DevPki) -> str:
    """A state whose national system signs with EC."""
    return _state_with(pki, ec.EllipticCurvePrivateKey)


@pytest.fixture(scope="module")
def signer(pki: DevPki, rsa_state: str) -> Signer:
    """The RSA state's signer, as its national system would use it."""
    return Signer.from_files(pki.key_path(rsa_state), pki.cert_path(rsa_state))


def _refused(body: bytes | etree._Element, sender: str, trust: TrustStore) -> Refused:
    """The refusal `verify` raises for `body`."""
    root = body if isinstance(body, etree._Element) else _parse(body)
    with pytest.raises(Refused) as caught:
        verify(root, sender=sender, trust=trust, now=datetime.now(UTC))
    return caught.value


def _xml_signer(method: str, digest: str = "sha256", legacy: bool = False) -> XMLSigner:
    """A raw signxml signer in the enveloped, exc-c14n shape (for crafting deviations)."""
    cls = LegacySigner if legacy else XMLSigner
    return cls(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=digest,
        c14n_algorithm=EXC_C14N,
    )


def _signature(root: etree._Element) -> etree._Element:
    """The ds:Signature child of a signed root."""
    found = root.find(D + "Signature")
    assert found is not None
    return found


@pytest.mark.parametrize("kind", ["rsa", "ec", "gateway"])
def test_signed_message_verifies_and_returns_exactly_the_signed_content(
    pki: DevPki, trust: TrustStore, rsa_state: str, ec_state: str, kind: str
) -> None:
    """What an RSA, EC or gateway signer signs verifies; the result is the content without ds:Signature."""
    if kind == "gateway":
        sender, signer = "GATEWAY", Signer.from_files(pki.gateway_key_path, pki.gateway_cert_path)
    else:
        sender = rsa_state if kind == "rsa" else ec_state
        signer = Signer.from_files(pki.key_path(sender), pki.cert_path(sender))
    document = _document()
    body = signer.sign(document)
    verified = verify(_parse(body), sender=sender, trust=trust, now=datetime.now(UTC))
    assert verified.certificate == signer.certificate
    assert verified.root.find(f".//{D}Signature") is None
    assert etree.tostring(verified.root, method="c14n", exclusive=True) == etree.tostring(
        document, method="c14n", exclusive=True
    )


def test_signed_output_is_utf8_with_the_signature_last(signer: Signer) -> None:
    """The signed bytes carry an XML declaration, and ds:Signature is the root's last child in the profile."""
    body = signer.sign(_document())
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = _parse(body)
    signature = root[-1]
    assert signature.tag == D + "Signature"
    methods = signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces={"ds": DS})
    digests = signature.xpath("ds:SignedInfo/ds:Reference/ds:DigestMethod/@Algorithm", namespaces={"ds": DS})
    assert methods == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert digests == ["http://www.w3.org/2001/04/xmlenc#sha256"]
    assert set(methods) <= ALLOWED_SIGNATURE_METHODS
    assert set(digests) <= ALLOWED_DIGESTS
    assert len(signature.findall(f"{D}KeyInfo/{D}X509Data/{D}X509Certificate")) == 1


def test_altered_value_breaks_the_digest(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """Changing one signed value after signing is SIGNATURE_INVALID, naming the digest."""
    body = signer.sign(_document()).replace(b"BXK291", b"BXK297", 1)
    refused = _refused(body, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "digest of the signed content does not match" in refused.detail
    assert "BXK" not in refused.detail


def test_altered_signature_value_does_not_verify(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """A changed SignatureValue is SIGNATURE_INVALID."""
    root = _parse(signer.sign(_document()))
    value = _signature(root).find(D + "SignatureValue")
    assert value is not None
    assert value.text
    value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "signature value does not verify" in refused.detail


def test_unsigned_message_is_signature_missing(trust: TrustStore) -> None:
    """A message without ds:Signature is SIGNATURE_MISSING."""
    refused = _refused(_document(), "ZA", trust)
    assert refused.code == ErrorCode.SIGNATURE_MISSING


def test_other_states_signature_is_a_sender_mismatch(signer: Signer, trust: TrustStore, ec_state: str) -> None:
    """A valid signature by one state on a message claiming another is SENDER_MISMATCH."""
    refused = _refused(signer.sign(_document()), ec_state, trust)
    assert refused.code == ErrorCode.SENDER_MISMATCH


def test_sha1_digest_is_refused_by_name(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """A genuine signature with a SHA-1 digest is SIGNATURE_INVALID naming sha1."""
    key, cert = _material(pki, rsa_state)
    root = _xml_signer("rsa-sha256", "sha1", legacy=True).sign(_document(), key=key, cert=[cert])
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert refused.detail.startswith("digest method sha1 is not allowed")


def test_rsa_sha1_method_is_refused_by_name(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """A genuine rsa-sha1 signature is SIGNATURE_INVALID naming the method."""
    key, cert = _material(pki, rsa_state)
    root = _xml_signer("rsa-sha1", legacy=True).sign(_document(), key=key, cert=[cert])
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert refused.detail == "signature method rsa-sha1 is not allowed (SHA-1 is broken)"


def test_hmac_is_refused(trust: TrustStore) -> None:
    """An HMAC 'signature' (a shared secret) is SIGNATURE_INVALID naming HMAC."""
    root = _xml_signer("hmac-sha256").sign(_document(), key=b"a shared secret")
    refused = _refused(root, "ZA", trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert refused.detail.startswith("signature method hmac-sha256 is not allowed")


def test_comment_preserving_canonicalization_is_refused(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """SignedInfo canonicalized #WithComments is refused by name."""
    key, cert = _material(pki, rsa_state)
    signer = XMLSigner(c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments")
    refused = _refused(signer.sign(_document(), key=key, cert=[cert]), rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "WithComments is not allowed" in refused.detail


def test_two_signatures_are_refused(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """A message signed twice carries two ds:Signature elements and is refused."""
    twice = signer.sign(_parse(signer.sign(_document())))
    refused = _refused(twice, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "2 ds:Signature elements" in refused.detail


def test_signature_not_last_child_is_refused(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """An element appended after ds:Signature is refused: the profile fixes where the signature sits."""
    root = _parse(signer.sign(_document()))
    etree.SubElement(root, "{urn:itrace:1}Note").text = "after the signature"
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "last element" in refused.detail


def test_reference_to_a_fragment_is_refused(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """A Reference URI="#x" (signing part of the message) is refused."""
    key, cert = _material(pki, rsa_state)
    document = _document()
    document.set("Id", "x")
    root = _xml_signer("rsa-sha256").sign(document, key=key, cert=[cert])
    assert root.find(f"{D}Signature/{D}SignedInfo/{D}Reference").get("URI") == "#x"  # type: ignore[union-attr]
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert 'URI=""' in refused.detail


def test_extra_xslt_transform_is_refused(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """A Reference with an XSLT transform added is refused, naming the transform."""
    root = _parse(signer.sign(_document()))
    transforms = _signature(root).find(f"{D}SignedInfo/{D}Reference/{D}Transforms")
    assert transforms is not None
    etree.SubElement(transforms, D + "Transform", Algorithm=XSLT)
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "REC-xslt-19991116" in refused.detail


def test_object_in_signature_is_refused(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """A ds:Object inside the signature is refused."""
    root = _parse(signer.sign(_document()))
    etree.SubElement(_signature(root), D + "Object").text = "smuggled"
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "ds:Object" in refused.detail


def test_key_value_without_certificate_is_refused(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """A signature whose KeyInfo holds only a KeyValue (no certificate) is refused as key confusion."""
    key, _ = _material(pki, rsa_state)
    root = _xml_signer("rsa-sha256").sign(_document(), key=key)
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "found KeyValue (key confusion)" in refused.detail


def test_key_value_beside_the_certificate_is_refused(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """KeyValue next to X509Data is refused too: only the certificate may name the key."""
    key, cert = _material(pki, rsa_state)
    root = _xml_signer("rsa-sha256").sign(_document(), key=key, cert=[cert], always_add_key_value=True)
    assert _refused(root, rsa_state, trust).code == ErrorCode.SIGNATURE_INVALID


def test_certificate_chain_in_key_info_is_refused(pki: DevPki, trust: TrustStore, rsa_state: str) -> None:
    """Two certificates in X509Data are refused: CAs are configured at the gateway, not sent."""
    key, cert = _material(pki, rsa_state)
    root = _xml_signer("rsa-sha256").sign(_document(), key=key, cert=[cert, pki.load_ca_cert()])
    refused = _refused(root, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "exactly one ds:X509Certificate" in refused.detail


def test_comment_injected_in_a_signed_value_is_refused(signer: Signer, trust: TrustStore, rsa_state: str) -> None:
    """`BXK<!---->291` keeps the digest (c14n drops comments) but is refused as unsigned content."""
    body = signer.sign(_document()).replace(b"BXK291</t:SerialNumber>", b"BXK<!---->291</t:SerialNumber>", 1)
    assert b"<!---->" in body
    refused = _refused(body, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert refused.detail == "unsigned content: a comment inside the signed element"


def test_signature_wrapping_with_the_original_nested_is_refused(
    signer: Signer, trust: TrustStore, rsa_state: str
) -> None:
    """The signed original moved inside an evil root (signature no longer the root's child) is refused."""
    original = _parse(signer.sign(_document()))
    evil = _document()
    evil.find(".//{urn:itrace:1}SerialNumber").text = "EVIL1"  # type: ignore[union-attr]
    wrapper = etree.SubElement(evil, "{urn:itrace:1}Wrapper")
    wrapper.append(original)
    refused = _refused(evil, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "child of the root" in refused.detail


def test_signature_wrapping_with_the_signature_kept_last_is_refused(
    signer: Signer, trust: TrustStore, rsa_state: str
) -> None:
    """An evil copy keeping the signature last, the original tucked in a wrapper, fails the digest."""
    original = _parse(signer.sign(_document()))
    signature = _signature(original)
    evil = _document()
    evil.find(".//{urn:itrace:1}SerialNumber").text = "EVIL1"  # type: ignore[union-attr]
    wrapper = etree.SubElement(evil, "{urn:itrace:1}Wrapper")
    wrapper.append(copy.deepcopy(original))
    _signature(wrapper[0]).getparent().remove(_signature(wrapper[0]))  # type: ignore[union-attr]
    evil.append(signature)
    refused = _refused(evil, rsa_state, trust)
    assert refused.code == ErrorCode.SIGNATURE_INVALID
    assert "digest" in refused.detail


def test_signer_refuses_a_key_that_does_not_match_its_certificate(pki: DevPki, rsa_state: str, ec_state: str) -> None:
    """Building a signer from one state's key and another's certificate is a configuration error."""
    with pytest.raises(ConfigurationError, match="does not match"):
        Signer.from_files(pki.key_path(rsa_state), pki.cert_path(ec_state))


def test_signer_names_a_missing_key_file(tmp_path: Path, pki: DevPki, rsa_state: str) -> None:
    """A missing key file is a configuration error naming it."""
    missing = tmp_path / "absent.key"
    with pytest.raises(ConfigurationError, match=r"absent\.key"):
        Signer.from_files(missing, pki.cert_path(rsa_state))


def test_a_libxml2_mismatch_between_lxml_and_xmlsec_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """lxml and xmlsec linked against different libxml2 versions stop the gateway at start, saying which."""
    import xmlsec

    from gateway.xml.signatures import check_libxml2_pairing

    check_libxml2_pairing()  # the versions installed together pair
    monkeypatch.setattr(xmlsec, "get_libxml_version", lambda: (1, 0, 0))
    with pytest.raises(ConfigurationError, match=r"libxml2 1\.0\.0"):
        check_libxml2_pairing()
