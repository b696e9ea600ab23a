"""Unit-test fixtures: a fixed clock and a small certificate authority of the tests' own, made per session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from gateway.dev.pki import KeyKind, PrivateKey, issue_certificate

Issued = tuple[PrivateKey, x509.Certificate]


@pytest.fixture(scope="session")
def fixed_now() -> datetime:
    """The instant the trust tests happen at."""
    return datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def test_ca(fixed_now: datetime) -> Issued:
    """A root CA without a country (like the development CA), valid a year around the fixed clock."""
    return issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country=None,
        common_name="tests CA",
        key_kind="ec",
        not_before=fixed_now - timedelta(days=365),
        not_after=fixed_now + timedelta(days=365),
        is_ca=True,
    )


@pytest.fixture(scope="session")
def issue(test_ca: Issued, fixed_now: datetime) -> Callable[..., Issued]:
    """A certificate factory: issued by the tests' CA unless another issuer is given."""

    def make(
        country: str | None,
        *,
        kind: KeyKind = "ec",
        is_ca: bool = False,
        issuer: Issued | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        common_name: str = "test certificate",
    ) -> Issued:
        by = issuer or test_ca
        return issue_certificate(
            issuer_key=by[0],
            issuer_cert=by[1],
            subject_country=country,
            common_name=common_name,
            key_kind=kind,
            not_before=not_before or fixed_now - timedelta(days=30),
            not_after=not_after or fixed_now + timedelta(days=30),
            is_ca=is_ca,
        )

    return make


@pytest.fixture(scope="session")
def self_signed(fixed_now: datetime) -> Callable[..., Issued]:
    """Makes a self-signed certificate (a rogue CA, or a leaf to pin)."""

    def make(country: str | None, *, is_ca: bool, kind: KeyKind = "ec") -> Issued:
        return issue_certificate(
            issuer_key=None,
            issuer_cert=None,
            subject_country=country,
            common_name="self-signed",
            key_kind=kind,
            not_before=fixed_now - timedelta(days=30),
            not_after=fixed_now + timedelta(days=30),
            is_ca=is_ca,
        )

    return make
