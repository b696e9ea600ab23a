"""The trust store: which certificate may speak for which state.

Owns the trust directory (`<dir>/<CC>/*.pem` certificates, `<dir>/<CC>/*.crl` revocation lists, and
`<dir>/GATEWAY/` for the gateway's own certificate) and the one decision `authorize(cert, state, now)`.
A certificate with BasicConstraints ca=True is a CA configured for the state; any other certificate is
a leaf pinned for it. A CA-issued certificate speaks for a state only if its subject countryName is
that state, so one CA serving several states cannot let one state's key speak for another.
Pure: `now` is always a parameter, and nothing here reads the clock.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from gateway.core.errors import ConfigurationError, ErrorCode, Refused

GATEWAY_DIR = "GATEWAY"
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
_GRANT_CACHE_SIZE = 1024
# What reading a certificate's extensions raises when they are malformed (parsed on first access, not at load).
_UNREADABLE = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
_STATE_DIR = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class StateTrust:
    """The trust material configured for one state (or `GATEWAY`)."""

    state: str
    pinned: tuple[x509.Certificate, ...]
    cas: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]


@dataclass(frozen=True)
class Finding:
    """One thing `tracegate trust check` and the health report tell an operator: a problem now, or a warning."""

    state: str
    level: str  # problem | warning
    text: str


@dataclass(frozen=True)
class Item:
    """One certificate or CRL of the trust material, as `tracegate trust check` lists it."""

    state: str
    kind: str  # CA | pinned | CRL
    name: str  # `certificate sha256:<16 hex digits>`, or the CRL issuer's name
    country: str  # a certificate's subject C ("-" when it has none); "" for a CRL
    until: datetime | None  # a certificate's notAfter, a CRL's nextUpdate


@dataclass(frozen=True)
class _Grant:
    """Why a certificate speaks for a state: pinned there (`ca` None) or issued by one of its CAs."""

    state: str
    ca: x509.Certificate | None


def fingerprint(cert: x509.Certificate) -> bytes:
    """The SHA-256 fingerprint that pins a certificate."""
    return cert.fingerprint(hashes.SHA256())


def _short(cert: x509.Certificate) -> str:
    """A safe name for a certificate in a refusal: never its (sender-chosen) subject text."""
    return "certificate sha256:" + fingerprint(cert).hex()[:16]


def _is_ca(cert: x509.Certificate) -> bool:
    """BasicConstraints ca=True."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _may_sign(cert: x509.Certificate) -> bool:
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
    what = f"GATEWAY: the gateway's signing {_short(cert)}"
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
    if not _may_sign(cert):
        return "does not allow digitalSignature in its key usage"
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not DOCUMENT_SIGNING.intersection(usages):
        return "has an extended key usage that does not allow signing documents (e.g. TLS only)"
    return None


def _country(cert: x509.Certificate) -> str | None:
    """The subject countryName, if it is a well-formed alpha-2 code."""
    values = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) and _STATE_DIR.fullmatch(value) else None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """The CA's key verifies the certificate's signature (and the names chain)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _crl_signed_by(crl: x509.CertificateRevocationList, cas: Iterable[x509.Certificate]) -> bool:
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


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    """CERTIFICATE_EXPIRED when `now` is outside the certificate's validity period."""
    if now < cert.not_valid_before_utc:
        raise Refused(
            ErrorCode.CERTIFICATE_EXPIRED,
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}",
        )
    if now > cert.not_valid_after_utc:
        raise Refused(ErrorCode.CERTIFICATE_EXPIRED, f"{what} expired on {cert.not_valid_after_utc.isoformat()}")


class TrustStore:
    """Trust material by state, indexed so that each lookup is a dictionary hit; immutable once built."""

    __slots__ = ("_cas_by_subject", "_crls", "_grant_cache", "_pins", "_profile_cache", "_states")

    def __init__(self, states: Iterable[StateTrust]) -> None:
        """Index the material; CRLs not signed by a CA of their state are ignored (`load` refuses them)."""
        self._states: Mapping[str, StateTrust] = {s.state: s for s in states}
        pins: dict[bytes, set[str]] = {}
        cas: dict[x509.Name, list[tuple[str, x509.Certificate]]] = {}
        crls: dict[tuple[str, x509.Name], list[x509.CertificateRevocationList]] = {}
        for trust in self._states.values():
            for cert in trust.pinned:
                pins.setdefault(fingerprint(cert), set()).add(trust.state)
            for ca in trust.cas:
                cas.setdefault(ca.subject, []).append((trust.state, ca))
            for crl in trust.crls:
                if _crl_signed_by(crl, trust.cas):
                    crls.setdefault((trust.state, crl.issuer), []).append(crl)
        self._pins = {k: frozenset(v) for k, v in pins.items()}
        self._cas_by_subject = {k: tuple(v) for k, v in cas.items()}
        self._crls = {k: tuple(v) for k, v in crls.items()}
        # The store never changes, so a certificate's grants never do: remember them for the certificates
        # seen most (each national system sends the same one), bounded so strangers cannot grow it.
        self._grant_cache: dict[x509.Certificate, tuple[_Grant, ...]] = {}
        self._profile_cache: dict[x509.Certificate, str | None] = {}

    def findings(self, now: datetime, warn_days: float) -> list[Finding]:
        """What an operator must know about the material at `now`: problems (a certificate or CRL that is refused
        or unusable now) and warnings (one that expires or falls due within `warn_days`)."""
        soon = now + timedelta(days=warn_days)
        out: list[Finding] = []
        for state in sorted(self._states):
            trust = self._states[state]
            for cert in (*trust.pinned, *trust.cas):
                what = f"{state}: {'CA' if _is_ca(cert) else 'pinned'} {_short(cert)}"
                problem = ca_problem(cert) if _is_ca(cert) else profile_problem(cert)
                if problem:
                    out.append(Finding(state, "problem", f"{what} {problem}"))
                if now > cert.not_valid_after_utc:
                    out.append(Finding(state, "problem", f"{what} expired on {cert.not_valid_after_utc.date()}"))
                elif soon > cert.not_valid_after_utc:
                    out.append(Finding(state, "warning", f"{what} expires on {cert.not_valid_after_utc.date()}"))
            current = {(crl.issuer, crl_scope(crl)) for crl in trust.crls if crl_staleness(crl, now) is None}
            for crl in trust.crls:
                what = f"{state}: CRL of {crl.issuer.rfc4514_string()[:80]}"
                stale = crl_staleness(crl, now)
                if stale and (crl.issuer, crl_scope(crl)) in current:
                    out.append(Finding(state, "warning", f"{what} {stale}; a current CRL of its CA supersedes it"))
                elif stale:
                    out.append(Finding(state, "problem", f"{what} {stale}; its CA's certificates are refused"))
                elif crl.next_update_utc is not None and soon > crl.next_update_utc:
                    out.append(Finding(state, "warning", f"{what} falls due on {crl.next_update_utc.isoformat()}"))
        return out

    def inventory(self) -> list[Item]:
        """Every certificate and CRL, by state: CAs, then pinned certificates, then CRLs."""
        out: list[Item] = []
        for state in sorted(self._states):
            trust = self._states[state]
            for kind, certs in (("CA", trust.cas), ("pinned", trust.pinned)):
                out.extend(Item(state, kind, _short(c), _country(c) or "-", c.not_valid_after_utc) for c in certs)
            out.extend(Item(state, "CRL", c.issuer.rfc4514_string()[:80], "", c.next_update_utc) for c in trust.crls)
        return out

    @classmethod
    def load(cls, directory: Path) -> TrustStore:
        """Read `<directory>/<CC>/*.pem` and `*.crl`; a missing directory gives an empty store."""
        if not directory.is_dir():
            return cls(())
        return cls(_load_state(path) for path in sorted(directory.iterdir()) if _is_state_dir(path))

    def states(self) -> frozenset[str]:
        """States (and `GATEWAY`) with any trust material."""
        return frozenset(s for s, t in self._states.items() if t.pinned or t.cas)

    def has_material(self, state: str) -> bool:
        """Whether any certificate could speak for `state`."""
        trust = self._states.get(state)
        return trust is not None and bool(trust.pinned or trust.cas)

    def states_for(self, cert: x509.Certificate, now: datetime) -> frozenset[str]:
        """States this certificate may speak for, ignoring its validity period and revocation.

        `now` is accepted so that callers never need to change when a time-dependent rule is added.
        """
        del now
        return frozenset(grant.state for grant in self._grants(cert))

    def authorize(self, cert: x509.Certificate, state: str, now: datetime) -> None:
        """Return if `cert` may sign for `state` at `now`; otherwise raise `Refused` saying why."""
        try:
            grants = {grant.state: grant for grant in self._grants(cert)}
            untrusted = None if grants else self._why_untrusted(cert, state)
            problem = self._profile(cert) if state in grants else None
        except _UNREADABLE as err:
            raise Refused(ErrorCode.CERTIFICATE_UNTRUSTED, f"{_short(cert)} has unreadable extensions") from err
        if untrusted is not None:
            raise Refused(ErrorCode.CERTIFICATE_UNTRUSTED, untrusted)
        grant = grants.get(state)
        if grant is None:
            raise Refused(
                ErrorCode.SENDER_MISMATCH,
                f"certificate speaks for {', '.join(sorted(grants))}, message claims {state}",
            )
        if problem is not None:
            raise Refused(ErrorCode.CERTIFICATE_UNTRUSTED, f"{_short(cert)} {problem}")
        self._check_revocation(cert, state, now)
        _check_validity(cert, now, "the signing certificate")
        if grant.ca is not None:
            _check_validity(grant.ca, now, f"the CA that issued the signing certificate for {state}")

    def _profile(self, cert: x509.Certificate) -> str | None:
        """`profile_problem`, remembered per certificate (the hot path pays once per certificate).

        One lookup, never a test then a read: another crypto thread may clear the cache between the two.
        """
        with contextlib.suppress(KeyError):
            return self._profile_cache[cert]
        problem = profile_problem(cert)
        if len(self._profile_cache) >= _GRANT_CACHE_SIZE:
            self._profile_cache.clear()
        self._profile_cache[cert] = problem
        return problem

    def _grants(self, cert: x509.Certificate) -> tuple[_Grant, ...]:
        """Every state whose material vouches for `cert`, remembered per certificate."""
        grants = self._grant_cache.get(cert)
        if grants is None:
            grants = self._find_grants(cert)
            if len(self._grant_cache) >= _GRANT_CACHE_SIZE:
                self._grant_cache.clear()
            self._grant_cache[cert] = grants
        return grants

    def _find_grants(self, cert: x509.Certificate) -> tuple[_Grant, ...]:
        """Every state whose material vouches for `cert`: pinned there, or issued by its CA for it."""
        grants = [_Grant(state, None) for state in self._pins.get(fingerprint(cert), ())]
        candidates = self._cas_by_subject.get(cert.issuer, ())
        country = _country(cert) if candidates else None
        if country is None or _is_ca(cert) or not _may_sign(cert):
            return tuple(grants)
        pinned = {g.state for g in grants}
        for state, ca in candidates:
            if state == country and state not in pinned and _issued_by(cert, ca):
                grants.append(_Grant(state, ca))
                break
        return tuple(grants)

    def _why_untrusted(self, cert: x509.Certificate, state: str) -> str:
        """The most specific reason `cert` speaks for no state at all."""
        if not self.has_material(state):
            return f"no trust material is configured for {state}"
        if _is_ca(cert):
            return f"{_short(cert)} is a CA certificate; messages must be signed with an end-entity certificate"
        issuers = [ca for s, ca in self._cas_by_subject.get(cert.issuer, ()) if s == state]
        if not any(_issued_by(cert, ca) for ca in issuers):
            return f"{_short(cert)} is neither pinned for {state} nor issued by a CA configured for {state}"
        if not _may_sign(cert):
            return f"{_short(cert)} does not allow digitalSignature in its key usage"
        country = _country(cert)
        if country is None:
            return f"{_short(cert)} has no subject country; a CA-issued certificate must name {state}"
        return f"{_short(cert)} names country {country} in its subject, not {state}"

    def _check_revocation(self, cert: x509.Certificate, state: str, now: datetime) -> None:
        """CERTIFICATE_UNTRUSTED if a CRL of `state`, signed by its CA, lists the certificate, or if for a scope its
        CRLs cover none is current (the revocation status is then unknown: fail closed). A listed certificate is revoked
        whatever date the entry bears and whether or not its CRL is current; a stale CRL beside a current one of
        the same CA and scope (the renewed list dropped in before the old one is removed) does not refuse."""
        crls = self._crls.get((state, cert.issuer), ())
        for crl in crls:
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                raise Refused(
                    ErrorCode.CERTIFICATE_UNTRUSTED,
                    f"{_short(cert)} was revoked on {entry.revocation_date_utc.date().isoformat()} "
                    f"by a CRL configured for {state}",
                )
        current = {crl_scope(crl) for crl in crls if crl_staleness(crl, now) is None}
        stale = [crl for crl in crls if crl_scope(crl) not in current]
        if stale:
            latest = max(stale, key=lambda crl: crl.last_update_utc)
            raise Refused(
                ErrorCode.CERTIFICATE_UNTRUSTED,
                f"the CRL configured for {state} for the CA that issued {_short(cert)} {crl_staleness(latest, now)}: "
                "revocation status unknown until it is renewed",
            )


def trust_files(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under the trust directory with its modification time and size: what a reload compares."""
    found = []
    for path in sorted(directory.rglob("*")):
        with contextlib.suppress(OSError):
            if path.is_file():
                stat = path.stat()
                found.append((str(path.relative_to(directory)), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


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


def _is_state_dir(path: Path) -> bool:
    """A `<CC>` or `GATEWAY` directory; hidden entries and loose files skipped, a misnamed one refused."""
    if path.name.startswith(".") or not path.is_dir():
        return False
    if path.name == GATEWAY_DIR or _STATE_DIR.fullmatch(path.name):
        return True
    raise ConfigurationError(
        f"{path}: a trust directory must be named by an ISO 3166-1 alpha-2 code (upper case) or {GATEWAY_DIR}"
    )


def _read_certificates(path: Path) -> list[x509.Certificate]:
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
            _is_ca(cert)  # parse the extensions now, not on the first message
    except _UNREADABLE as err:
        raise ConfigurationError(f"{path}: not a readable PEM certificate file ({err})") from err
    return certs


def _read_crl(path: Path) -> x509.CertificateRevocationList:
    """A complete CRL in PEM or DER (`crl_problem`); ConfigurationError naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"{path}: cannot read the CRL file ({err.strerror})") from err
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----BEGIN") else x509.load_der_x509_crl(data)
        unfit = crl_problem(crl)
    except _UNREADABLE as err:
        raise ConfigurationError(f"{path}: not a readable CRL (PEM or DER) ({err})") from err
    if unfit:
        raise ConfigurationError(f"{path}: a CRL that {unfit}")
    return crl


def _load_state(directory: Path) -> StateTrust:
    """One state's certificates and CRLs; a CRL that no CA of the state signed is a configuration error."""
    pinned: list[x509.Certificate] = []
    cas: list[x509.Certificate] = []
    for path in sorted(directory.glob("*.pem")):
        for cert in _read_certificates(path):
            unfit = ca_problem(cert) if _is_ca(cert) else None
            if unfit:
                raise ConfigurationError(f"{path}: a CA certificate that {unfit}")
            (cas if _is_ca(cert) else pinned).append(cert)
    crls: list[x509.CertificateRevocationList] = []
    for path in sorted(directory.glob("*.crl")):
        crl = _read_crl(path)
        if not _crl_signed_by(crl, cas):
            raise ConfigurationError(f"{path}: this CRL is not signed by any CA configured for {directory.name}")
        crls.append(crl)
    return StateTrust(state=directory.name, pinned=tuple(pinned), cas=tuple(cas), crls=tuple(crls))
