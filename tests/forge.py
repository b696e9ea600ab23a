"""Forgeries for the hostile-input tests: weak signatures, foreign keys, wrapped and injected documents."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from gateway.dev.pki import DevPki, issue_certificate, load_private_key
from gateway.xml.signatures import EXC_C14N, Signer

DS = "{http://www.w3.org/2000/09/xmldsig#}"


class LegacySigner(XMLSigner):
    """signxml with its SHA-1 guard lifted, to forge the weak signatures an old toolkit would send."""

    def check_deprecated_methods(self) -> None:
        """Allow SHA-1 (the point of this signer)."""


def weak_sign(root: etree._Element, pki: DevPki, state: str) -> bytes:
    """Sign with the state's genuine key but SHA-1 throughout (rsa-sha1 or ecdsa-sha1, sha1 digest)."""
    key = load_private_key(pki.key_path(state))
    cert = x509.load_pem_x509_certificate(pki.cert_path(state).read_bytes())
    method = "rsa-sha1" if isinstance(key, rsa.RSAPrivateKey) else "ecdsa-sha1"
    digest = "sha1"
    signer = LegacySigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=digest,
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(root, key=key, cert=[cert])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def stranger(country: str, now: datetime) -> Signer:
    """A signer whose certificate, naming `country`, comes from a CA nobody configured."""
    ca_key, ca = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country=country,
        common_name="rogue CA",
        key_kind="ec",
        is_ca=True,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=30),
    )
    return Signer.from_objects(
        *issue_certificate(
            issuer_key=ca_key,
            issuer_cert=ca,
            subject_country=country,
            common_name=f"{country} national point of contact",
            key_kind="ec",
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=30),
        )
    )


def expired(pki: DevPki, country: str, now: datetime) -> Signer:
    """A signer whose certificate the state's own CA issued, but which expired yesterday."""
    return Signer.from_objects(
        *issue_certificate(
            issuer_key=pki.load_ca_key(),
            issuer_cert=pki.load_ca_cert(),
            subject_country=country,
            common_name=country,
            key_kind="ec",
            not_before=now - timedelta(days=60),
            not_after=now - timedelta(days=1),
        )
    )


def wrap_keeping_signature(signed: bytes, evil: etree._Element) -> bytes:
    """XSW: an evil root that keeps the genuine signature as its last child, the original tucked inside."""
    original = etree.fromstring(signed)
    signature = original.find(DS + "Signature")
    assert signature is not None
    tucked = copy.deepcopy(original)
    tucked.remove(tucked.find(DS + "Signature"))  # type: ignore[arg-type]
    header = evil.find("{urn:itrace:1}Header")
    assert header is not None
    header.append(tucked)
    evil.append(signature)
    return etree.tostring(evil, xml_declaration=True, encoding="UTF-8")


def swap_key_info(signed: bytes, genuine: Signer) -> bytes:
    """Key confusion: a stranger's signature presented with a genuine certificate in KeyInfo."""
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding

    root = etree.fromstring(signed)
    cert = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert cert is not None
    cert.text = base64.b64encode(genuine.certificate.public_bytes(Encoding.DER)).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
