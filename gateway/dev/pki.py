"""A development PKI, made on demand so that no private key is ever committed.

Owns certificate issuance for development and tests (`issue_certificate`) and the on-disk layout of a
development PKI (`create_dev_pki`): one root CA, the gateway's key, one key per state, and the public
trust material the gateway loads. Never used with production keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.core.errors import ConfigurationError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyKind = Literal["rsa", "ec"]

CA_NAME = "tracegate development CA"
GATEWAY_NAME = "GATEWAY"
BACKDATE = timedelta(hours=1)  # tolerate a little clock skew between the machines of a development setup
_STATE = re.compile(r"[A-Z]{2}")


def new_key(kind: KeyKind) -> PrivateKey:
    """A fresh RSA-2048 or EC P-256 private key."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(country: str | None, common_name: str) -> x509.Name:
    """A subject name: C (when given) and CN."""
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if country else []
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    """CAs sign certificates and CRLs; leaves sign messages."""
    return x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue_certificate(
    *,
    issuer_key: PrivateKey | None,
    issuer_cert: x509.Certificate | None,
    subject_country: str | None,
    common_name: str,
    key_kind: KeyKind,
    not_before: datetime,
    not_after: datetime,
    is_ca: bool = False,
) -> tuple[PrivateKey, x509.Certificate]:
    """A new key and its certificate, issued by `issuer_key`/`issuer_cert` (self-signed when both None)."""
    if (issuer_key is None) != (issuer_cert is None):
        raise ValueError("give both issuer_key and issuer_cert, or neither for a self-signed certificate")
    key = new_key(key_kind)
    subject = _name(subject_country, common_name)
    signing_key = issuer_key or key
    issuer_name = issuer_cert.subject if issuer_cert is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(is_ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False)
    )
    return key, builder.sign(signing_key, hashes.SHA256())


@dataclass(frozen=True)
class DevPki:
    """Where a development PKI lives: private material under `out_dir`, public trust under `trust_dir`."""

    out_dir: Path
    trust_dir: Path
    states: tuple[str, ...]

    def key_path(self, state: str) -> Path:
        """The private key of `state`'s national point of contact."""
        return self.out_dir / "npc" / state / "key.pem"

    def cert_path(self, state: str) -> Path:
        """The certificate of `state`'s national point of contact."""
        return self.out_dir / "npc" / state / "cert.pem"

    @property
    def ca_key_path(self) -> Path:
        """The development CA's private key."""
        return self.out_dir / "ca.key"

    @property
    def ca_cert_path(self) -> Path:
        """The development CA's certificate."""
        return self.out_dir / "ca.pem"

    @property
    def gateway_key_path(self) -> Path:
        """The gateway's signing key."""
        return self.out_dir / "gateway.key"

    @property
    def gateway_cert_path(self) -> Path:
        """The gateway's certificate."""
        return self.out_dir / "gateway.pem"

    def load_ca_key(self) -> PrivateKey:
        """The development CA's private key, to issue more certificates (tests, demo)."""
        return load_private_key(self.ca_key_path)

    def load_ca_cert(self) -> x509.Certificate:
        """The development CA's certificate."""
        return x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())


def load_private_key(path: Path) -> PrivateKey:
    """An unencrypted PEM RSA or EC private key."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{path}: only RSA and EC keys are supported")
    return key


def _write_key(path: Path, key: PrivateKey) -> None:
    """PEM, PKCS8, unencrypted, readable by the owner only (also when the file existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    """A PEM certificate, rewritten only when its content changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cert.public_bytes(serialization.Encoding.PEM)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


@dataclass(frozen=True)
class _Issuer:
    """The development CA in use, and the validity window for what it issues."""

    key: PrivateKey
    cert: x509.Certificate
    not_before: datetime
    not_after: datetime
    fresh: bool  # made in this run: everything it should have issued is issued again


def _ensure_ca(pki: DevPki, now: datetime, days: int, force: bool) -> _Issuer:
    """Keep the existing CA unless `force` or it is missing; a new CA re-issues every certificate."""
    not_after = now + timedelta(days=days)
    if not force and pki.ca_key_path.exists() and pki.ca_cert_path.exists():
        cert = pki.load_ca_cert()
        return _Issuer(pki.load_ca_key(), cert, now - BACKDATE, min(not_after, cert.not_valid_after_utc), False)
    key, cert = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country=None,
        common_name=CA_NAME,
        key_kind="ec",
        not_before=now - BACKDATE,
        not_after=not_after,
        is_ca=True,
    )
    _write_key(pki.ca_key_path, key)
    _write_cert(pki.ca_cert_path, cert)
    return _Issuer(key, cert, now - BACKDATE, not_after, True)


def _ensure_leaf(
    issuer: _Issuer, key_path: Path, cert_path: Path, *, country: str | None, common_name: str, kind: KeyKind
) -> x509.Certificate:
    """Keep an existing key pair issued by this CA; otherwise issue one."""
    if not issuer.fresh and key_path.exists() and cert_path.exists():
        return x509.load_pem_x509_certificate(cert_path.read_bytes())
    key, cert = issue_certificate(
        issuer_key=issuer.key,
        issuer_cert=issuer.cert,
        subject_country=country,
        common_name=common_name,
        key_kind=kind,
        not_before=issuer.not_before,
        not_after=issuer.not_after,
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert


def create_dev_pki(
    out_dir: Path,
    trust_dir: Path,
    states: Iterable[str],
    *,
    now: datetime,
    days: int = 825,
    force: bool = False,
) -> DevPki:
    """Make (or complete) a development PKI and write the trust material the gateway loads.

    States alternate RSA-2048 and EC P-256 in sorted order so that both families are exercised.
    Existing material is kept unless `force`; a state added later gets its own key from the existing CA.
    """
    codes = tuple(sorted(set(states)))
    bad = [code for code in codes if not _STATE.fullmatch(code)]
    if bad:
        raise ConfigurationError(f"not ISO 3166-1 alpha-2 codes (upper case): {', '.join(bad)}")
    pki = DevPki(out_dir=out_dir, trust_dir=trust_dir, states=codes)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o700)
    issuer = _ensure_ca(pki, now, days, force)
    gateway = _ensure_leaf(
        issuer, pki.gateway_key_path, pki.gateway_cert_path, country=None, common_name=GATEWAY_NAME, kind="ec"
    )
    _write_cert(trust_dir / GATEWAY_NAME / "gateway.pem", gateway)
    for index, code in enumerate(codes):
        kind: KeyKind = "rsa" if index % 2 == 0 else "ec"
        _ensure_leaf(
            issuer,
            pki.key_path(code),
            pki.cert_path(code),
            country=code,
            common_name=f"{code} national point of contact",
            kind=kind,
        )
        _write_cert(trust_dir / code / "ca.pem", issuer.cert)
    return pki
