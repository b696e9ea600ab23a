"""One way for the tests to make an X.509 certificate, odd or plain, where `gateway.dev.pki.issue_certificate`
(which makes only what the profile allows) will not do."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

Extension = tuple[x509.ExtensionType, bool]  # an extension and whether it is critical


def certificate(
    key: Any,
    subject: x509.Name,
    *,
    now: datetime,
    issuer: tuple[Any, x509.Name] | None = None,
    days: float = 30,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial: int | None = None,
    extensions: Iterable[Extension] = (),
) -> x509.Certificate:
    """A certificate of `key` for `subject`, signed by `issuer` (its key and name) or self-signed, valid from a day
    before `now` for `days` after it unless told otherwise, with `extensions` in order."""
    signing_key, issuer_name = issuer if issuer is not None else (key, subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def name(**attributes: str) -> x509.Name:
    """A name from `COUNTRY_NAME="ZA"`, `COMMON_NAME="za"` and the like, in the order given."""
    return x509.Name([x509.NameAttribute(getattr(x509.NameOID, k), v) for k, v in attributes.items()])
