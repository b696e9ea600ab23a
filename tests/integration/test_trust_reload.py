"""Trust material reread without a restart: a state's material removed is refused on the next message, and a
directory that no longer loads keeps the material in force (logged and shown in health)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from gateway import samples
from gateway.app import Gateway
from gateway.pki import DevPki
from gateway.ports import Inbound
from gateway.signatures import Signer

from .conftest import settings_for

TO_MZ = [("ZA", "MZ", "2019-06-14")]


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
