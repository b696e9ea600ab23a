"""Signing in the contract's profile: enveloped, exclusive c14n, SHA-256, the certificate in KeyInfo/X509Data.

Signing is libxml2's exclusive c14n (through lxml) and `cryptography`'s key operation, put together in the one
shape the profile allows. It costs less than half of libxmlsec1's signing (whose fixed cost per document is
several times the ECDSA operation), and libxmlsec1 verifies what it makes (tested on generated documents, and by
`xmlsec1`). Also the detached signatures of audit checkpoints.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from gateway.core.errors import ConfigurationError
from gateway.xml.dsig import _D, _SIGNATURE, DS, ECDSA_SHA256, ECDSA_SHA384, EXC_C14N, RSA_SHA256, SHA256, TRANSFORMS

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"


def _method_for(key: SigningKey) -> str:
    """rsa-sha256 for RSA; ecdsa-sha256 for P-256, ecdsa-sha384 for larger curves."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_SHA256
    return ECDSA_SHA256 if key.curve.key_size <= 256 else ECDSA_SHA384


def _key_matches(key: SigningKey, cert: x509.Certificate) -> bool:
    """The private key is the one the certificate certifies (same SubjectPublicKeyInfo)."""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def _signature_template(method: str, certificate_b64: str) -> tuple[tuple[bytes, bytes, bytes], tuple[bytes, bytes]]:
    """The ds:Signature the signer fills in, serialised as the three byte strings around DigestValue and
    SignatureValue; and SignedInfo in exclusive c14n as the two byte strings around the digest value.

    Exclusive c14n renders only the namespaces an element visibly uses, so SignedInfo canonicalises the same
    wherever the signature is appended (the tests check it against libxml2's c14n of each signed document). The
    serialised signature declares its own `ds` prefix, so it reads the same inside any root.
    """
    signature = etree.Element(_SIGNATURE, nsmap={"ds": DS})
    signed_info = etree.SubElement(signature, _D + "SignedInfo")
    etree.SubElement(signed_info, _D + "CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _D + "SignatureMethod", Algorithm=method)
    reference = etree.SubElement(signed_info, _D + "Reference", URI="")
    transforms = etree.SubElement(reference, _D + "Transforms")
    for algorithm in TRANSFORMS:
        etree.SubElement(transforms, _D + "Transform", Algorithm=algorithm)
    etree.SubElement(reference, _D + "DigestMethod", Algorithm=SHA256)
    etree.SubElement(reference, _D + "DigestValue").text = "@"  # the one '@' of the canonical form
    etree.SubElement(signature, _D + "SignatureValue").text = "%"  # neither is in base64's alphabet or a URI here
    # KeyInfo is outside what is signed (the profile's single reference is the document).
    key_info = etree.SubElement(signature, _D + "KeyInfo")
    etree.SubElement(etree.SubElement(key_info, _D + "X509Data"), _D + "X509Certificate").text = certificate_b64
    before, after = etree.tostring(signed_info, method="c14n", exclusive=True).split(b"@")
    head, rest = etree.tostring(signature).split(b"@")
    middle, tail = rest.split(b"%")
    return (head, middle, tail), (before, after)


class Signer:
    """Signs documents in the profile with one key and its certificate, both loaded once."""

    __slots__ = ("_cert", "_key", "_method", "_signature", "_signed_info")

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        """A signer from PEM bytes: an unencrypted RSA or EC private key and its certificate."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError) as err:
            raise ConfigurationError(f"the signing key or certificate cannot be read ({err})") from err
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigurationError("the signing key must be RSA or EC")
        self._bind(key, cert)

    @classmethod
    def from_files(cls, key_path: Path, cert_path: Path) -> Signer:
        """A signer from a PEM key file and a PEM certificate file."""
        try:
            key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
        except OSError as err:
            raise ConfigurationError(
                f"{err.filename}: cannot read the signing key or certificate ({err.strerror})"
            ) from err
        try:
            return cls(key_pem, cert_pem)
        except ConfigurationError as err:
            raise ConfigurationError(f"{key_path}, {cert_path}: {err}") from err

    @classmethod
    def from_objects(cls, key: SigningKey, cert: x509.Certificate) -> Signer:
        """A signer from already loaded objects (tests, the demo)."""
        signer = cls.__new__(cls)
        signer._bind(key, cert)
        return signer

    def _bind(self, key: SigningKey, cert: x509.Certificate) -> None:
        """Check the pair once."""
        if not _key_matches(key, cert):
            raise ConfigurationError("the signing key does not match the certificate")
        self._key = key
        self._cert = cert
        self._method = _method_for(key)
        self._signature, self._signed_info = _signature_template(
            self._method, base64.encodebytes(cert.public_bytes(serialization.Encoding.DER)).decode()
        )

    def _signature_value(self, data: bytes) -> bytes:
        """The SignatureValue octets over `data`: PKCS#1 v1.5 for RSA; for ECDSA the two integers r and s,
        each left-padded to the curve's size (XML-DSig 1.1, 6.4.3), not the DER sequence `cryptography` gives."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        algorithm = hashes.SHA256() if self._method == ECDSA_SHA256 else hashes.SHA384()
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(algorithm)))
        size = (self._key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate this signer puts in KeyInfo."""
        return self._cert

    def sign(self, root: etree._Element) -> bytes:
        """The signed document, UTF-8 with an XML declaration; ds:Signature is the last child of the root. The
        caller's tree is left as it was.

        The profile's reference is the whole document with the signature taken out, in exclusive c14n. So the
        document is canonicalised once (by libxml2's c14n, through lxml): that is what is digested, and it is also
        the body sent, with the ds:Signature inserted before the root's end tag. A verifier's enveloped-signature
        transform takes out exactly what was inserted, and the canonical form of the canonical form is itself.
        The signature value is over SignedInfo canonicalised in place; the key operation is `cryptography`'s.
        This is over twice as fast as libxmlsec1's signing, whose fixed cost per document is several times the
        ECDSA operation; libxmlsec1 (here, and `xmlsec1` in the interoperability tests) verifies every signature
        made so, and the tests check that on generated documents.

        The body is the document's canonical form, so it carries no comments (a signature in this profile does
        not cover them), empty elements are written with an end tag, and namespaces are declared where used.
        """
        if root.get("Id") is not None or root.get("ID") is not None:
            raise ValueError('the root must not carry an Id attribute: the profile signs the whole document (URI="")')
        if root.getparent() is not None:
            raise ValueError("only a whole document is signed: pass its root element")
        canonical = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
        digest = base64.b64encode(hashlib.sha256(canonical).digest())
        before, after = self._signed_info
        value = base64.b64encode(self._signature_value(before + digest + after))
        head, middle, tail = self._signature
        signature = (head, digest, middle, value, tail)
        # libxml2's c14n writes namespace names as they are. lxml takes only valid URIs as namespace names, and of
        # what a URI may hold, only '&' needs escaping in XML: a document with any '&' is serialised from the tree.
        if b"&" in canonical:
            signed = copy.deepcopy(root)
            signed.append(etree.fromstring(b"".join(signature)))
            return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        end = canonical.rindex(b"</")  # the root's end tag: c14n writes no empty-element tags and nothing after it
        return b"".join((_DECLARATION, canonical[:end], *signature, canonical[end:]))

    def sign_statement(self, statement: bytes) -> bytes:
        """A detached signature over `statement` (audit checkpoints): ECDSA or RSA PKCS#1 v1.5, SHA-256."""
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(statement, ec.ECDSA(hashes.SHA256()))
        return self._key.sign(statement, padding.PKCS1v15(), hashes.SHA256())


def verify_statement(certificate: x509.Certificate, statement: bytes, signature: bytes) -> bool:
    """Whether `signature` over `statement` was made with the key of `certificate`."""
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, statement, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, statement, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True
