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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from gateway.core.errors import ErrorCode, Refused
from gateway.xml.certificates import (
    UNREADABLE,
    Finding,
    ca_problem,
    check_validity,
    country_of,
    crl_scope,
    crl_signed_by,
    crl_staleness,
    fingerprint,
    is_ca,
    issued_by,
    may_sign,
    profile_problem,
    short,
    signing_certificate_findings,
    validity,
)
from gateway.xml.trust_files import StateTrust, is_state_dir, load_state, trust_files

__all__ = [  # what this module has always offered
    "Finding",
    "Item",
    "StateTrust",
    "TrustStore",
    "profile_problem",
    "signing_certificate_findings",
    "trust_files",
    "validity",
]


_GRANT_CACHE_SIZE = 1024


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
                if crl_signed_by(crl, trust.cas):
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
                what = f"{state}: {'CA' if is_ca(cert) else 'pinned'} {short(cert)}"
                problem = ca_problem(cert) if is_ca(cert) else profile_problem(cert)
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
                out.extend(Item(state, kind, short(c), country_of(c) or "-", c.not_valid_after_utc) for c in certs)
            out.extend(Item(state, "CRL", c.issuer.rfc4514_string()[:80], "", c.next_update_utc) for c in trust.crls)
        return out

    @classmethod
    def load(cls, directory: Path) -> TrustStore:
        """Read `<directory>/<CC>/*.pem` and `*.crl`; a missing directory gives an empty store."""
        if not directory.is_dir():
            return cls(())
        return cls(load_state(path) for path in sorted(directory.iterdir()) if is_state_dir(path))

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
        except UNREADABLE as err:
            raise Refused(ErrorCode.CERTIFICATE_UNTRUSTED, f"{short(cert)} has unreadable extensions") from err
        if untrusted is not None:
            raise Refused(ErrorCode.CERTIFICATE_UNTRUSTED, untrusted)
        grant = grants.get(state)
        if grant is None:
            raise Refused(
                ErrorCode.SENDER_MISMATCH,
                f"certificate speaks for {', '.join(sorted(grants))}, message claims {state}",
            )
        if problem is not None:
            raise Refused(ErrorCode.CERTIFICATE_UNTRUSTED, f"{short(cert)} {problem}")
        self._check_revocation(cert, state, now)
        check_validity(cert, now, "the signing certificate")
        if grant.ca is not None:
            check_validity(grant.ca, now, f"the CA that issued the signing certificate for {state}")

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
        country = country_of(cert) if candidates else None
        if country is None or is_ca(cert) or not may_sign(cert):
            return tuple(grants)
        pinned = {g.state for g in grants}
        for state, ca in candidates:
            if state == country and state not in pinned and issued_by(cert, ca):
                grants.append(_Grant(state, ca))
                break
        return tuple(grants)

    def _why_untrusted(self, cert: x509.Certificate, state: str) -> str:
        """The most specific reason `cert` speaks for no state at all."""
        if not self.has_material(state):
            return f"no trust material is configured for {state}"
        if is_ca(cert):
            return f"{short(cert)} is a CA certificate; messages must be signed with an end-entity certificate"
        issuers = [ca for s, ca in self._cas_by_subject.get(cert.issuer, ()) if s == state]
        if not any(issued_by(cert, ca) for ca in issuers):
            return f"{short(cert)} is neither pinned for {state} nor issued by a CA configured for {state}"
        if not may_sign(cert):
            return f"{short(cert)} does not allow digitalSignature in its key usage"
        country = country_of(cert)
        if country is None:
            return f"{short(cert)} has no subject country; a CA-issued certificate must name {state}"
        return f"{short(cert)} names country {country} in its subject, not {state}"

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
                    f"{short(cert)} was revoked on {entry.revocation_date_utc.date().isoformat()} "
                    f"by a CRL configured for {state}",
                )
        current = {crl_scope(crl) for crl in crls if crl_staleness(crl, now) is None}
        stale = [crl for crl in crls if crl_scope(crl) not in current]
        if stale:
            latest = max(stale, key=lambda crl: crl.last_update_utc)
            raise Refused(
                ErrorCode.CERTIFICATE_UNTRUSTED,
                f"the CRL configured for {state} for the CA that issued {short(cert)} {crl_staleness(latest, now)}: "
                "revocation status unknown until it is renewed",
            )
