"""Reading the trust directory: `<dir>/<CC>/*.pem` certificates, `<dir>/<CC>/*.crl` revocation lists,
`<dir>/GATEWAY/` for the gateway's own certificate; a state's material as one value."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from gateway.core.errors import ConfigurationError
from gateway.xml.certificates import (
    GATEWAY_DIR,
    STATE_CODE,
    UNREADABLE,
    ca_problem,
    crl_problem,
    crl_signed_by,
    is_ca,
)


@dataclass(frozen=True)
class StateTrust:
    """The trust material configured for one state (or `GATEWAY`)."""

    state: str
    pinned: tuple[x509.Certificate, ...]
    cas: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]


def trust_files(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under the trust directory with its modification time and size: what a reload compares."""
    found = []
    for path in sorted(directory.rglob("*")):
        with contextlib.suppress(OSError):
            if path.is_file():
                stat = path.stat()
                found.append((str(path.relative_to(directory)), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def is_state_dir(path: Path) -> bool:
    """A `<CC>` or `GATEWAY` directory; hidden entries and loose files skipped, a misnamed one refused."""
    if path.name.startswith(".") or not path.is_dir():
        return False
    if path.name == GATEWAY_DIR or STATE_CODE.fullmatch(path.name):
        return True
    raise ConfigurationError(
        f"{path}: a trust directory must be named by an ISO 3166-1 alpha-2 code (upper case) or {GATEWAY_DIR}"
    )


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file; ConfigurationError naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"{path}: cannot read the certificate file ({err.strerror})") from err
    if b"PRIVATE KEY-----" in data:
        raise ConfigurationError(f"{path}: holds a private key; trust material must hold certificates only")
    try:
        certs = x509.load_pem_x509_certificates(data)
        for cert in certs:
            is_ca(cert)  # parse the extensions now, not on the first message
    except UNREADABLE as err:
        raise ConfigurationError(f"{path}: not a readable PEM certificate file ({err})") from err
    return certs


def read_crl(path: Path) -> x509.CertificateRevocationList:
    """A complete CRL in PEM or DER (`crl_problem`); ConfigurationError naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"{path}: cannot read the CRL file ({err.strerror})") from err
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----BEGIN") else x509.load_der_x509_crl(data)
        unfit = crl_problem(crl)
    except UNREADABLE as err:
        raise ConfigurationError(f"{path}: not a readable CRL (PEM or DER) ({err})") from err
    if unfit:
        raise ConfigurationError(f"{path}: a CRL that {unfit}")
    return crl


def load_state(directory: Path) -> StateTrust:
    """One state's certificates and CRLs; a CRL that no CA of the state signed is a configuration error."""
    pinned: list[x509.Certificate] = []
    cas: list[x509.Certificate] = []
    for path in sorted(directory.glob("*.pem")):
        for cert in read_certificates(path):
            unfit = ca_problem(cert) if is_ca(cert) else None
            if unfit:
                raise ConfigurationError(f"{path}: a CA certificate that {unfit}")
            (cas if is_ca(cert) else pinned).append(cert)
    crls: list[x509.CertificateRevocationList] = []
    for path in sorted(directory.glob("*.crl")):
        crl = read_crl(path)
        if not crl_signed_by(crl, cas):
            raise ConfigurationError(f"{path}: this CRL is not signed by any CA configured for {directory.name}")
        crls.append(crl)
    return StateTrust(state=directory.name, pinned=tuple(pinned), cas=tuple(cas), crls=tuple(crls))
