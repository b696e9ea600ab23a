"""`tracegate trust check`: problems exit 1, warnings print and exit 0 (1 with --strict), a clean directory 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.cli.main import cli
from tests.unit.test_trust_profile import Issued, _crl, leaf, store_with


def check(tmp_path: Path, directory: Path, *args: str) -> tuple[int, str]:
    """Run the command on `directory` with an empty configuration."""
    config = tmp_path / "none.toml"
    config.write_text("[tracegate]\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "trust", "check", "--trust-dir", str(directory), *args])
    return result.exit_code, result.output


def test_trust_check_names_problems_and_warnings(tmp_path: Path, test_ca: Issued) -> None:
    """A CRL falling due in ten days warns (exit 0, or 1 with --strict); a pinned TLS-only certificate is a
    problem (exit 1); a directory with neither says so (exit 0)."""
    now = datetime.now(UTC)
    crl = _crl(test_ca, now - timedelta(days=1), now + timedelta(days=10))
    store_with(tmp_path / "warn", test_ca, crl=crl)
    code, out = check(tmp_path, tmp_path / "warn", "--warn-days", "30")
    assert code == 0 and "warning: ZA: CRL" in out and "0 problem(s), 1 warning(s)" in out, out
    assert check(tmp_path, tmp_path / "warn", "--warn-days", "30", "--strict")[0] == 1
    assert check(tmp_path, tmp_path / "warn", "--warn-days", "5")[1].endswith("0 problem(s), 0 warning(s)\n")
    tls = leaf(test_ca, now, eku=[ExtendedKeyUsageOID.SERVER_AUTH], self_signed=True)[1]
    store_with(tmp_path / "bad", test_ca, tls)
    code, out = check(tmp_path, tmp_path / "bad", "--warn-days", "0")
    assert code == 1 and "problem: ZA: pinned certificate sha256:" in out and "signing documents" in out, out


def test_trust_check_lists_the_material_per_state(tmp_path: Path, test_ca: Issued) -> None:
    """Each certificate with its kind, short fingerprint, subject C and notAfter; each CRL with issuer and
    nextUpdate; a clean directory exits 0."""
    now = datetime.now(UTC)
    pinned = leaf(test_ca, now, self_signed=True)[1]
    store_with(tmp_path / "ok", test_ca, pinned, crl=_crl(test_ca, now - timedelta(days=1), now + timedelta(days=90)))
    code, out = check(tmp_path, tmp_path / "ok", "--warn-days", "10")
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0].split()[:2] == ["ZA", "CA"] and "C=-" in lines[0]
    assert lines[1].split()[:2] == ["ZA", "pinned"] and "C=ZA" in lines[1]
    assert f"not after {pinned.not_valid_after_utc.isoformat()}" in lines[1]
    assert lines[2].startswith("ZA       CRL     issuer CN=tests CA  next update ")
    assert lines[-1].endswith("1 state(s), 0 problem(s), 0 warning(s)")


def test_trust_check_refuses_a_directory_that_does_not_load(tmp_path: Path) -> None:
    """A broken file is an error naming it (exit 1), as `serve` would refuse to start."""
    (tmp_path / "certs" / "ZA").mkdir(parents=True)
    (tmp_path / "certs" / "ZA" / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    code, out = check(tmp_path, tmp_path / "certs")
    assert code == 1 and "broken.pem" in out, out
