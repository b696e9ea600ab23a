"""One certificate, or one revocation list, judged on its own: the profile a document-signing certificate or a CA
must meet, validity, and the checks a CRL must pass to be used. Pure: `now` is always a parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from gateway.core.errors import ErrorCode, Refused

GATEWAY_DIR = "GATEWAY"  # the trust directory's folder for the gateway's own certificate
STATE_CODE = re.compile(r"[A-Z]{2}")
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
# Critical extensions the gateway acts on (RFC 5280 4.2: a certificate with any other critical extension is
# refused): the constraints and usages checked here, and the subject's alternative names (informational).
_UNDERSTOOD = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
# A CA's critical extensions the gateway acts on. Not its extended key usage, name constraints, policy constraints
# or inhibitAnyPolicy: they constrain what the CA issues, and the gateway does not apply them to the certificates
# it issued, so a CA marking one critical is refused when the directory is read.
_CA_UNDERSTOOD = frozenset(
    {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.SUBJECT_ALTERNATIVE_NAME}
)
# Extended key usages that allow signing documents: document signing (RFC 9336), Microsoft's document signing,
# e-mail protection (S/MIME signing, what many national PKIs issue for signed messages) and any usage.
DOCUMENT_SIGNING = frozenset(
    {
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),
        x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"),
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    }
)
# What reading a certificate's extensions raises when they are malformed (parsed on first access, not at load).
UNREADABLE = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


@dataclass(frozen=True)
class Finding:
    """One thing `tracegate trust check` and the health report tell an operator: a problem now, or a warning."""

    state: str
    level: str  # problem | warning
    text: str


def fingerprint(cert: x509.Certificate) -> bytes:
    """The SHA-256 fingerprint that pins a certificate."""
    return cert.fingerprint(hashes.SHA256())


def short(cert: x509.Certificate) -> str:
    """A safe name for a certificate in a refusal: never its (sender-chosen) subject text."""
    return "certificate sha256:" + fingerprint(cert).hex()[:16]


def is_ca(cert: x509.Certificate) -> bool:
    """BasicConstraints ca=True."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def may_sign(cert: x509.Certificate) -> bool:
    """KeyUsage, where present, allows digitalSignature."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature)
    except x509.ExtensionNotFound:
        return True


def key_problem(cert: x509.Certificate) -> str | None:
    """Why the certificate's key is too weak to trust, if it is: RSA under 2048 bits, EC under 256, DSA."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"has a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"has a {key.curve.key_size}-bit EC key; curves of at least {MIN_EC_BITS} bits are required"
    if isinstance(key, dsa.DSAPublicKey):
        return "has a DSA key; DSA is not accepted"
    return None


def _unknown_critical(cert: x509.Certificate, understood: frozenset[x509.ObjectIdentifier]) -> str | None:
    """The first critical extension outside `understood`, said as a reason."""
    for extension in cert.extensions:
        if extension.critical and extension.oid not in understood:
            return f"has a critical extension the gateway does not understand ({extension.oid.dotted_string})"
    return None


def ca_problem(cert: x509.Certificate) -> str | None:
    """Why a CA certificate cannot be configured, if it cannot: a weak key, or a critical extension the gateway
    does not process (RFC 5280 4.2)."""
    return key_problem(cert) or _unknown_critical(cert, _CA_UNDERSTOOD)


def signing_certificate_findings(cert: x509.Certificate, now: datetime, warn_days: float) -> list[Finding]:
    """The gateway's own signing certificate at `now`: a problem when outside its validity period (every national
    system would refuse what the gateway signs), a warning when it expires within `warn_days`."""
    what = f"GATEWAY: the gateway's signing {short(cert)}"
    if now < cert.not_valid_before_utc:
        return [Finding(GATEWAY_DIR, "problem", f"{what} is not valid before {cert.not_valid_before_utc.date()}")]
    if now > cert.not_valid_after_utc:
        return [Finding(GATEWAY_DIR, "problem", f"{what} expired on {cert.not_valid_after_utc.date()}")]
    if now + timedelta(days=warn_days) > cert.not_valid_after_utc:
        return [Finding(GATEWAY_DIR, "warning", f"{what} expires on {cert.not_valid_after_utc.date()}")]
    return []


def validity(cert: x509.Certificate, now: datetime) -> str:
    """`valid`, `expired` or `not yet valid` at `now`."""
    if now < cert.not_valid_before_utc:
        return "not yet valid"
    return "expired" if now > cert.not_valid_after_utc else "valid"


def profile_problem(cert: x509.Certificate) -> str | None:
    """Why a signing certificate is outside the profile the gateway accepts, if it is: a weak key, a critical
    extension the gateway does not understand, or a key usage or extended key usage that does not allow signing
    documents. The same for pinned and CA-issued certificates."""
    weak = key_problem(cert) or _unknown_critical(cert, _UNDERSTOOD)
    if weak:
        return weak
    if not may_sign(cert):
        return "does not allow digitalSignature in its key usage"
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not DOCUMENT_SIGNING.intersection(usages):
        return "has an extended key usage that does not allow signing documents (e.g. TLS only)"
    return None


def country_of(cert: x509.Certificate) -> str | None:
    """The subject countryName, if it is a well-formed alpha-2 code."""
    values = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) and STATE_CODE.fullmatch(value) else None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """The CA's key verifies the certificate's signature (and the names chain)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def crl_signed_by(crl: x509.CertificateRevocationList, cas: Iterable[x509.Certificate]) -> bool:
    """One of the CAs issued (and signed) this CRL."""
    for ca in cas:
        key = ca.public_key()
        if crl.issuer != ca.subject:
            continue
        issuer_key = (
            rsa.RSAPublicKey,
            ec.EllipticCurvePublicKey,
            dsa.DSAPublicKey,
            ed25519.Ed25519PublicKey,
            ed448.Ed448PublicKey,
        )
        if isinstance(key, issuer_key) and crl.is_signature_valid(key):
            return True
    return False


def check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    """CERTIFICATE_EXPIRED when `now` is outside the certificate's validity period."""
    if now < cert.not_valid_before_utc:
        raise Refused(
            ErrorCode.CERTIFICATE_EXPIRED,
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}",
        )
    if now > cert.not_valid_after_utc:
        raise Refused(ErrorCode.CERTIFICATE_EXPIRED, f"{what} expired on {cert.not_valid_after_utc.isoformat()}")


def crl_staleness(crl: x509.CertificateRevocationList, now: datetime) -> str | None:
    """Why a CRL cannot be relied on at `now`, if it cannot: past its next update, not yet issued, or without a
    next update (RFC 5280 5.1.2.5 requires one)."""
    next_update = crl.next_update_utc
    if next_update is None:
        return "has no next update"
    if now > next_update:
        return f"is past its next update of {next_update.isoformat()}"
    if now < crl.last_update_utc:
        return f"is not valid before {crl.last_update_utc.isoformat()}"
    return None


def crl_scope(crl: x509.CertificateRevocationList) -> x509.IssuingDistributionPoint | None:
    """The part of its CA's certificates a CRL covers: its issuing distribution point, None for all of them. A
    stale CRL is superseded only by a current one of the same CA and the same scope."""
    try:
        return crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None


def crl_problem(crl: x509.CertificateRevocationList) -> str | None:
    """Why a CRL cannot be read as the complete list of its CA's revoked signing certificates, if it cannot: a delta
    CRL (only the changes since a base CRL), an issuing distribution point narrowing it to CA or attribute
    certificates, to some revocation reasons or to another issuer's certificates (an indirect CRL), or any other
    critical extension (RFC 5280 5.2: a CRL with a critical extension one does not process is not used). Read as
    complete, any of these would pass a revoked certificate it does not list."""
    for extension in crl.extensions:
        if extension.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            return "is a delta CRL; configure the complete CRL instead"
        if isinstance(extension.value, x509.IssuingDistributionPoint):
            scope = extension.value
            if (
                scope.only_contains_ca_certs
                or scope.only_contains_attribute_certs
                or scope.only_some_reasons
                or scope.indirect_crl
            ):
                return (
                    "covers only part of its CA's certificates (issuing distribution point); configure the complete CRL"
                )
        elif extension.critical:
            return f"has a critical extension the gateway does not understand ({extension.oid.dotted_string})"
    return None
