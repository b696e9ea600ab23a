"""XML signatures in the contract's profile (section 3): the only module that imports xmlsec.

Owns `verify` (profile checks, then trust, then cryptography, returning only what was signed) and
`Signer` (enveloped, exclusive c14n, SHA-256, the certificate in KeyInfo/X509Data).

The cryptography is python-xmlsec, the binding of the C library libxmlsec1 (the reference implementation the
interoperability tests run as `xmlsec1`): it checks digest and signature value on the tree lxml already parsed,
about three times faster than signxml, which re-parses and re-serialises the document several times per check.
python-xmlsec and lxml must be linked against the same libxml2; `check_libxml2_pairing` says so at start.
Signing is libxml2's exclusive c14n (through lxml) and `cryptography`'s key operation, put together in the one
shape the profile allows. It costs less than half of libxmlsec1's signing (whose fixed cost per document is
several times the ECDSA operation), and libxmlsec1 verifies what it makes (tested on generated documents, and
by `xmlsec1`).
signxml stays for its catalogue of algorithm URIs (and the tests forge deviant signatures with it).

Profile decisions: the Reference must be `URI=""` with transforms exactly [enveloped-signature,
exc-c14n], and SignedInfo is canonicalised with exc-c14n too (contract section 3 names no other method).
Neither a ds:Transform nor ds:CanonicalizationMethod may hold anything: no `InclusiveNamespaces` prefix list,
no XPath, no XSLT. Inclusive c14n (of SignedInfo, or exclusive c14n told to render prefixes inclusively) must
write every namespace declaration in scope on every element, which costs libxml2 time quadratic in the number
of declarations: a small message with thousands of unused ones stalled the switch for seconds before its digest
could even fail. Because comments are never signed, any comment or processing instruction inside the root
element, or a comment beside it, is refused rather than silently dropped (or relayed unsigned in a `Payload`).
KeyInfo must be exactly one X509Data holding exactly one X509Certificate: no KeyValue, KeyName,
RetrievalMethod or chain; CAs are configured at the gateway, not carried in messages.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.core.errors import ConfigurationError, ErrorCode, GatewayError, Refused
from gateway.xml.dsig import (
    _D,
    _SIGNATURE,
    ALLOWED_DIGESTS,
    ALLOWED_SIGNATURE_METHODS,
    ALLOWED_SIGNED_INFO_C14N,
    C14N_10,
    C14N_11,
    DS,
    ECDSA_SHA256,
    ECDSA_SHA384,
    ENVELOPED,
    EXC_C14N,
    RSA_SHA256,
    RSA_SHA512,
    SHA256,
    SHA384,
    SHA512,
    TRANSFORMS,
)
from gateway.xml.envelope import open_envelope
from gateway.xml.signing import Signer, SigningKey, verify_statement
from gateway.xml.trust import TrustStore

__all__ = [  # the profile's names and the signer, as this module has always offered them
    "ALLOWED_DIGESTS",
    "ALLOWED_SIGNATURE_METHODS",
    "ALLOWED_SIGNED_INFO_C14N",
    "C14N_10",
    "C14N_11",
    "DS",
    "ECDSA_SHA256",
    "ECDSA_SHA384",
    "ENVELOPED",
    "EXC_C14N",
    "RSA_SHA256",
    "RSA_SHA512",
    "SHA256",
    "SHA384",
    "SHA512",
    "TRANSFORMS",
    "Signer",
    "SigningKey",
    "Verified",
    "check_libxml2_pairing",
    "reverify",
    "verify",
    "verify_statement",
]

_KNOWN_URIS = frozenset(
    [m.value for m in SignatureMethod]
    + [d.value for d in DigestAlgorithm]
    + [c.value for c in CanonicalizationMethod]
    + [
        ENVELOPED,
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        "http://www.w3.org/TR/1999/REC-xpath-19991116",
        "http://www.w3.org/2002/06/xmldsig-filter2",
        DS + "base64",
    ]
)


@dataclass(frozen=True)
class Verified:
    """A message whose signature holds: only the signed content, and the certificate that signed it."""

    root: etree._Element
    certificate: x509.Certificate


def _label(uri: str | None) -> str:
    """A well-known algorithm's short name, or a neutral word: never echo sender-chosen text."""
    if uri is None:
        return "(none)"
    if uri not in _KNOWN_URIS:
        return "an unrecognised algorithm"
    fragment = uri.rsplit("#", 1)[-1] if "#" in uri else ""
    return fragment or uri


def _family_note(label: str) -> str:
    """Why a known-bad algorithm family is refused, or nothing."""
    name = label.lower()
    if "sha1" in name:
        return " (SHA-1 is broken)"
    if name.startswith("hmac"):
        return " (HMAC is a shared secret, not a signature)"
    if name.startswith("dsa"):
        return " (DSA is not in the profile)"
    if name.endswith("withcomments"):
        return " (comments are never signed)"
    return ""


def _not_allowed(what: str, uri: str | None) -> Refused:
    """SIGNATURE_INVALID naming the algorithm and, for a known-bad family, why."""
    label = _label(uri)
    return Refused(ErrorCode.SIGNATURE_INVALID, f"{what} {label} is not allowed{_family_note(label)}")


def _invalid(detail: str) -> Refused:
    """SIGNATURE_INVALID with a profile detail."""
    return Refused(ErrorCode.SIGNATURE_INVALID, detail)


def _the_signature(root: etree._Element) -> etree._Element:
    """The one ds:Signature, last element child of the root."""
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise Refused(ErrorCode.SIGNATURE_MISSING, "the message carries no ds:Signature")
    if len(signatures) > 1:
        raise _invalid(f"the message carries {len(signatures)} ds:Signature elements; the profile allows one")
    signature = signatures[0]
    if signature.getparent() is not root:
        raise _invalid("ds:Signature must be a child of the root element (enveloped signature)")
    if any(isinstance(node.tag, str) for node in signature.itersiblings()):
        raise _invalid("ds:Signature must be the last element of the root element")
    return signature


def _check_no_unsigned_nodes(root: etree._Element) -> None:
    """Comments are not covered by the profile's c14n: refuse them, inside the root and beside it (the exact bytes
    received are relayed in a `Payload`, so nothing unsigned may ride along). Processing instructions inside the
    root are refused too; one in the prolog is covered by `URI=""` like the root, so it is signed or it fails."""
    for node in root.iter(etree.Comment, etree.ProcessingInstruction):
        kind = "a comment" if isinstance(node, etree._Comment) else "a processing instruction"
        raise _invalid(f"unsigned content: {kind} inside the signed element")
    for where, siblings in (("before", root.itersiblings(preceding=True)), ("after", root.itersiblings())):
        for node in siblings:
            if isinstance(node, etree._Comment):  # a prolog PI is signed content (URI="" covers it); comments never
                raise _invalid(f"unsigned content: a comment {where} the root element (comments are never signed)")


def _one(parent: etree._Element, name: str) -> etree._Element:
    """Exactly one ds:`name` child of `parent`."""
    found = parent.findall(_D + name)
    if len(found) != 1:
        raise _invalid(f"ds:{etree.QName(parent).localname} must hold exactly one ds:{name}; found {len(found)}")
    return found[0]


def _has_content(element: etree._Element) -> bool:
    """Whether an algorithm element holds anything at all: a child of any kind, or text other than white space."""
    return len(element) > 0 or bool((element.text or "").strip())


def _check_reference(signed_info: etree._Element) -> None:
    """One Reference to the whole document, transformed exactly as the profile says, digested strongly."""
    reference = _one(signed_info, "Reference")
    if reference.get("URI") != "":
        raise _invalid('the reference must cover the whole message (URI=""), not a fragment or a resource')
    elements = list(reference.iterfind(f"{_D}Transforms/{_D}Transform"))
    transforms = [t.get("Algorithm") for t in elements]
    if tuple(transforms) != TRANSFORMS:
        found = ", ".join(_label(t) for t in transforms) or "none"
        raise _invalid(f"transforms must be exactly enveloped-signature then exclusive c14n; found: {found}")
    if any(_has_content(t) for t in elements):
        raise _invalid("a ds:Transform must be empty: no InclusiveNamespaces prefix list or other parameter is allowed")
    digest = _one(reference, "DigestMethod").get("Algorithm")
    if digest not in ALLOWED_DIGESTS:
        raise _not_allowed("digest method", digest)


def _check_signed_info(signature: etree._Element) -> None:
    """Canonicalization, signature method and reference of SignedInfo are in the profile."""
    signed_info = _one(signature, "SignedInfo")
    c14n_method = _one(signed_info, "CanonicalizationMethod")
    c14n = c14n_method.get("Algorithm")
    if c14n not in ALLOWED_SIGNED_INFO_C14N:
        raise _not_allowed("canonicalization method", c14n)
    if _has_content(c14n_method):
        raise _invalid(
            "ds:CanonicalizationMethod must be empty: no InclusiveNamespaces prefix list or other parameter is allowed"
        )
    method = _one(signed_info, "SignatureMethod").get("Algorithm")
    if method not in ALLOWED_SIGNATURE_METHODS:
        raise _not_allowed("signature method", method)
    _check_reference(signed_info)
    if signature.find(_D + "Object") is not None:
        raise _invalid("ds:Object is not allowed: the signature signs the message, nothing else")


_KEY_INFO_NAMES = frozenset(
    {"KeyName", "KeyValue", "RetrievalMethod", "X509Data", "PGPData", "SPKIData", "MgmtData", "DEREncodedKeyValue"}
)


def _dsig_name(element: etree._Element) -> str:
    """An XML-DSig element's name for a refusal, or a neutral word: element names are the sender's text too."""
    qname = etree.QName(element)
    if qname.namespace == DS and qname.localname in _KEY_INFO_NAMES:
        return qname.localname
    return "an element XML-DSig does not name"


@lru_cache(maxsize=512)
def _certificate_from_der(der: bytes) -> x509.Certificate:
    """Parse once per distinct certificate: national systems send the same one with every message."""
    return x509.load_der_x509_certificate(der)


def _the_certificate(signature: etree._Element) -> x509.Certificate:
    """The signer's certificate: KeyInfo is exactly X509Data/X509Certificate, one of each."""
    key_info = signature.find(_D + "KeyInfo")
    if key_info is None:
        raise _invalid("ds:KeyInfo is missing: the signer's certificate must be in KeyInfo/X509Data")
    others = sorted({_dsig_name(c) for c in key_info if isinstance(c.tag, str)} - {"X509Data"})
    if others:
        raise _invalid(f"ds:KeyInfo may hold only X509Data; found {', '.join(others)} (key confusion)")
    x509_data = _one(key_info, "X509Data")
    if any(isinstance(c.tag, str) and c.tag != _D + "X509Certificate" for c in x509_data):
        raise _invalid("ds:X509Data may hold only the signing certificate")
    return _certificate_from_text(_one(x509_data, "X509Certificate").text or "")


@lru_cache(maxsize=512)
def _certificate_from_text(text: str) -> x509.Certificate:
    """The certificate of an X509Certificate's text, decoded once per distinct text (a national system sends the
    same one, formatted the same, with every message)."""
    try:
        return _certificate_from_der(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as err:
        raise _invalid("ds:X509Certificate is not a readable base64 DER certificate") from err


def _dotted(version: tuple[int, ...]) -> str:
    """(2, 14, 6) as 2.14.6."""
    return ".".join(str(part) for part in version)


def check_libxml2_pairing() -> None:
    """python-xmlsec and lxml must share one libxml2: a mismatch is a broken install, said at start."""
    if xmlsec.get_libxml_version() != etree.LIBXML_VERSION:
        raise ConfigurationError(
            f"xmlsec is linked against libxml2 {_dotted(xmlsec.get_libxml_version())} but lxml against "
            f"{_dotted(etree.LIBXML_VERSION)}: install the xmlsec and lxml versions pinned in pyproject.toml"
        )


@lru_cache(maxsize=512)
def _verification_key(cert: x509.Certificate) -> xmlsec.Key:
    """The public key of a trusted certificate as an xmlsec key, loaded once.

    The bare key (SubjectPublicKeyInfo), not the certificate: the certificate's trust is our own check, done
    before, and a key holding a certificate costs xmlsec a copy of it on every use.
    """
    spki = cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return xmlsec.Key.from_memory(spki, xmlsec.constants.KeyDataFormatPem)


_METHOD_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    RSA_SHA256: hashes.SHA256,
    RSA_SHA512: hashes.SHA512,
    ECDSA_SHA256: hashes.SHA256,
    ECDSA_SHA384: hashes.SHA384,
}


def _signed_info_holds(signature: etree._Element, cert: x509.Certificate) -> bool:
    """After a failed check: whether SignatureValue is a good signature of SignedInfo (so the content digest is
    what fails: the message was altered after signing).

    Only names the failure for the sender; the verdict is xmlsec's. SignedInfo is small whatever the message's
    size, so a forgery costs about what a genuine message does (the content is not canonicalised a second time).
    """
    signed_info = signature.find(_D + "SignedInfo")
    method = signed_info.find(_D + "SignatureMethod") if signed_info is not None else None
    algorithm = _METHOD_HASHES.get(method.get("Algorithm", "") if method is not None else "")
    text = signature.findtext(_D + "SignatureValue")
    if signed_info is None or algorithm is None or text is None:
        return False
    try:
        value = base64.b64decode("".join(text.split()), validate=True)
    except (ValueError, binascii.Error):
        return False
    data = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), algorithm())
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and value and len(value) % 2 == 0:
            half = len(value) // 2
            r, s = int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _cryptographic_check(root: etree._Element, signature: etree._Element, cert: x509.Certificate) -> etree._Element:
    """xmlsec checks digest and signature value with the trusted certificate's key; returns what was signed.

    The profile is already enforced (one reference to the whole document, enveloped then exclusive c14n, no
    comments), so what the signature covers is exactly the root without its ds:Signature, which is removed.
    """
    context = xmlsec.SignatureContext()
    context.key = _verification_key(cert)
    try:
        context.verify(signature)
    except xmlsec.VerificationError as err:
        if _signed_info_holds(signature, cert):
            raise _invalid(
                "digest of the signed content does not match: the message was altered after signing"
            ) from err
        raise _invalid("signature value does not verify with the certificate in KeyInfo") from err
    except xmlsec.Error as err:
        raise _invalid(f"the signature cannot be processed ({type(err).__name__})") from err
    root.remove(signature)
    return root


def verify(root: etree._Element, *, sender: str, trust: TrustStore, now: datetime) -> Verified:
    """Check `root`'s signature against the profile and `sender`'s trust; return only what was signed."""
    signature = _the_signature(root)
    _check_no_unsigned_nodes(root)
    _check_signed_info(signature)
    cert = _the_certificate(signature)
    trust.authorize(cert, sender, now)
    return Verified(root=_cryptographic_check(root, signature, cert), certificate=cert)


def reverify(body: bytes, trust: TrustStore, at: datetime) -> GatewayError | None:
    """Why a stored message's sender signature no longer verifies as of `at` (None when it does): the auditor's
    check of an accepted message, made on its exact bytes with today's trust material."""
    try:
        envelope = open_envelope(body, max_bytes=len(body) + 1)
        verify(envelope.root, sender=envelope.sender or "", trust=trust, now=at)
    except GatewayError as err:
        return err
    return None
