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
import copy
import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.xml.trust import TrustStore

DS = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED = DS + "enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

ALLOWED_SIGNATURE_METHODS: frozenset[str] = frozenset({RSA_SHA256, RSA_SHA512, ECDSA_SHA256, ECDSA_SHA384})
ALLOWED_DIGESTS: frozenset[str] = frozenset({SHA256, SHA384, SHA512})
ALLOWED_SIGNED_INFO_C14N: frozenset[str] = frozenset({EXC_C14N})
TRANSFORMS: tuple[str, ...] = (ENVELOPED, EXC_C14N)

_D = f"{{{DS}}}"
_SIGNATURE = _D + "Signature"
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
