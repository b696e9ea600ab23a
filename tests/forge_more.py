"""More forgeries for the hostile-input corpus: raw signatures in any algorithm, odd certificates, XSW1 to XSW8.

Everything here works on bytes a national system would publish, with keys made at run time from the test PKI
(`gateway.pki.DevPki`) or freshly generated: no private key is ever read from the repository.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from gateway.core.model import NS
from gateway.dev.pki import DevPki, PrivateKey, load_private_key
from gateway.xml.signatures import EXC_C14N, Signer
from tests.forge import LegacySigner

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
D = f"{{{DS_NS}}}"
T = f"{{{NS}}}"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
BASE64 = DS_NS + "base64"
ENVELOPED = DS_NS + "enveloped-signature"
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
C14N_COMMENTS = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"

AnyKey = PrivateKey | dsa.DSAPrivateKey


def parse(body: bytes) -> etree._Element:
    """Parse as the gateway does: nothing loaded, expanded or fetched."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(body, parser)


def serialize(root: etree._Element) -> bytes:
    """UTF-8 with an XML declaration, as `Signer.sign` writes it."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def edit(body: bytes, change: Callable[[etree._Element], None]) -> bytes:
    """Parse signed bytes, apply `change` to the root, serialize again (the signature is left as it was)."""
    root = parse(body)
    change(root)
    return serialize(root)


def signature_of(root: etree._Element) -> etree._Element:
    """The root's ds:Signature child."""
    found = root.find(D + "Signature")
    assert found is not None, "not a signed message"
    return found


def material(pki: DevPki, state: str) -> tuple[PrivateKey, x509.Certificate]:
    """A state's genuine key and certificate from the test PKI."""
    return load_private_key(pki.key_path(state)), x509.load_pem_x509_certificate(pki.cert_path(state).read_bytes())


def sign_raw(
    root: etree._Element,
    key: AnyKey | bytes,
    certs: Iterable[x509.Certificate] = (),
    *,
    method: str = "rsa-sha256",
    digest: str = "sha256",
    c14n: str = EXC_C14N,
    legacy: bool = False,
    key_value: bool = False,
) -> bytes:
    """Sign enveloped with any algorithm signxml knows (SHA-1 too when `legacy`): for crafting deviations."""
    cls = LegacySigner if legacy else XMLSigner
    signer = cls(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=digest,
        c14n_algorithm=c14n,
    )
    cert_list = list(certs)
    signed = signer.sign(root, key=key, cert=cert_list or None, always_add_key_value=key_value)
    return serialize(signed)


def set_algorithm(body: bytes, path: str, uri: str) -> bytes:
    """Rewrite the `Algorithm` of the ds:Signature descendant at `path` (e.g. "SignedInfo/SignatureMethod")."""

    def change(root: etree._Element) -> None:
        node = signature_of(root).find(D + path.replace("/", "/" + D))
        assert node is not None, path
        node.set("Algorithm", uri)

    return edit(body, change)


def set_transforms(body: bytes, transforms: Iterable[str | etree._Element]) -> bytes:
    """Replace the Reference's transforms by `transforms` (URIs, or ready-made ds:Transform elements)."""

    def change(root: etree._Element) -> None:
        reference = signature_of(root).find(f"{D}SignedInfo/{D}Reference")
        assert reference is not None
        old = reference.find(D + "Transforms")
        if old is not None:
            reference.remove(old)
        items = list(transforms)
        if not items:
            return
        element = etree.Element(D + "Transforms")
        for item in items:
            element.append(item if isinstance(item, etree._Element) else etree.Element(D + "Transform", Algorithm=item))
        reference.insert(0, element)

    return edit(body, change)


def xslt_transform(payload_marker: str) -> etree._Element:
    """A ds:Transform running an XSLT stylesheet that would read /etc/passwd and a local URL."""
    transform = etree.Element(D + "Transform", Algorithm=XSLT)
    xsl = "http://www.w3.org/1999/XSL/Transform"
    sheet = etree.SubElement(transform, f"{{{xsl}}}stylesheet", version="1.0", nsmap={"xsl": xsl})
    template = etree.SubElement(sheet, f"{{{xsl}}}template", match="/")
    etree.SubElement(template, f"{{{xsl}}}copy-of", select="document('file:///etc/passwd')")
    etree.SubElement(template, f"{{{xsl}}}copy-of", select=f"document('http://127.0.0.1:9/{payload_marker}')")
    return transform


def xpath_transform(expression: str, algorithm: str = XPATH) -> etree._Element:
    """A ds:Transform with an XPath (or XPath filter 2) expression."""
    transform = etree.Element(D + "Transform", Algorithm=algorithm)
    if algorithm == XPATH_FILTER2:
        ns = "http://www.w3.org/2002/06/xmldsig-filter2"
        etree.SubElement(transform, f"{{{ns}}}XPath", Filter="subtract", nsmap={"dsig-xpath": ns}).text = expression
    else:
        etree.SubElement(transform, D + "XPath").text = expression
    return transform


def set_reference_uri(body: bytes, uri: str) -> bytes:
    """Point the Reference somewhere else (a fragment, a file, a local URL)."""

    def change(root: etree._Element) -> None:
        reference = signature_of(root).find(f"{D}SignedInfo/{D}Reference")
        assert reference is not None
        reference.set("URI", uri)

    return edit(body, change)


def duplicate_reference(body: bytes, uri: str = "") -> bytes:
    """A second ds:Reference in SignedInfo (signing "more" than the profile allows)."""

    def change(root: etree._Element) -> None:
        signed_info = signature_of(root).find(D + "SignedInfo")
        assert signed_info is not None
        reference = signed_info.find(D + "Reference")
        assert reference is not None
        extra = copy.deepcopy(reference)
        extra.set("URI", uri)
        signed_info.append(extra)

    return edit(body, change)


def alter_text(body: bytes, path: str, value: str) -> bytes:
    """Change one value after signing (`path` below the root, without prefixes, `/`-separated)."""

    def change(root: etree._Element) -> None:
        node = root.find(T + path.replace("/", "/" + T))
        assert node is not None, path
        node.text = value

    return edit(body, change)


def alter_signature_text(body: bytes, path: str, change_text: Callable[[str], str]) -> bytes:
    """Change the text of a ds:Signature descendant (a DigestValue, the SignatureValue...)."""

    def change(root: etree._Element) -> None:
        node = signature_of(root).find(D + path.replace("/", "/" + D))
        assert node is not None, path
        node.text = change_text(node.text or "")

    return edit(body, change)


def flip_base64(text: str) -> str:
    """The same base64 with its first significant character changed."""
    stripped = "".join(text.split())
    return ("B" if stripped[0] == "A" else "A") + stripped[1:]


def replace_key_info(body: bytes, build: Callable[[etree._Element], None]) -> bytes:
    """Empty ds:KeyInfo (creating it if absent) and let `build` fill it."""

    def change(root: etree._Element) -> None:
        signature = signature_of(root)
        key_info = signature.find(D + "KeyInfo")
        if key_info is None:
            key_info = etree.SubElement(signature, D + "KeyInfo")
        for child in list(key_info):
            key_info.remove(child)
        build(key_info)

    return edit(body, change)


def remove_key_info(body: bytes) -> bytes:
    """Drop ds:KeyInfo altogether."""

    def change(root: etree._Element) -> None:
        signature = signature_of(root)
        key_info = signature.find(D + "KeyInfo")
        assert key_info is not None
        signature.remove(key_info)

    return edit(body, change)


def der_b64(cert: x509.Certificate) -> str:
    """A certificate as X509Certificate text."""
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def key_info_certificate(key_info: etree._Element, *texts: str) -> None:
    """Add one X509Data holding an X509Certificate per text."""
    data = etree.SubElement(key_info, D + "X509Data")
    for text in texts:
        etree.SubElement(data, D + "X509Certificate").text = text


def _name(countries: Iterable[str], common_name: str) -> x509.Name:
    """A subject with any number of C attributes (zero, one, two) and a CN."""
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, c) for c in countries]
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(
    *,
    issuer: tuple[AnyKey, x509.Certificate] | None,
    countries: Iterable[str],
    common_name: str,
    not_before: datetime,
    not_after: datetime,
    is_ca: bool = False,
    digital_signature: bool = True,
    key: AnyKey | None = None,
    issuer_name: x509.Name | None = None,
) -> tuple[AnyKey, x509.Certificate]:
    """A key and certificate with the oddities `issue_certificate` will not make (self-signed when no issuer)."""
    own = key or ec.generate_private_key(ec.SECP256R1())
    subject = _name(countries, common_name)
    signing_key = issuer[0] if issuer else own
    name_of_issuer = issuer_name or (issuer[1].subject if issuer else subject)
    usage = x509.KeyUsage(
        digital_signature=digital_signature and not is_ca,
        content_commitment=False,
        key_encipherment=not digital_signature,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(name_of_issuer)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
    )
    if isinstance(signing_key, dsa.DSAPrivateKey):
        raise ValueError("issuers here are RSA or EC")
    return own, builder.sign(signing_key, hashes.SHA256())


def dev_ca(pki: DevPki) -> tuple[PrivateKey, x509.Certificate]:
    """The development CA that every state of the test PKI trusts."""
    return pki.load_ca_key(), pki.load_ca_cert()


def signer_of(pair: tuple[AnyKey, x509.Certificate]) -> Signer:
    """A profile signer for a key pair (RSA or EC keys only)."""
    key, cert = pair
    assert not isinstance(key, dsa.DSAPrivateKey)
    return Signer.from_objects(key, cert)


def days(now: datetime, before: float, after: float) -> tuple[datetime, datetime]:
    """A validity window relative to `now`, in days."""
    return now + timedelta(days=before), now + timedelta(days=after)


# --- XML signature wrapping (Somorovsky et al., "On Breaking SAML", 2012), moved onto the contract's messages --------
#
# SAML signs an element by ID; the wrapping attacks move the signed element somewhere the verifier still finds it and
# put an evil element where the application reads. The contract signs URI="" enveloped, so each variant becomes a
# document whose shape or digest the gateway refuses.


def _stripped(signed: etree._Element) -> etree._Element:
    """A copy of a signed root without its ds:Signature."""
    tucked = copy.deepcopy(signed)
    tucked.remove(signature_of(tucked))
    return tucked


def _object(signature: etree._Element, *content: etree._Element) -> None:
    """Append a ds:Object holding `content` to a signature."""
    holder = etree.SubElement(signature, D + "Object")
    for item in content:
        holder.append(item)


def xsw(variant: int, signed: bytes, evil: etree._Element) -> bytes:
    """XSW`variant` (1 to 8): the genuine signature of `signed` reused around `evil` (an unsigned message)."""
    original = parse(signed)
    signature = copy.deepcopy(signature_of(original))
    evil = copy.deepcopy(evil)
    firearm = evil.find(T + "Firearm")
    assert firearm is not None
    if variant == 1:  # the signed original moves into ds:Object of the signature the evil root now carries
        _object(signature, _stripped(original))
        evil.append(signature)
    elif variant == 2:  # the signed original detached as a sibling just before the signature
        evil.append(_stripped(original))
        evil.append(signature)
    elif variant == 3:  # an evil Header inserted before the signed one (a reader taking the first one is fooled)
        evil_header = evil.find(T + "Header")
        assert evil_header is not None
        original.insert(0, copy.deepcopy(evil_header))
        return serialize(original)
    elif variant == 4:  # the evil root wraps the whole signed original, signature and all
        evil.append(original)
    elif variant == 5:  # the evil root carries the signature; the original is appended after it
        evil.append(signature)
        evil.append(_stripped(original))
    elif variant == 6:  # evil root with the signature; the signed original, its own signature kept, inside ds:Object
        _object(signature, copy.deepcopy(original))
        evil.append(signature)
    elif variant == 7:  # the original hidden in an element of free content (here a text-only field)
        holder = etree.SubElement(evil, T + "IncompleteJustification")
        holder.append(_stripped(original))
        evil.append(signature)
    elif variant == 8:  # only the signed item (the Firearm) kept, inside ds:Object; the evil one in the root
        signed_firearm = original.find(T + "Firearm")
        assert signed_firearm is not None
        _object(signature, copy.deepcopy(signed_firearm))
        evil.append(signature)
    else:
        raise ValueError(f"no XSW variant {variant}")
    return serialize(evil)


def inject(body: bytes, anchor: bytes, insert: bytes, *, after: bool = False) -> bytes:
    """Insert bytes before (or after) the first occurrence of `anchor`."""
    at = body.index(anchor) + (len(anchor) if after else 0)
    return body[:at] + insert + body[at:]


def prepend_prolog(body: bytes, prolog: bytes) -> bytes:
    """Put `prolog` (a DOCTYPE, a PI, a comment) between the XML declaration and the root of signed bytes."""
    declaration_end = body.index(b"?>") + 2 if body.startswith(b"<?xml") else 0
    return body[:declaration_end] + b"\n" + prolog + body[declaration_end:]
