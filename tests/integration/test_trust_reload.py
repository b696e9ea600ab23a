"""Trust material reread without a restart: a state's material removed is refused on the next message, and a
directory that no longer loads keeps the material in force (logged and shown in health)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.app import Gateway
from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer
from gateway.xml.trust import TrustStore

from .conftest import Clock, settings_for

TO_MZ = [("ZA", "MZ", "2019-06-14")]


def _healthy(gateway: Gateway) -> bool:
    """Whether the gateway reports itself healthy now."""
    return gateway.health.ok


async def test_trust_material_is_reread_without_a_restart(pki: DevPki, routing_table: Path, tmp_path: Path) -> None:
    """ZA is accepted; its material removed and `reload_trust` run (what the reload loop does when a file changed),
    ZA's next request is CERTIFICATE_UNTRUSTED; a broken file then keeps the material in force, so MZ still
    passes, and health says the reload failed; nothing changed, nothing is reread."""
    trust_dir = tmp_path / "certs"
    shutil.copytree(pki.trust_dir, trust_dir)
    settings = dataclasses.replace(
        settings_for(pki, routing_table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None), trust_dir=trust_dir
    )
    gateway = Gateway(settings)
    await gateway.store.start()
    za = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    mz = Signer.from_files(pki.key_path("MZ"), pki.cert_path("MZ"))

    async def send(signer: Signer, state: str) -> str:
        body = signer.sign(samples.trace_request(state, exports=[(state, "KE", "2019-06-14")]))
        outcome = await gateway.pipeline.handle(Inbound(body, routing_key=state, user_id=state))
        return outcome.code or outcome.outcome

    try:
        assert gateway.reload_trust() is False  # nothing changed
        assert await send(za, "ZA") == "accepted"
        shutil.rmtree(trust_dir / "ZA")
        assert gateway.reload_trust() is True
        assert await send(za, "ZA") == "CERTIFICATE_UNTRUSTED"
        (trust_dir / "MZ" / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
        assert gateway.reload_trust() is False
        assert any("not reloaded" in line and "broken.pem" in line for line in gateway.health.snapshot()["trust"])
        assert await send(mz, "MZ") == "accepted"
    finally:
        await gateway.store.close()


def _gateway_on_a_copy(
    pki: DevPki, routing_table: Path, tmp_path: Path, clock: Clock, *, reload_seconds: float = 60.0
) -> Gateway:
    """A gateway (not started: no broker) on a copy of the test PKI's trust directory, on its own SQLite file."""
    trust_dir = tmp_path / "certs"
    shutil.copytree(pki.trust_dir, trust_dir)
    settings = settings_for(pki, routing_table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None)
    changed = dataclasses.replace(settings, trust_dir=trust_dir, trust_reload_seconds=reload_seconds)
    return Gateway(changed, clock=clock)


async def _send(gateway: Gateway, pki: DevPki, state: str) -> tuple[str, str]:
    """A signed TraceRequest from `state`: (outcome or code, detail)."""
    signer = Signer.from_files(pki.key_path(state), pki.cert_path(state))
    body = signer.sign(samples.trace_request(state, exports=[(state, "KE", "2019-06-14")]))
    outcome = await gateway.pipeline.handle(Inbound(body, routing_key=state, user_id=state))
    return outcome.code or outcome.outcome, outcome.detail or ""


async def test_a_crl_added_revokes_on_the_next_message(pki: DevPki, routing_table: Path, tmp_path: Path) -> None:
    """A CRL listing ZA's certificate, put in ZA's directory while the switch runs, refuses ZA's next message as
    revoked (one turn of the reload loop later); MZ, served by the same CA but without that CRL, still passes."""
    gateway = _gateway_on_a_copy(pki, routing_table, tmp_path, Clock())
    await gateway.store.start()
    try:
        assert (await _send(gateway, pki, "ZA"))[0] == "accepted"
        now = gateway.clock()
        za = x509.load_pem_x509_certificate(pki.cert_path("ZA").read_bytes())
        revoked = x509.RevokedCertificateBuilder().serial_number(za.serial_number).revocation_date(now).build()
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(pki.load_ca_cert().subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=7))
            .add_revoked_certificate(revoked)
            .sign(pki.load_ca_key(), hashes.SHA256())
        )
        (gateway.settings.trust_dir / "ZA" / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        gateway.check_trust()
        code, detail = await _send(gateway, pki, "ZA")
        assert code == "CERTIFICATE_UNTRUSTED" and "revoked" in detail, detail
        assert (await _send(gateway, pki, "MZ"))[0] == "accepted"
    finally:
        await gateway.store.close()


async def test_the_gateways_own_certificate_is_judged_again_as_time_passes(
    pki: DevPki, routing_table: Path, tmp_path: Path
) -> None:
    """With nothing changed on disk, each turn of the loop judges the material at the clock's now: the gateway's
    certificate is first a warning in health, then, expired, makes the gateway unhealthy."""
    clock = Clock()
    gateway = _gateway_on_a_copy(pki, routing_table, tmp_path, clock)
    gateway.health.set(broker="up", database="up", consuming=True)
    gateway.check_trust()
    assert gateway.health.ok and not any("signing certificate" in line for line in gateway.health.trust)
    own = gateway.parts.signer.certificate.not_valid_after_utc
    clock.now = own - timedelta(days=10)
    gateway.check_trust()
    assert _healthy(gateway)
    assert any(line.startswith("warning: GATEWAY: the gateway's signing") for line in gateway.health.trust)
    clock.now = own + timedelta(days=1)
    gateway.check_trust()
    snapshot = gateway.health.snapshot()
    assert snapshot["status"] == "degraded"
    assert not _healthy(gateway)
    assert snapshot["signing_certificate"] == "expired"
    assert any(line.startswith("problem: GATEWAY: the gateway's signing") for line in snapshot["trust"])


async def test_the_reload_loop_swaps_the_material_and_survives_an_unreadable_directory(
    pki: DevPki, routing_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop itself, at a short period: a file added is picked up with no call from outside; a load raising
    OSError (a directory the gateway may no longer read) keeps the material in force and the loop running."""
    gateway = _gateway_on_a_copy(pki, routing_table, tmp_path, Clock(), reload_seconds=0.02)
    first = gateway.pipeline.trust
    loop = asyncio.create_task(gateway._trust_reloads())
    try:
        shutil.copy(pki.ca_cert_path, gateway.settings.trust_dir / "ZA" / "again.pem")
        await _until(lambda: gateway.pipeline.trust is not first)
        second = gateway.pipeline.trust

        def unreadable(directory: Path) -> TrustStore:
            raise PermissionError(13, "Permission denied", str(directory))

        monkeypatch.setattr(TrustStore, "load", staticmethod(unreadable))
        (gateway.settings.trust_dir / "ZA" / "again.pem").unlink()
        await _until(lambda: any("not reloaded" in line for line in gateway.health.trust))
        assert gateway.pipeline.trust is second and not loop.done()
    finally:
        gateway._stop.set()
        await asyncio.wait_for(loop, timeout=5)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most five seconds) for `condition`."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within five seconds")
