"""The certificate profile the gateway enforces (issue class: certificates it should refuse): weak keys, critical
extensions it does not understand, usages that do not allow signing documents (pinned certificates too), and
revocation lists past their next update; and what `TrustStore.findings` tells an operator ahead of time."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.dev.pki import PrivateKey
from gateway.xml.trust import TrustStore
from tests.certs import Extension, certificate, name

PEM = serialization.Encoding.PEM
Issued = tuple[PrivateKey, x509.Certificate]
USAGE = {
    "content_commitment": False,
    "key_encipherment": False,
    "data_encipherment": False,
    "key_agreement": False,
    "key_cert_sign": False,
    "crl_sign": False,
    "encipher_only": False,
    "decipher_only": False,
}


def weak_rsa() -> rsa.RSAPrivateKey:
    """The weak key under test."""
    return rsa.generate_private_key(65537, 1024)  # noqa: S505


def leaf(
    ca: Issued,
    now: datetime,
    *,
    key: Any = None,
    signing: bool = True,
    eku: list[x509.ObjectIdentifier] | None = None,
    extra: x509.ExtensionType | None = None,
    critical_extra: bool = True,
    self_signed: bool = False,
) -> Issued:
    """A ZA signing certificate from `ca` (or self-signed, to pin), with the key and extensions asked for."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    extensions: list[Extension] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(digital_signature=signing, **USAGE), True),
    ]
    if eku is not None:
        extensions.append((x509.ExtendedKeyUsage(eku), False))
    if extra is not None:
        extensions.append((extra, critical_extra))
    issuer = None if self_signed else (ca[0], ca[1].subject)
    return key, certificate(
        key, name(COUNTRY_NAME="ZA", COMMON_NAME="za"), now=now, issuer=issuer, extensions=extensions
    )


def store_with(tmp_path: Path, ca: Issued, *pinned: x509.Certificate, crl: bytes | None = None) -> TrustStore:
    """ZA's trust: the CA, any pinned leaves, and a CRL."""
    (tmp_path / "ZA").mkdir(parents=True, exist_ok=True)
    (tmp_path / "ZA" / "ca.pem").write_bytes(ca[1].public_bytes(PEM))
    for i, cert in enumerate(pinned):
        (tmp_path / "ZA" / f"pinned{i}.pem").write_bytes(cert.public_bytes(PEM))
    if crl is not None:
        (tmp_path / "ZA" / "ca.crl").write_bytes(crl)
    return TrustStore.load(tmp_path)


def refusal(store: TrustStore, cert: x509.Certificate, now: datetime) -> Refused:
    """What `authorize` says for ZA."""
    with pytest.raises(Refused) as caught:
        store.authorize(cert, "ZA", now)
    return caught.value


def test_a_good_certificate_passes(tmp_path: Path, test_ca: Issued, fixed_now: datetime) -> None:
    """The baseline: EC P-256, digitalSignature, document signing or e-mail protection, or no EKU at all."""
    store = store_with(tmp_path, test_ca)
    for eku in (None, [x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")], [ExtendedKeyUsageOID.EMAIL_PROTECTION]):
        store.authorize(leaf(test_ca, fixed_now, eku=eku)[1], "ZA", fixed_now)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda ca, now: leaf(ca, now, key=weak_rsa()), "1024-bit RSA key"),
        (lambda ca, now: leaf(ca, now, key=ec.generate_private_key(ec.SECP192R1())), "192-bit EC key"),
        (lambda ca, now: leaf(ca, now, signing=False), "does not allow digitalSignature"),
        (lambda ca, now: leaf(ca, now, eku=[ExtendedKeyUsageOID.SERVER_AUTH]), "does not allow signing documents"),
        (
            lambda ca, now: leaf(ca, now, extra=x509.InhibitAnyPolicy(0)),
            "critical extension the gateway does not understand (2.5.29.54)",
        ),
    ],
    ids=["rsa-1024", "ec-192", "no-digital-signature", "tls-only-eku", "unknown-critical-extension"],
)
def test_certificates_outside_the_profile_are_refused_issued_or_pinned(
    tmp_path: Path, test_ca: Issued, fixed_now: datetime, make: Any, expected: str
) -> None:
    """Each is CERTIFICATE_UNTRUSTED with its reason, whether a CA issued it or it is pinned."""
    issued = make(test_ca, fixed_now)[1]
    refused = refusal(store_with(tmp_path / "issued", test_ca), issued, fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED and expected in refused.detail, refused.detail
    pinned = make(test_ca, fixed_now)[1]
    refused = refusal(store_with(tmp_path / "pinned", test_ca, pinned), pinned, fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED and expected in refused.detail, refused.detail


def test_a_non_critical_unknown_extension_is_fine(tmp_path: Path, test_ca: Issued, fixed_now: datetime) -> None:
    """RFC 5280 lets a non-critical extension one does not understand be ignored."""
    cert = leaf(test_ca, fixed_now, extra=x509.InhibitAnyPolicy(0), critical_extra=False)[1]
    store_with(tmp_path, test_ca).authorize(cert, "ZA", fixed_now)


def _crl(ca: Issued, last: datetime, next_: datetime) -> bytes:
    """A CRL from `ca` listing nothing."""
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca[1].subject).last_update(last).next_update(next_)
    return builder.sign(ca[0], hashes.SHA256()).public_bytes(PEM)


def test_a_crl_past_its_next_update_fails_closed(tmp_path: Path, test_ca: Issued, fixed_now: datetime) -> None:
    """Fresh, the CRL lets an unlisted certificate pass; a day past its next update, every certificate of its CA
    is refused (a revoked one would otherwise stay good for ever once the CRL is not renewed)."""
    cert = leaf(test_ca, fixed_now)[1]
    crl = _crl(test_ca, fixed_now - timedelta(days=7), fixed_now + timedelta(days=1))
    store = store_with(tmp_path, test_ca, crl=crl)
    store.authorize(cert, "ZA", fixed_now)
    refused = refusal(store, cert, fixed_now + timedelta(days=2))
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED
    assert "past its next update" in refused.detail and "revocation status unknown" in refused.detail


def test_a_weak_ca_is_a_configuration_error(tmp_path: Path, fixed_now: datetime) -> None:
    """A CA certificate with a 1024-bit RSA key is refused when the trust directory is read, naming the file."""
    key = weak_rsa()
    constraints = x509.BasicConstraints(ca=True, path_length=None)
    ca = certificate(key, name(COMMON_NAME="weak CA"), now=fixed_now, serial=1, extensions=[(constraints, True)])
    (tmp_path / "ZA").mkdir()
    (tmp_path / "ZA" / "ca.pem").write_bytes(ca.public_bytes(PEM))
    with pytest.raises(ConfigurationError, match=r"ca\.pem: a CA certificate that has a 1024-bit RSA key"):
        TrustStore.load(tmp_path)


def test_findings_warn_ahead_and_name_problems(tmp_path: Path, test_ca: Issued, fixed_now: datetime) -> None:
    """A CRL falling due within the warning window is a warning; past due, a problem; a pinned TLS-only
    certificate is a problem; a certificate expiring within the window is a warning."""
    pinned = leaf(test_ca, fixed_now, eku=[ExtendedKeyUsageOID.SERVER_AUTH], self_signed=True)[1]
    crl = _crl(test_ca, fixed_now - timedelta(days=7), fixed_now + timedelta(days=10))
    store = store_with(tmp_path, test_ca, pinned, crl=crl)
    now = [(f.level, f.text) for f in store.findings(fixed_now, warn_days=60)]
    assert any(level == "warning" and "CRL" in text and "falls due" in text for level, text in now)
    assert any(level == "warning" and "pinned" in text and "expires" in text for level, text in now)
    assert any(level == "problem" and "signing documents" in text for level, text in now)
    later = [(f.level, f.text) for f in store.findings(fixed_now + timedelta(days=11), warn_days=60)]
    assert any(level == "problem" and "past its next update" in text for level, text in later)
    assert store_with(tmp_path / "clean", test_ca).findings(fixed_now, warn_days=1) == []
