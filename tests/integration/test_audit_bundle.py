"""Audit export: JSON Lines by trace, state or window; bundles an auditor verifies against a gateway certificate and
trust material obtained outside the bundle, never the copies inside it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import update

from gateway.audit.export import Selection, export_lines, verify_bundle, write_bundle
from gateway.audit.verify import Report, write_checkpoint
from gateway.core import chain as rules
from gateway.dev.pki import issue_certificate
from gateway.store import inbound
from gateway.xml.signatures import Signer
from gateway.xml.trust import TrustStore

from .conftest import Switch
from .test_audit import story


async def lines(switch: Switch, selection: Selection) -> list[dict[str, object]]:
    """Exported records, decoded."""
    return [json.loads(line) async for line in export_lines(switch.store, selection)]


def checked(switch: Switch, bundle: Path, cert: x509.Certificate | None = None) -> Report:
    """Verify a bundle against the switch's real trust material and (unless another is given) the real gateway
    certificate, both from outside the bundle."""
    real = x509.load_pem_x509_certificate(switch.settings.gateway_cert.read_bytes())
    trust = TrustStore.load(switch.settings.trust_dir)
    return verify_bundle(bundle, [cert or real], trust, checkpoint_interval=switch.settings.checkpoint_interval_seconds)


async def exported(switch: Switch, directory: Path, selection: Selection) -> dict[str, Any]:
    """Export a bundle of `selection`."""
    return await write_bundle(
        switch.store,
        selection,
        directory,
        trust_dir=switch.settings.trust_dir,
        gateway_cert=switch.settings.gateway_cert,
    )


async def test_export_by_trace_state_and_window(switch: Switch) -> None:
    """Each filter returns exactly the records it names, in chain order."""
    await story(switch)
    everything = await lines(switch, Selection())
    trace = next(r["trace_id"] for r in everything if r["type"] == "trace")
    of_trace = await lines(switch, Selection(trace_id=str(trace)))
    assert of_trace and all(r["trace_id"] == trace for r in of_trace)
    assert [r["seq"] for r in of_trace] == sorted(int(str(r["seq"])) for r in of_trace)
    of_ke = await lines(switch, Selection(state="ke"))
    assert {r["data"]["sender"] for r in of_ke if r["type"] == "message-in"} == {"KE"}  # type: ignore[index]
    assert {r["data"]["recipient"] for r in of_ke if r["type"] == "message-out"} == {"KE"}  # type: ignore[index]
    later = await lines(switch, Selection(since=switch.clock.now - timedelta(minutes=1)))
    assert later and len(later) < len(everything)


async def test_bundle_verifies_on_its_own_and_tampering_is_named(switch: Switch, tmp_path: Path) -> None:
    """A state's bundle verifies away from the database; an altered message or record inside it is named."""
    await story(switch)
    await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now)
    bundle = tmp_path / "bundle"
    manifest = await exported(switch, bundle, Selection(state="ZA"))
    assert manifest["anchored_by_checkpoint"]
    report = checked(switch, bundle)
    assert report.ok, report.problems
    assert report.checkpoints >= 1 and report.signatures_checked >= 2
    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    message = next(p for p in (altered / "messages").iterdir() if b"TraceRequest" in p.read_bytes())
    message.write_bytes(message.read_bytes().replace(b"BXK291", b"BXK297"))
    report = checked(switch, altered)
    assert not report.ok and "no longer match" in report.problems[0]
    edited = tmp_path / "edited"
    shutil.copytree(bundle, edited)
    records = (edited / "records.jsonl").read_text().splitlines()
    first = json.loads(records[0])
    first["data"]["outcome"] = "refused"
    records[0] = json.dumps(first)
    (edited / "records.jsonl").write_text("\n".join(records) + "\n")
    report = checked(switch, edited)
    assert report.problems[0].startswith(f"record {first['seq']}:") and "edited" in report.problems[0]


def tracegate(switch: Switch, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command against the switch's database, trust material and gateway certificate."""
    env = {
        **os.environ,
        "TRACEGATE_DATABASE_URL": switch.settings.database_url,
        "TRACEGATE_DATABASE_SCHEMA": switch.settings.database_schema,
        "TRACEGATE_TRUST_DIR": str(switch.settings.trust_dir),
        "TRACEGATE_GATEWAY_CERT": str(switch.settings.gateway_cert),
        "TRACEGATE_GATEWAY_KEY": str(switch.settings.gateway_key),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_audit_commands(switch: Switch, tmp_path: Path) -> None:
    """verify exits 0 on an intact store and 1 naming the record after an edit; a bundle verifies by itself."""
    await story(switch)
    intact = tracegate(switch, "verify")
    assert intact.returncode == 0 and "intact" in intact.stdout, intact.stderr
    assert tracegate(switch, "checkpoint").stdout.startswith("checkpoint signs record")
    export = tracegate(switch, "export", "--state", "ZA", "--bundle", str(tmp_path / "b"))
    assert export.returncode == 0 and "exported to bundle" in export.stdout
    outside = ("--gateway-cert", str(switch.settings.gateway_cert), "--trust-dir", str(switch.settings.trust_dir))
    assert tracegate(switch, "verify", "--bundle", str(tmp_path / "b"), *outside).returncode == 0
    async with switch.store.engine.begin() as conn:
        await conn.execute(update(inbound).where(inbound.c.code == "INCOMPLETE").values(code="NO_ROUTE"))
    tampered = tracegate(switch, "verify")
    assert tampered.returncode == 1 and "the stored code of message-in row" in tampered.stdout


async def test_bundle_verify_refuses_without_trust_from_outside(switch: Switch, tmp_path: Path) -> None:
    """Without a gateway certificate (or trust material) supplied from outside, verify --bundle refuses, exit 2."""
    await story(switch)
    await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now)
    await exported(switch, tmp_path / "b", Selection(state="ZA"))
    bare = tracegate(switch, "verify", "--bundle", str(tmp_path / "b"))
    assert bare.returncode == 2 and "--gateway-cert" in bare.stderr and "proves nothing" in bare.stderr
    cert = ("--gateway-cert", str(switch.settings.gateway_cert))
    no_trust = tracegate(switch, "verify", "--bundle", str(tmp_path / "b"), *cert)
    assert no_trust.returncode == 2 and "--trust-dir" in no_trust.stderr
    chain_only = tracegate(switch, "verify", "--bundle", str(tmp_path / "b"), *cert, "--no-signatures")
    assert chain_only.returncode == 0 and "0 original signatures checked" in chain_only.stdout, chain_only.stdout
    assert "not verified" in chain_only.stdout


def _resigned(bundle: Path, signer: Signer) -> None:
    """Edit the bundle's first record, recompute every hash after it, re-sign its checkpoints with `signer`'s key
    and put `signer`'s certificate in place of the gateway's: a forgery consistent with its own copies."""
    lines = [json.loads(line) for line in (bundle / "records.jsonl").read_text().splitlines()]
    lines[0]["data"]["outcome"] = "refused"
    prev = json.loads((bundle / "manifest.json").read_text())["first_prev_hash"]
    for raw in lines:
        if raw["type"] == "checkpoint":
            statement = rules.checkpoint_statement(raw["seq"] - 1, prev)
            signature = base64.b64encode(signer.sign_statement(statement)).decode()
            raw["data"] = {**raw["data"], "head_seq": raw["seq"] - 1, "head_hash": prev, "signature": signature}
        data = rules.canonical(raw["data"])
        raw["prev_hash"] = prev
        raw["hash"] = rules.record_hash(
            raw["seq"], raw["at"], raw["type"], raw["trace_id"], raw["body_sha256"], data, prev
        )
        prev = raw["hash"]
    (bundle / "records.jsonl").write_text("".join(json.dumps(raw) + "\n" for raw in lines))
    (bundle / "gateway.pem").write_bytes(signer.certificate.public_bytes(Encoding.PEM))


async def test_a_bundle_resigned_under_a_swapped_certificate_is_refused(switch: Switch, tmp_path: Path) -> None:
    """A bundle edited, re-hashed and re-signed under an attacker's certificate put inside it fails against the real
    gateway certificate supplied from outside (while consistent with its own copy)."""
    await story(switch)
    await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now)
    bundle = tmp_path / "bundle"
    await exported(switch, bundle, Selection(state="ZA"))
    now = datetime.now(UTC)
    attacker = Signer.from_objects(
        *issue_certificate(
            issuer_key=None,
            issuer_cert=None,
            subject_country=None,
            common_name="tracegate gateway",
            key_kind="ec",
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=1),
        )
    )
    _resigned(bundle, attacker)
    assert checked(switch, bundle, cert=attacker.certificate).ok  # the forgery holds up against its own copy
    report = checked(switch, bundle)
    assert not report.ok
    assert any("checkpoint signature does not verify" in p for p in report.problems), report.problems
    assert any("gateway.pem is not the gateway certificate you supplied" in p for p in report.problems)


async def test_a_bundle_no_checkpoint_signs_is_not_vouched_for(switch: Switch, tmp_path: Path) -> None:
    """Records after the bundle's last checkpoint (exported before one signed them) are named as unvouched."""
    await story(switch)
    bundle = tmp_path / "bundle"
    manifest = await exported(switch, bundle, Selection(state="ZA"))
    assert not manifest["anchored_by_checkpoint"]
    report = checked(switch, bundle)
    assert not report.ok and "no gateway signature vouches for them" in report.problems[-1], report.problems
