"""The trust store and the development PKI that feeds it: who may speak for which state, and why not."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.dev.pki import PrivateKey, create_dev_pki, issue_certificate, load_private_key
from gateway.xml import trust as trust_module
from gateway.xml.trust import StateTrust, TrustStore, profile_problem, signing_certificate_findings, validity
from tests.certs import certificate, name
from tests.unit.test_trust_profile import leaf, store_with

PEM = serialization.Encoding.PEM
Issued = tuple[PrivateKey, x509.Certificate]
Issue = Callable[..., Issued]


def _write(trust_dir: Path, state: str, name: str, data: bytes) -> Path:
    """Put one file of trust material in place."""
    path = trust_dir / state / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _crl(ca: Issued, now: datetime, *serials: int) -> x509.CertificateRevocationList:
    """A CRL signed by `ca` listing `serials`."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[1].subject)
        .last_update(now - timedelta(days=1))
        .next_update(now + timedelta(days=7))
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - timedelta(hours=2)).build()
        )
    return builder.sign(ca[0], hashes.SHA256())


def _refusal(store: TrustStore, cert: x509.Certificate, state: str, now: datetime) -> Refused:
    """The refusal `authorize` raises."""
    with pytest.raises(Refused) as caught:
        store.authorize(cert, state, now)
    return caught.value


@pytest.fixture
def store_dir(tmp_path: Path, test_ca: Issued) -> Path:
    """A trust directory where the tests' CA serves ZA and MZ."""
    for state in ("ZA", "MZ"):
        _write(tmp_path, state, "ca.pem", test_ca[1].public_bytes(PEM))
    return tmp_path


def test_ca_issued_certificate_speaks_for_its_country(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """A certificate issued by ZA's CA with C=ZA may sign ZA's messages."""
    _, cert = issue("ZA", kind="rsa")
    store = TrustStore.load(store_dir)
    store.authorize(cert, "ZA", fixed_now)
    assert store.states_for(cert, fixed_now) == {"ZA"}


def test_pinned_leaf_speaks_for_its_state_only(
    store_dir: Path, self_signed: Callable[..., Issued], fixed_now: datetime
) -> None:
    """A leaf pinned for KE signs for KE, whatever its subject says, and is a mismatch for ZA."""
    _, leaf = self_signed(None, is_ca=False)
    _write(store_dir, "KE", "npc.pem", leaf.public_bytes(PEM))
    store = TrustStore.load(store_dir)
    store.authorize(leaf, "KE", fixed_now)
    refused = _refusal(store, leaf, "ZA", fixed_now)
    assert refused.code == ErrorCode.SENDER_MISMATCH
    assert refused.detail == "certificate speaks for KE, message claims ZA"


def test_other_states_certificate_is_a_sender_mismatch(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """One CA serving MZ and ZA cannot let MZ's certificate speak for ZA."""
    _, mz = issue("MZ")
    refused = _refusal(TrustStore.load(store_dir), mz, "ZA", fixed_now)
    assert refused.code == ErrorCode.SENDER_MISMATCH
    assert refused.detail == "certificate speaks for MZ, message claims ZA"


def test_certificate_of_an_unknown_ca_is_untrusted(
    store_dir: Path, issue: Issue, self_signed: Callable[..., Issued], fixed_now: datetime
) -> None:
    """A rogue CA naming itself like ZA's cannot issue a ZA certificate."""
    rogue_ca = self_signed("ZA", is_ca=True)
    _, forged = issue("ZA", issuer=rogue_ca)
    refused = _refusal(TrustStore.load(store_dir), forged, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED
    assert "neither pinned for ZA nor issued by a CA configured for ZA" in refused.detail


def test_forged_issuer_name_does_not_fool_the_signature_check(
    store_dir: Path, test_ca: Issued, fixed_now: datetime
) -> None:
    """A certificate that copies the real CA's name as issuer but is signed by another key is untrusted."""
    rogue_key, _ = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country=None,
        common_name="tests CA",
        key_kind="ec",
        not_before=fixed_now - timedelta(days=1),
        not_after=fixed_now + timedelta(days=1),
        is_ca=True,
    )
    _, forged = issue_certificate(
        issuer_key=rogue_key,
        issuer_cert=test_ca[1],  # the real CA's name, the rogue's signature
        subject_country="ZA",
        common_name="ZA",
        key_kind="ec",
        not_before=fixed_now - timedelta(days=1),
        not_after=fixed_now + timedelta(days=1),
    )
    assert _refusal(TrustStore.load(store_dir), forged, "ZA", fixed_now).code == ErrorCode.CERTIFICATE_UNTRUSTED


def test_expired_certificate_is_refused_with_its_end_date(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """A trusted certificate past its validity is CERTIFICATE_EXPIRED, saying when it expired."""
    _, cert = issue("ZA", not_before=fixed_now - timedelta(days=60), not_after=fixed_now - timedelta(days=1))
    refused = _refusal(TrustStore.load(store_dir), cert, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_EXPIRED
    assert refused.detail.startswith("the signing certificate expired on ")


def test_not_yet_valid_certificate_is_refused(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """A trusted certificate before its validity is CERTIFICATE_EXPIRED, saying when it starts."""
    _, cert = issue("ZA", not_before=fixed_now + timedelta(days=1), not_after=fixed_now + timedelta(days=60))
    refused = _refusal(TrustStore.load(store_dir), cert, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_EXPIRED
    assert "not valid before" in refused.detail


def test_expired_issuing_ca_makes_its_certificates_expired(tmp_path: Path, issue: Issue, fixed_now: datetime) -> None:
    """A certificate whose CA has expired is CERTIFICATE_EXPIRED even if the certificate itself is current."""
    old_ca = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country=None,
        common_name="old CA",
        key_kind="ec",
        not_before=fixed_now - timedelta(days=400),
        not_after=fixed_now - timedelta(days=1),
        is_ca=True,
    )
    _write(tmp_path, "ZA", "ca.pem", old_ca[1].public_bytes(PEM))
    _, cert = issue("ZA", issuer=old_ca)
    refused = _refusal(TrustStore.load(tmp_path), cert, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_EXPIRED
    assert "the CA that issued the signing certificate for ZA expired on" in refused.detail


def test_ca_certificate_cannot_sign_messages(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """A CA certificate (even a sub-CA with C=ZA from ZA's CA) is not accepted as a message signer."""
    _, sub_ca = issue("ZA", is_ca=True)
    refused = _refusal(TrustStore.load(store_dir), sub_ca, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED
    assert "is a CA certificate" in refused.detail


def test_configured_ca_itself_cannot_sign_messages(store_dir: Path, test_ca: Issued, fixed_now: datetime) -> None:
    """The state's own CA certificate, used as a signer, is untrusted."""
    refused = _refusal(TrustStore.load(store_dir), test_ca[1], "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED


def test_key_usage_without_digital_signature_is_untrusted(
    store_dir: Path, issue: Issue, test_ca: Issued, fixed_now: datetime
) -> None:
    """A ZA certificate whose KeyUsage forbids digitalSignature cannot sign messages."""
    key, _ = issue("ZA")
    usage = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    cert = certificate(
        key,
        name(COUNTRY_NAME="ZA"),
        now=fixed_now,
        issuer=(test_ca[0], test_ca[1].subject),
        days=1,
        extensions=[(usage, True)],
    )
    refused = _refusal(TrustStore.load(store_dir), cert, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED
    assert "digitalSignature" in refused.detail


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_certificate_revoked_by_the_states_crl_is_untrusted(
    store_dir: Path,
    issue: Issue,
    test_ca: Issued,
    fixed_now: datetime,
    encoding: serialization.Encoding,
) -> None:
    """A certificate listed in a CRL of ZA signed by ZA's CA is refused as revoked (PEM or DER CRL)."""
    _, revoked = issue("ZA")
    _, current = issue("ZA")
    _write(store_dir, "ZA", "ca.crl", _crl(test_ca, fixed_now, revoked.serial_number).public_bytes(encoding))
    store = TrustStore.load(store_dir)
    refused = _refusal(store, revoked, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED
    assert "revoked" in refused.detail
    store.authorize(current, "ZA", fixed_now)


def test_crl_not_signed_by_the_states_ca_is_a_configuration_error(
    store_dir: Path, self_signed: Callable[..., Issued], fixed_now: datetime
) -> None:
    """A CRL that no CA of the state signed is refused at load, naming the file, rather than ignored."""
    rogue = self_signed(None, is_ca=True)
    path = _write(store_dir, "ZA", "rogue.crl", _crl(rogue, fixed_now, 1).public_bytes(PEM))
    with pytest.raises(ConfigurationError, match=re.escape(str(path))):
        TrustStore.load(store_dir)


@pytest.mark.parametrize("name", ["broken.pem", "broken.crl"])
def test_corrupt_file_is_a_configuration_error_naming_it(store_dir: Path, name: str) -> None:
    """An unreadable certificate or CRL stops loading with an error that names the file."""
    path = _write(store_dir, "ZA", name, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match=re.escape(str(path))):
        TrustStore.load(store_dir)


def test_private_key_in_the_trust_directory_is_refused(store_dir: Path, issue: Issue) -> None:
    """A PEM file holding a private key is refused: trust material is public."""
    key, cert = issue("ZA")
    data = cert.public_bytes(PEM) + key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = _write(store_dir, "ZA", "npc.pem", data)
    with pytest.raises(ConfigurationError, match="private key") as caught:
        TrustStore.load(store_dir)
    assert str(path) in str(caught.value)


def test_misnamed_state_directory_is_refused(store_dir: Path, test_ca: Issued) -> None:
    """A directory not named by an upper-case alpha-2 code (or GATEWAY) is an error, not silently skipped."""
    _write(store_dir, "za", "ca.pem", test_ca[1].public_bytes(PEM))
    with pytest.raises(ConfigurationError, match="alpha-2"):
        TrustStore.load(store_dir)


def test_missing_directory_gives_an_empty_store(tmp_path: Path) -> None:
    """No trust directory means no state has material."""
    store = TrustStore.load(tmp_path / "absent")
    assert store.states() == frozenset()
    assert not store.has_material("ZA")


def test_states_lists_every_state_with_material(store_dir: Path, issue: Issue) -> None:
    """Every state directory with certificates counts, GATEWAY included; a file may hold several."""
    _, one = issue(None)
    _, two = issue(None)
    _write(store_dir, "GATEWAY", "gateway.pem", one.public_bytes(PEM) + two.public_bytes(PEM))
    store = TrustStore.load(store_dir)
    assert store.states() == {"ZA", "MZ", "GATEWAY"}
    assert store.has_material("GATEWAY")
    assert not store.has_material("KE")


def test_no_material_for_the_claimed_state_says_so(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """A certificate claiming a state without trust material is untrusted, and the detail names the state."""
    _, cert = issue("KE")
    refused = _refusal(TrustStore.load(store_dir), cert, "KE", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED
    assert refused.detail == "no trust material is configured for KE"


def test_store_built_in_memory_behaves_like_a_loaded_one(test_ca: Issued, issue: Issue, fixed_now: datetime) -> None:
    """A store made from StateTrust values authorizes like one read from disk."""
    _, cert = issue("BR")
    store = TrustStore([StateTrust(state="BR", pinned=(), cas=(test_ca[1],), crls=())])
    store.authorize(cert, "BR", fixed_now)
    assert store.states_for(cert, fixed_now) == {"BR"}


def test_dev_pki_trust_material_authorizes_each_state_and_the_gateway(tmp_path: Path, fixed_now: datetime) -> None:
    """The development PKI's trust lets each state's key speak for it, and the gateway's for GATEWAY."""
    pki = create_dev_pki(tmp_path / "pki", tmp_path / "certs", ["ZA", "MZ", "BR"], now=fixed_now)
    store = TrustStore.load(pki.trust_dir)
    assert store.states() == {"BR", "MZ", "ZA", "GATEWAY"}
    for state in pki.states:
        store.authorize(x509.load_pem_x509_certificate(pki.cert_path(state).read_bytes()), state, fixed_now)
    gateway = x509.load_pem_x509_certificate(pki.gateway_cert_path.read_bytes())
    store.authorize(gateway, "GATEWAY", fixed_now)
    assert store.states_for(gateway, fixed_now) == {"GATEWAY"}


def test_dev_pki_keys_are_private_and_alternate_key_families(tmp_path: Path, fixed_now: datetime) -> None:
    """Keys are PKCS8 PEM readable by the owner only; sorted states alternate RSA and EC."""
    pki = create_dev_pki(tmp_path / "pki", tmp_path / "certs", ["ZA", "MZ", "BR"], now=fixed_now)
    for path in (pki.ca_key_path, pki.gateway_key_path, *(pki.key_path(s) for s in pki.states)):
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    kinds = [type(load_private_key(pki.key_path(s))).__name__ for s in pki.states]
    assert pki.states == ("BR", "MZ", "ZA")
    assert ["RSA" in k for k in kinds] == [True, False, True]


def test_dev_pki_keeps_existing_material_and_adds_new_states(tmp_path: Path, fixed_now: datetime) -> None:
    """A rerun keeps every key; a state added later gets a key from the same CA; force renews all."""
    first = create_dev_pki(tmp_path / "pki", tmp_path / "certs", ["ZA"], now=fixed_now)
    before = {p: p.read_bytes() for p in (first.ca_key_path, first.gateway_key_path, first.key_path("ZA"))}
    second = create_dev_pki(tmp_path / "pki", tmp_path / "certs", ["ZA", "KE"], now=fixed_now)
    assert all(path.read_bytes() == data for path, data in before.items())
    ke = x509.load_pem_x509_certificate(second.cert_path("KE").read_bytes())
    TrustStore.load(second.trust_dir).authorize(ke, "KE", fixed_now)
    create_dev_pki(tmp_path / "pki", tmp_path / "certs", ["ZA", "KE"], now=fixed_now, force=True)
    assert all(path.read_bytes() != data for path, data in before.items())


def _ca_with(critical: x509.ExtensionType, fixed_now: datetime) -> x509.Certificate:
    """A self-signed EC CA carrying `critical` as a critical extension."""
    key = ec.generate_private_key(ec.SECP256R1())
    constraints = x509.BasicConstraints(ca=True, path_length=None)
    return certificate(
        key, name(COMMON_NAME="constrained CA"), now=fixed_now, extensions=[(constraints, True), (critical, True)]
    )


@pytest.mark.parametrize(
    ("extension", "oid"),
    [
        (x509.NameConstraints(permitted_subtrees=[x509.DNSName("za.example")], excluded_subtrees=None), "2.5.29.30"),
        (x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None), "2.5.29.36"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), "2.5.29.37"),
    ],
    ids=["name-constraints", "policy-constraints", "extended-key-usage"],
)
def test_ca_with_a_critical_constraint_the_gateway_does_not_apply_is_refused_at_load(
    tmp_path: Path, fixed_now: datetime, extension: x509.ExtensionType, oid: str
) -> None:
    """A CA whose critical extension constrains what it issues, which the gateway would not apply to the
    certificates it issued, stops loading with an error naming the file (RFC 5280 4.2: reject, never ignore)."""
    path = _write(tmp_path, "ZA", "ca.pem", _ca_with(extension, fixed_now).public_bytes(PEM))
    with pytest.raises(ConfigurationError, match=re.escape(f"{path}: a CA certificate that has a critical")) as err:
        TrustStore.load(tmp_path)
    assert f"({oid})" in str(err.value)


def test_ca_with_only_understood_critical_extensions_loads(store_dir: Path, issue: Issue, fixed_now: datetime) -> None:
    """BasicConstraints and KeyUsage critical (what the development CA carries) are understood."""
    _, cert = issue("ZA")
    TrustStore.load(store_dir).authorize(cert, "ZA", fixed_now)


def test_gateway_signing_certificate_findings(issue: Issue, fixed_now: datetime) -> None:
    """The gateway's own certificate: nothing when far from expiry, a warning within the window, a problem (and
    `expired`, which health treats as unhealthy) after it; `not yet valid` before it."""
    _, cert = issue(None, not_before=fixed_now - timedelta(days=1), not_after=fixed_now + timedelta(days=30))
    assert signing_certificate_findings(cert, fixed_now, warn_days=10) == []
    (soon,) = signing_certificate_findings(cert, fixed_now, warn_days=60)
    assert soon.level == "warning" and soon.state == "GATEWAY" and "signing certificate sha256:" in soon.text
    (late,) = signing_certificate_findings(cert, fixed_now + timedelta(days=31), warn_days=60)
    assert late.level == "problem" and "expired on" in late.text
    assert validity(cert, fixed_now) == "valid"
    assert validity(cert, fixed_now + timedelta(days=31)) == "expired"
    assert validity(cert, fixed_now - timedelta(days=2)) == "not yet valid"


def test_inventory_lists_cas_pinned_certificates_and_crls(
    store_dir: Path, issue: Issue, test_ca: Issued, fixed_now: datetime
) -> None:
    """Per state, in order: CAs, pinned certificates (subject C, notAfter), CRLs (issuer, nextUpdate)."""
    _, pinned = issue("ZA")
    _write(store_dir, "ZA", "npc.pem", pinned.public_bytes(PEM))
    _write(store_dir, "ZA", "ca.crl", _crl(test_ca, fixed_now).public_bytes(PEM))
    items = [i for i in TrustStore.load(store_dir).inventory() if i.state == "ZA"]
    assert [(i.kind, i.country) for i in items] == [("CA", "-"), ("pinned", "ZA"), ("CRL", "")]
    assert items[1].name == "certificate sha256:" + pinned.fingerprint(hashes.SHA256()).hex()[:16]
    assert items[1].until == pinned.not_valid_after_utc
    assert items[2].name == "CN=tests CA" and items[2].until == fixed_now + timedelta(days=7)


def test_dsa_keys_are_refused_whatever_their_size(tmp_path: Path, fixed_now: datetime) -> None:
    """A pinned certificate with a 2048-bit DSA key is outside the profile."""
    key = dsa.generate_private_key(2048)
    cert = certificate(key, name(COUNTRY_NAME="ZA"), now=fixed_now, serial=1)
    _write(tmp_path, "ZA", "npc.pem", cert.public_bytes(PEM))
    refused = _refusal(TrustStore.load(tmp_path), cert, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED and "DSA key" in refused.detail


@pytest.mark.parametrize(
    "usages",
    [[x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")], [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]],
    ids=["microsoft-document-signing", "any-usage"],
)
def test_document_signing_usages_and_a_critical_alternative_name_pass(
    tmp_path: Path, test_ca: Issued, fixed_now: datetime, usages: list[x509.ObjectIdentifier]
) -> None:
    """The other accepted usages, beside a critical SubjectAlternativeName (informational, so understood)."""
    san = x509.SubjectAlternativeName([x509.RFC822Name("npc@za.example")])
    cert = leaf(test_ca, fixed_now, eku=usages, extra=san)[1]
    store_with(tmp_path, test_ca).authorize(cert, "ZA", fixed_now)


def test_the_profile_is_judged_once_per_certificate(
    store_dir: Path, issue: Issue, fixed_now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict is remembered: a hundred messages with one certificate judge its profile once."""
    calls: list[x509.Certificate] = []

    def counted(cert: x509.Certificate) -> str | None:
        calls.append(cert)
        return profile_problem(cert)

    monkeypatch.setattr(trust_module, "profile_problem", counted)
    store = TrustStore.load(store_dir)
    _, cert = issue("ZA")
    for _ in range(100):
        store.authorize(cert, "ZA", fixed_now)
    assert calls == [cert]


def _duplicated_extension(issuer: x509.Name) -> bytes:
    """DER of a certificate from `issuer` carrying one extension twice (its signature broken by the edit)."""
    key = ec.generate_private_key(ec.SECP256R1())
    first, second = x509.ObjectIdentifier("1.2.3.4.5"), x509.ObjectIdentifier("1.2.3.4.6")
    cert = certificate(
        key,
        name(COUNTRY_NAME="ZA"),
        now=datetime(2030, 1, 1),
        issuer=(key, issuer),
        serial=1,
        not_before=datetime(2020, 1, 1),
        not_after=datetime(2040, 1, 1),
        extensions=[
            (x509.UnrecognizedExtension(first, b"\x05\x00"), False),
            (x509.UnrecognizedExtension(second, b"\x05\x00"), False),
        ],
    )
    return cert.public_bytes(serialization.Encoding.DER).replace(
        b"\x06\x04\x2a\x03\x04\x06", b"\x06\x04\x2a\x03\x04\x05"
    )


def test_a_certificate_with_a_duplicated_extension_is_refused_not_a_crash(
    store_dir: Path, test_ca: Issued, fixed_now: datetime
) -> None:
    """`DuplicateExtension` is no ValueError: from a sender it is CERTIFICATE_UNTRUSTED, in the directory a
    configuration error naming the file."""
    der = _duplicated_extension(test_ca[1].subject)
    refused = _refusal(TrustStore.load(store_dir), x509.load_der_x509_certificate(der), "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED and "unreadable extensions" in refused.detail
    path = _write(store_dir, "ZA", "npc.pem", x509.load_der_x509_certificate(der).public_bytes(PEM))
    with pytest.raises(ConfigurationError, match=re.escape(f"{path}: not a readable PEM certificate file")):
        TrustStore.load(store_dir)


def _crl_at(ca: Issued, last: datetime, next_: datetime, *serials: int) -> bytes:
    """A PEM CRL from `ca` for the period given, listing `serials`."""
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca[1].subject).last_update(last).next_update(next_)
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last).build()
        )
    return builder.sign(ca[0], hashes.SHA256()).public_bytes(PEM)


def test_a_stale_crl_beside_a_current_one_is_only_a_warning(
    store_dir: Path, issue: Issue, test_ca: Issued, fixed_now: datetime
) -> None:
    """The renewed CRL dropped in before the old one is removed: the CA's certificates pass, and the old file is
    a warning, not a problem. Alone, the stale CRL refuses them."""
    _, cert = issue("ZA")
    _write(store_dir, "ZA", "old.crl", _crl_at(test_ca, fixed_now - timedelta(days=14), fixed_now - timedelta(days=7)))
    assert "past its next update" in _refusal(TrustStore.load(store_dir), cert, "ZA", fixed_now).detail
    _write(store_dir, "ZA", "new.crl", _crl_at(test_ca, fixed_now - timedelta(days=1), fixed_now + timedelta(days=7)))
    store = TrustStore.load(store_dir)
    store.authorize(cert, "ZA", fixed_now)
    za = [(f.level, f.text) for f in store.findings(fixed_now, warn_days=1) if f.state == "ZA"]
    assert za == [("warning", za[0][1])] and "a current CRL of its CA supersedes it" in za[0][1]


def test_a_certificate_listed_by_a_stale_crl_is_refused_as_revoked(
    store_dir: Path, issue: Issue, test_ca: Issued, fixed_now: datetime
) -> None:
    """Revocation is for good: the stale list still says revoked, the more specific reason."""
    _, cert = issue("ZA")
    last, next_ = fixed_now - timedelta(days=14), fixed_now - timedelta(days=7)
    _write(store_dir, "ZA", "ca.crl", _crl_at(test_ca, last, next_, cert.serial_number))
    refused = _refusal(TrustStore.load(store_dir), cert, "ZA", fixed_now)
    assert refused.code == ErrorCode.CERTIFICATE_UNTRUSTED and "was revoked on" in refused.detail


def _partial_crl(ca: Issued, fixed_now: datetime, extension: x509.ExtensionType) -> bytes:
    """A current CRL from `ca` carrying `extension` (critical, as RFC 5280 makes both of those tested)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[1].subject)
        .last_update(fixed_now - timedelta(days=1))
        .next_update(fixed_now + timedelta(days=7))
        .add_extension(extension, critical=True)
    )
    return builder.sign(ca[0], hashes.SHA256()).public_bytes(PEM)


def _scope(
    *, users: bool = False, cas: bool = False, url: str = "http://crl.za.example/ca.crl"
) -> x509.IssuingDistributionPoint:
    """An issuing distribution point `url`, limited to user or CA certificates if asked."""
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        only_contains_user_certs=users,
        only_contains_ca_certs=cas,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )


@pytest.mark.parametrize(
    ("extension", "reason"),
    [
        (x509.DeltaCRLIndicator(1), "is a delta CRL"),
        (_scope(cas=True), "covers only part of its CA's certificates"),
    ],
    ids=["delta-crl", "ca-certificates-only"],
)
def test_a_crl_that_is_not_the_complete_list_is_a_configuration_error(
    store_dir: Path, test_ca: Issued, fixed_now: datetime, extension: x509.ExtensionType, reason: str
) -> None:
    """Read as complete, a delta CRL or one covering only CA certificates would pass a revoked signing
    certificate it does not list; loading stops, naming the file."""
    path = _write(store_dir, "ZA", "ca.crl", _partial_crl(test_ca, fixed_now, extension))
    with pytest.raises(ConfigurationError, match=re.escape(f"{path}: a CRL that {reason}")):
        TrustStore.load(store_dir)


def test_a_crl_of_user_certificates_is_complete_for_signing_certificates(
    store_dir: Path, issue: Issue, test_ca: Issued, fixed_now: datetime
) -> None:
    """onlyContainsUserCerts covers every end-entity certificate, which is all a message may be signed with."""
    _write(store_dir, "ZA", "ca.crl", _partial_crl(test_ca, fixed_now, _scope(users=True)))
    _, cert = issue("ZA")
    TrustStore.load(store_dir).authorize(cert, "ZA", fixed_now)


def _partition(ca: Issued, url: str, last: datetime, next_: datetime) -> bytes:
    """A CRL from `ca` for the distribution point `url` only."""
    scope = _scope(url=url)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[1].subject)
        .last_update(last)
        .next_update(next_)
        .add_extension(scope, critical=True)
    )
    return builder.sign(ca[0], hashes.SHA256()).public_bytes(PEM)


def test_a_current_crl_does_not_supersede_a_stale_one_of_another_scope(
    store_dir: Path, issue: Issue, test_ca: Issued, fixed_now: datetime
) -> None:
    """Two partitions of one CA (different issuing distribution points): the current one does not vouch for the
    other, so the CA's certificates are refused, and the stale one is a problem."""
    stale = (fixed_now - timedelta(days=14), fixed_now - timedelta(days=7))
    current = (fixed_now - timedelta(days=1), fixed_now + timedelta(days=7))
    _write(store_dir, "ZA", "a.crl", _partition(test_ca, "http://crl.za.example/a.crl", *stale))
    _write(store_dir, "ZA", "b.crl", _partition(test_ca, "http://crl.za.example/b.crl", *current))
    store = TrustStore.load(store_dir)
    _, cert = issue("ZA")
    assert "past its next update" in _refusal(store, cert, "ZA", fixed_now).detail
    assert [f.level for f in store.findings(fixed_now, warn_days=1) if f.state == "ZA"] == ["problem"]
