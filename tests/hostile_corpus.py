"""The hostile-input corpus: reads `tests/data/hostile/corpus.toml` and turns each entry into the bytes to publish.

An entry is a static file (`file = "static/..."`, inputs that need no signature) or a `recipe` with `params`, built
at run time from the session's test PKI, because no private key is ever committed. Some recipes first drive the
switch into a state (a trace delivered, acknowledged, withdrawn...) through `Context.setup`; the test then empties
every queue before publishing the hostile input.

Every entry names the exact `Rejection/Code` it must get (`code`), the transport identity it is published under
(`routing_key`, default ZA; `user_id`, default none) and, where the gateway is known to answer wrongly,
`xfail_reason`.
"""

from __future__ import annotations

import gzip
import io
import random
import re
import tomllib
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.core.effects import Outcome
from gateway.core.model import NS
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.xml.compose import stamp
from gateway.xml.signatures import EXC_C14N, Signer
from tests import forge
from tests import forge_more as fm

HERE = Path(__file__).parent / "data" / "hostile"
MANIFEST = HERE / "corpus.toml"
EXAMPLES = Path(__file__).parent / "data" / "examples"
LIMIT = 1_048_576  # the contract's default body limit (1 MiB)
T = f"{{{NS}}}"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
TO_MZ = (("ZA", "MZ", "2019-06-14"),)
# Strings an attack plants; a Rejection's Detail must never contain any of them.
MARKERS = ("ZZMARK", "passwd", "root:", "127.0.0.1", "file:/", "lol", "<!", "&")

Built = bytes
Setup = Callable[[str, etree._Element | bytes], Awaitable[Outcome]]


@dataclass(frozen=True)
class Entry:
    """One corpus input: what it is, how to make it, how it is published, what it must get."""

    name: str
    attack_class: str
    code: str
    file: str | None = None
    recipe: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    routing_key: str = "ZA"
    user_id: str | None = None
    xfail_reason: str | None = None
    markers: tuple[str, ...] = ()

    @property
    def transport_sender(self) -> str:
        """Who hears the Rejection: the broker-validated user where set, else the routing key."""
        return self.user_id or self.routing_key

    @property
    def forbidden_in_detail(self) -> tuple[str, ...]:
        """Strings the Rejection's Detail must not contain (the global markers and this entry's own)."""
        return (*MARKERS, *self.markers)


def load_manifest(path: Path = MANIFEST) -> list[Entry]:
    """Every entry of the manifest, in order; a malformed entry fails loudly."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for raw in data["input"]:
        unknown = set(raw) - {
            "name",
            "class",
            "code",
            "file",
            "recipe",
            "params",
            "routing_key",
            "user_id",
            "xfail_reason",
            "markers",
            "note",
        }
        assert not unknown, f"{raw.get('name')}: unknown keys {sorted(unknown)}"
        assert ("file" in raw) != ("recipe" in raw), f"{raw['name']}: give exactly one of file and recipe"
        entries.append(
            Entry(
                name=raw["name"],
                attack_class=raw["class"],
                code=raw["code"],
                file=raw.get("file"),
                recipe=raw.get("recipe"),
                params=raw.get("params", {}),
                routing_key=raw.get("routing_key", "ZA"),
                user_id=raw.get("user_id"),
                xfail_reason=raw.get("xfail_reason"),
                markers=tuple(raw.get("markers", ())),
            )
        )
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), "corpus names must be unique"
    return entries


@dataclass
class Context:
    """What recipes build from: the session PKI, the states' genuine signers, the switch's clock, a setup channel."""

    pki: DevPki
    signers: Mapping[str, Signer]
    now: datetime
    setup: Setup | None = None

    def sign(self, state: str, root: etree._Element) -> bytes:
        """Sign in the profile with `state`'s genuine key."""
        return self.signers[state].sign(root)

    def request(self, sender: str = "ZA", **options: Any) -> etree._Element:
        """A complete firearm request from `sender` (to MZ unless `exports` says otherwise), fresh MessageId."""
        options.setdefault("exports", TO_MZ)
        options.setdefault("created_at", self.now)
        return samples.trace_request(sender, **options)

    def signed_request(self, sender: str = "ZA", **options: Any) -> bytes:
        """`request`, signed by `sender`."""
        return self.sign(sender, self.request(sender, **options))

    def reply(self, kind: str, sender: str, trace_id: str, **fields: Any) -> etree._Element:
        """A message within a trace, created now."""
        return samples.reply(kind, sender, trace_id, created_at=self.now, **fields)

    async def accepted(self, state: str, message: etree._Element | bytes) -> Outcome:
        """Send a setup message through the switch; it must be accepted."""
        assert self.setup is not None, "this recipe needs the switch"
        outcome = await self.setup(state, message)
        assert outcome.outcome == "accepted", f"setup message refused: {outcome.code} {outcome.detail}"
        return outcome


Recipe = Callable[..., Awaitable[Built]]
RECIPES: dict[str, Recipe] = {}


def recipe(function: Recipe) -> Recipe:
    """Register a recipe under its function name."""
    RECIPES[function.__name__] = function
    return function


async def materialize(entry: Entry, ctx: Context) -> bytes:
    """The bytes to publish for `entry`."""
    if entry.file is not None:
        return (HERE / entry.file).read_bytes()
    assert entry.recipe is not None
    build = RECIPES.get(entry.recipe)
    assert build is not None, f"{entry.name}: unknown recipe {entry.recipe}"
    return await build(ctx, **entry.params)


# --------------------------------------------------------------------------------------------- malformed, oversize


@recipe
async def truncate(ctx: Context, *, at: int | None = None, fraction: float | None = None) -> Built:
    """A valid signed request cut at byte `at` (negative: from the end) or at `fraction` of its length."""
    body = ctx.signed_request()
    cut = at if at is not None else int(len(body) * (fraction or 0.0))
    return body[:cut]


@recipe
async def oversize(ctx: Context, *, kind: str, over: int = 1) -> Built:
    """A body `over` bytes past the limit (or at/below it for `over` <= 0), made here rather than committed."""
    size = LIMIT + over
    if kind == "junk":
        return b"A" * size
    if kind == "utf16":
        return ("\ufeff<x>" + "y" * size).encode("utf-16-le")[:size]
    if kind == "signed-padded":  # a genuine signed request with whitespace after the root: same signature
        body = ctx.signed_request()
        return body + b"\n" * (size - len(body))
    if kind == "signed-huge-value":  # a value big enough that the signed document passes the limit
        return ctx.signed_request(notes="Z" * size)
    if kind == "entity-bomb":
        head = b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "' + b"a" * 64 + b'">]><t>'
        return head + b"&a;" * ((size - len(head)) // 3 + 1)
    if kind == "deflated-looking":
        return gzip.compress(ctx.signed_request()) + b"\0" * size
    if kind == "photo":  # one maximal photograph is fine, three are not
        root = ctx.request()
        firearm = root.find(T + "Firearm")
        assert firearm is not None
        for _ in range(3):
            photo = etree.SubElement(firearm, T + "Photo", mediaType="image/jpeg", sha256="0" * 64)
            photo.text = "QUFB" * (size // 12)
        return ctx.sign("ZA", root)
    raise ValueError(kind)


@recipe
async def nesting(ctx: Context, *, depth: int, inside: bool = False) -> Built:
    """Elements nested `depth` deep: alone, or inside the Circumstances of a signed request."""
    inner = b"<t:x>" * depth + b"</t:x>" * depth
    if not inside:
        return b'<t:TraceRequest xmlns:t="urn:itrace:1">' + inner + b"</t:TraceRequest>"
    return fm.inject(ctx.signed_request(), b"</t:Circumstances>", inner)


@recipe
async def wide(ctx: Context, *, kind: str, count: int) -> Built:
    """Many attributes on the root or many children, added after signing: parses, is refused by the schema.

    (Many unused namespace declarations are not here: exclusive c14n drops them, so the signature still holds and
    the message is rightly accepted.)
    """
    body = ctx.signed_request()
    if kind == "attributes":
        extra = b"".join(b' a%d="v"' % i for i in range(count))
        return fm.inject(body, b'xmlns:t="urn:itrace:1"', extra, after=True)
    if kind == "children":
        return fm.inject(body, b"</t:Firearm>", b"<t:Type>pistol</t:Type>" * count)
    raise ValueError(kind)


EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _declarations(count: int, tag: str = "") -> bytes:
    """`count` unused namespace declarations (prefixes unique to `tag`)."""
    return b"".join(b' xmlns:u%s%d="urn:unused:%d"' % (tag.encode(), i, i) for i in range(count))


@recipe
async def namespace_flood(ctx: Context, *, spread: str, count: int, c14n: str = "exclusive", where: str = "") -> Built:
    """Many unused namespace declarations (on the root, or on every element) with a canonicalisation that would
    have to render them all: inclusive c14n for SignedInfo, or an `InclusiveNamespaces` prefix list in the
    exclusive-c14n transform or CanonicalizationMethod. No private key is needed: the cost came before any digest."""

    def change(root: etree._Element) -> None:
        signed_info = fm.signature_of(root).find(fm.D + "SignedInfo")
        assert signed_info is not None
        method = signed_info.find(fm.D + "CanonicalizationMethod")
        assert method is not None
        if c14n == "inclusive":
            method.set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
        elif c14n == "prefix-list":
            holder = method if where == "signed-info" else signed_info.findall(f".//{fm.D}Transform")[-1]
            prefixes = " ".join(f"u{i}" for i in range(min(count, 4000))) or "t"
            etree.SubElement(holder, f"{{{EXC_C14N_NS}}}InclusiveNamespaces", PrefixList=prefixes)

    body = fm.edit(ctx.signed_request(), change)
    if spread == "root":
        return fm.inject(body, b'xmlns:t="urn:itrace:1"', _declarations(count), after=True)
    if spread == "every-element":
        return re.sub(rb"<(t:[A-Za-z]+)(?=[ >/])", lambda m: b"<" + m.group(1) + _declarations(count, "e"), body)
    if spread == "none":
        return body
    raise ValueError(spread)


@recipe
async def long_name(ctx: Context, *, length: int, where: str) -> Built:
    """An element or attribute name of `length` characters in a signed request."""
    name = b"n" * length
    body = ctx.signed_request()
    if where == "element":
        return fm.inject(body, b"<t:Firearm>", b"<t:" + name + b"/>", after=True)
    return fm.inject(body, b'xmlns:t="urn:itrace:1"', b" " + name + b'="1"', after=True)


@recipe
async def junk(ctx: Context, *, kind: str, size: int = 4096, seed: int = 1) -> Built:
    """Binary junk made here (seeded, so every run sends the same bytes)."""
    rng = random.Random(seed)
    if kind == "random":
        return bytes(rng.getrandbits(8) for _ in range(size))
    if kind == "gzip":
        return gzip.compress(ctx.signed_request())
    if kind == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("message.xml", ctx.signed_request())
        return out.getvalue()
    if kind == "ascii-noise":
        return bytes(rng.choice(b"<>/=\"'?!&;#[]abcxyz \n") for _ in range(size))
    raise ValueError(kind)


# --------------------------------------------------------------------------------------- injected after signing


@recipe
async def inject_bytes(ctx: Context, *, anchor: str, insert: str, after: bool = False) -> Built:
    """Insert `insert` before (or after) the first `anchor` of a genuine signed request (comments, PIs, refs...)."""
    return fm.inject(ctx.signed_request(), anchor.encode(), insert.encode(), after=after)


@recipe
async def replace_bytes(ctx: Context, *, old: str, new: str, count: int = 1) -> Built:
    """Replace bytes of a genuine signed request after signing."""
    body = ctx.signed_request()
    assert old.encode() in body, old
    return body.replace(old.encode(), new.encode(), count)


@recipe
async def prolog(ctx: Context, *, text: str) -> Built:
    """Put `text` (a DOCTYPE, a PI, a comment) between the XML declaration and the root of a signed request."""
    return fm.prepend_prolog(ctx.signed_request(), text.encode())


@recipe
async def append(ctx: Context, *, text: str) -> Built:
    """Bytes after the root element of a genuine signed request."""
    return ctx.signed_request() + text.encode("utf-8", "surrogateescape")


@recipe
async def reencode(ctx: Context, *, encoding: str, bom: bool, declare: str | None = None) -> Built:
    """A genuine signed request re-encoded (UTF-16/32, Latin-1...), with or without BOM and declaration."""
    body = ctx.signed_request(notes="Café São Tomé")
    text = body.decode("utf-8")
    if declare is not None:
        text = text.replace("encoding='UTF-8'", f"encoding='{declare}'", 1)
    data = text.encode(encoding)
    marks = {
        "utf-16-le": b"\xff\xfe",
        "utf-16-be": b"\xfe\xff",
        "utf-32-le": b"\xff\xfe\0\0",
        "utf-32-be": b"\0\0\xfe\xff",
    }
    return (marks.get(encoding, b"\xef\xbb\xbf") if bom else b"") + data


# --------------------------------------------------------------------------------------------- signature profile


@recipe
async def unsigned(ctx: Context, *, kind: str = "request", strip: bool = False) -> Built:
    """A well-formed, schema-valid message without a signature (or with the signature cut away)."""
    if strip:
        return fm.edit(ctx.signed_request(), lambda root: root.remove(fm.signature_of(root)))
    root = ctx.request() if kind == "request" else samples.message(kind, "ZA", created_at=ctx.now)
    return fm.serialize(root)


@recipe
async def altered(ctx: Context, *, path: str, value: str) -> Built:
    """A genuine signed request with one value changed after signing."""
    return fm.alter_text(ctx.signed_request(), path, value)


@recipe
async def altered_signature(ctx: Context, *, target: str) -> Built:
    """A genuine signed request with SignatureValue or DigestValue changed."""
    return fm.alter_signature_text(ctx.signed_request(), target, fm.flip_base64)


@recipe
async def reformatted(ctx: Context, *, how: str) -> Built:
    """A genuine signed request re-serialized in a way exclusive c14n does not forgive."""
    body = ctx.signed_request()
    if how == "indent":
        root = fm.parse(body)
        etree.indent(root)
        return fm.serialize(root)
    if how == "prefix":
        return body.replace(b"<t:", b"<x:").replace(b"</t:", b"</x:").replace(b"xmlns:t=", b"xmlns:x=")
    if how == "default-namespace":
        return body.replace(b"<t:", b"<").replace(b"</t:", b"</").replace(b"xmlns:t=", b"xmlns=")
    raise ValueError(how)


@recipe
async def algorithm(ctx: Context, *, path: str, uri: str) -> Built:
    """A genuine signed request whose algorithm URI at `path` is replaced after signing."""
    return fm.set_algorithm(ctx.signed_request(), path, uri)


@recipe
async def genuine_algorithm(
    ctx: Context,
    *,
    state: str = "ZA",
    method: str,
    digest: str = "sha256",
    c14n: str = EXC_C14N,
    legacy: bool = False,
) -> Built:
    """A request genuinely signed by `state`'s own key and certificate, in an algorithm outside the profile."""
    key, cert = fm.material(ctx.pki, state)
    return fm.sign_raw(ctx.request(state), key, [cert], method=method, digest=digest, c14n=c14n, legacy=legacy)


@recipe
async def weak(ctx: Context, *, state: str) -> Built:
    """`tests.forge.weak_sign`: SHA-1 throughout (rsa-sha1 or ecdsa-sha1 by the state's key)."""
    return forge.weak_sign(ctx.request(state), ctx.pki, state)


@recipe
async def hmac(ctx: Context, *, method: str, with_cert: bool = False) -> Built:
    """An HMAC 'signature' with a secret anyone could know, optionally beside a genuine certificate."""
    root = ctx.request()
    body = fm.sign_raw(root, b"ZZMARK-shared-secret", method=method)
    if with_cert:
        _, cert = fm.material(ctx.pki, "ZA")
        body = fm.replace_key_info(body, lambda info: fm.key_info_certificate(info, fm.der_b64(cert)))
    return body


@recipe
async def dsa_signed(ctx: Context, *, method: str = "dsa-sha256") -> Built:
    """A genuine DSA signature: a DSA key certified for ZA by the configured CA (DSA is outside the profile)."""
    key = dsa.generate_private_key(key_size=2048)
    start, end = fm.days(ctx.now, -1, 30)
    _, cert = fm.certificate(
        issuer=fm.dev_ca(ctx.pki), countries=["ZA"], common_name="ZA", not_before=start, not_after=end, key=key
    )
    return fm.sign_raw(ctx.request(), key, [cert], method=method)


def _transform(spec: str) -> str | etree._Element:
    """A transform URI, or a ready-made transform element for the named special ones."""
    if spec == "xslt":
        return fm.xslt_transform("ZZMARK")
    if spec == "xpath":
        return fm.xpath_transform("not(ancestor-or-self::t:SerialNumber)")
    if spec == "xpath-filter2":
        return fm.xpath_transform("//*[local-name()='SerialNumber']", fm.XPATH_FILTER2)
    return spec


@recipe
async def transforms(ctx: Context, *, chain: list[str]) -> Built:
    """A genuine signed request whose Reference transforms are replaced by `chain`."""
    return fm.set_transforms(ctx.signed_request(), [_transform(spec) for spec in chain])


@recipe
async def reference_uri(ctx: Context, *, uri: str, root_id: str | None = None) -> Built:
    """A genuine signed request whose Reference points elsewhere (the root may carry an Id to point at)."""
    body = fm.set_reference_uri(ctx.signed_request(), uri)
    if root_id is not None:
        body = fm.edit(body, lambda root: root.set("Id", root_id))
    return body


@recipe
async def fragment_signed(ctx: Context) -> Built:
    """A request genuinely signed by ZA over a fragment (`URI="#..."`), not the whole document."""
    key, cert = fm.material(ctx.pki, "ZA")
    root = ctx.request()
    root.set("Id", "signed-part")
    return fm.sign_raw(root, key, [cert])


@recipe
async def two_references(ctx: Context, *, uri: str) -> Built:
    """A genuine signed request with a second Reference."""
    return fm.duplicate_reference(ctx.signed_request(), uri)


@recipe
async def signature_object(ctx: Context, *, content: str) -> Built:
    """A genuine signed request with a ds:Object (free text, or a manifest) added to its signature."""

    def change(root: etree._Element) -> None:
        holder = etree.SubElement(fm.signature_of(root), fm.D + "Object")
        if content == "manifest":
            manifest = etree.SubElement(holder, fm.D + "Manifest")
            reference = etree.SubElement(manifest, fm.D + "Reference", URI="http://127.0.0.1:9/ZZMARK")
            etree.SubElement(reference, fm.D + "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
            etree.SubElement(reference, fm.D + "DigestValue").text = "AAAA"
        else:
            holder.text = content

    return fm.edit(ctx.signed_request(), change)


@recipe
async def signed_info_edit(ctx: Context, *, what: str) -> Built:
    """SignedInfo made odd after signing: no Reference, no DigestMethod, an HMACOutputLength on an RSA method."""

    def change(root: etree._Element) -> None:
        signed_info = fm.signature_of(root).find(fm.D + "SignedInfo")
        assert signed_info is not None
        if what == "no-reference":
            reference = signed_info.find(fm.D + "Reference")
            assert reference is not None
            signed_info.remove(reference)
        elif what == "no-digest-method":
            method = signed_info.find(f"{fm.D}Reference/{fm.D}DigestMethod")
            assert method is not None
            method.getparent().remove(method)  # type: ignore[union-attr]
        elif what == "hmac-output-length":
            method = signed_info.find(fm.D + "SignatureMethod")
            assert method is not None
            etree.SubElement(method, fm.D + "HMACOutputLength").text = "8"
        else:
            raise ValueError(what)

    return fm.edit(ctx.signed_request(), change)


# ------------------------------------------------------------------------------------------------ key confusion


@recipe
async def key_info(ctx: Context, *, variant: str) -> Built:
    """A genuine ZA signature whose KeyInfo is replaced by `variant` (key confusion attempts)."""
    key, cert = fm.material(ctx.pki, "ZA")
    body = ctx.signed_request()
    own = fm.der_b64(cert)
    if variant == "key-value-only":
        return fm.sign_raw(ctx.request(), key, [], key_value=True)
    if variant == "key-value-and-cert":
        return fm.sign_raw(ctx.request(), key, [cert], key_value=True)
    if variant == "chain-with-ca":
        return fm.sign_raw(ctx.request(), key, [cert, ctx.pki.load_ca_cert()])
    if variant == "none":
        return fm.remove_key_info(body)
    if variant == "stranger-with-genuine-cert":  # the stranger's EC signature beside ZA's RSA certificate
        return forge.swap_key_info(forge.stranger("ZA", ctx.now).sign(ctx.request()), ctx.signers["ZA"])
    if variant == "stranger-ec-with-genuine-mz-cert":  # same key type: only the signature value can tell
        claim = ctx.request("MZ", exports=[("MZ", "BR", "2019-06-14")])
        return forge.swap_key_info(forge.stranger("MZ", ctx.now).sign(claim), ctx.signers["MZ"])
    if variant in ("other-state-cert", "other-state-cert-claiming-it"):
        other = fm.der_b64(ctx.signers["MZ"].certificate)
        swapped = fm.replace_key_info(body, lambda info: fm.key_info_certificate(info, other))
        return fm.alter_text(swapped, "Header/Sender", "MZ") if variant.endswith("claiming-it") else swapped
    if variant == "gateway-cert":
        gateway = Signer.from_files(ctx.pki.gateway_key_path, ctx.pki.gateway_cert_path)
        return fm.replace_key_info(body, lambda info: fm.key_info_certificate(info, fm.der_b64(gateway.certificate)))

    def build(info: etree._Element) -> None:
        d = fm.D
        if variant == "key-name-only":
            etree.SubElement(info, d + "KeyName").text = "ZA national point of contact ZZMARK"
        elif variant == "key-name-and-cert":
            etree.SubElement(info, d + "KeyName").text = "ZZMARK"
            fm.key_info_certificate(info, own)
        elif variant == "retrieval-method":
            etree.SubElement(
                info, d + "RetrievalMethod", URI="http://127.0.0.1:9/ZZMARK.cer", Type=fm.DS_NS + "rawX509Certificate"
            )
        elif variant == "retrieval-method-and-cert":
            fm.key_info_certificate(info, own)
            etree.SubElement(info, d + "RetrievalMethod", URI="file:///etc/passwd")
        elif variant == "two-certs-same":
            fm.key_info_certificate(info, own, own)
        elif variant == "two-x509data":
            fm.key_info_certificate(info, own)
            fm.key_info_certificate(info, own)
        elif variant in ("issuer-serial", "subject-name", "ski"):
            fm.key_info_certificate(info, own)
            data = info[0]
            if variant == "issuer-serial":
                serial = etree.SubElement(data, d + "X509IssuerSerial")
                etree.SubElement(serial, d + "X509IssuerName").text = "CN=ZZMARK"
                etree.SubElement(serial, d + "X509SerialNumber").text = "1"
            elif variant == "subject-name":
                etree.SubElement(data, d + "X509SubjectName").text = "CN=ZZMARK, C=ZA"
            else:
                etree.SubElement(data, d + "X509SKI").text = "AAAA"
        elif variant == "pgp-data":
            pgp = etree.SubElement(info, d + "PGPData")
            etree.SubElement(pgp, d + "PGPKeyID").text = "AAAA"
        elif variant == "spki-data":
            spki = etree.SubElement(info, d + "SPKIData")
            etree.SubElement(spki, d + "SPKISexp").text = "AAAA"
        elif variant == "mgmt-data":
            etree.SubElement(info, d + "MgmtData").text = "ZZMARK"
        elif variant == "empty":
            pass
        elif variant == "garbage-base64":
            fm.key_info_certificate(info, "!!ZZMARK!!")
        elif variant == "pem-text":
            pem = ctx.signers["ZA"].certificate.public_bytes(Encoding.PEM).decode()
            fm.key_info_certificate(info, pem)
        elif variant == "truncated-der":
            fm.key_info_certificate(info, own[: len(own) // 2 // 4 * 4])
        elif variant == "empty-cert":
            fm.key_info_certificate(info, "")
        elif variant == "not-a-certificate":
            fm.key_info_certificate(info, "WlpNQVJLIG5vdCBhIGNlcnRpZmljYXRl")
        else:
            raise ValueError(variant)

    return fm.replace_key_info(body, build)


# ---------------------------------------------------------------------------------------------- certificates


@recipe
async def certificate(ctx: Context, *, variant: str) -> Built:
    """A request signed in the profile, but with a certificate the gateway must not trust for ZA."""
    now = ctx.now
    ca = fm.dev_ca(ctx.pki)
    valid = fm.days(now, -1, 30)
    if variant == "rogue-ca":
        return forge.stranger("ZA", now).sign(ctx.request())
    if variant == "expired":
        return forge.expired(ctx.pki, "ZA", now).sign(ctx.request())
    if variant == "ca-as-signer":
        return Signer.from_objects(*ca).sign(ctx.request())
    options: dict[str, Any] = {"countries": ["ZA"], "common_name": "ZA", "issuer": ca}
    if variant == "self-signed":
        options["issuer"] = None
    elif variant == "other-country":
        options["countries"] = ["MZ"]
    elif variant == "unconnected-country":
        options["countries"] = ["FR"]
    elif variant == "no-country":
        options["countries"] = []
    elif variant == "two-countries":
        options["countries"] = ["ZA", "MZ"]
    elif variant == "no-digital-signature":
        options["digital_signature"] = False
    elif variant == "leaf-marked-ca":
        options["is_ca"] = True
    elif variant == "not-yet-valid":
        valid = fm.days(now, 1, 30)
    elif variant == "expired-long-ago":
        valid = fm.days(now, -800, -400)
    elif variant == "expired-rogue":
        options["issuer"] = None
        valid = fm.days(now, -30, -1)
    elif variant == "spoofed-issuer-name":  # issuer name copied from the configured CA, signed by another key
        rogue = fm.certificate(
            issuer=None, countries=[], common_name="rogue", not_before=valid[0], not_after=valid[1], is_ca=True
        )
        options["issuer"] = rogue
        options["issuer_name"] = ca[1].subject
    elif variant == "unconfigured-intermediate":
        options["issuer"] = fm.certificate(
            issuer=ca, countries=["ZA"], common_name="ZA sub-CA", not_before=valid[0], not_after=valid[1], is_ca=True
        )
    else:
        raise ValueError(variant)
    pair = fm.certificate(not_before=valid[0], not_after=valid[1], **options)
    return fm.signer_of(pair).sign(ctx.request())


# ------------------------------------------------------------------------------------------ signature wrapping


@recipe
async def xsw(ctx: Context, *, variant: int) -> Built:
    """XSW`variant` (tests.forge_more.xsw) on a ZA request to MZ, the evil copy rerouted to BR with another serial."""
    message_id = str(uuid.uuid4())
    signed = ctx.signed_request(message_id=message_id)
    evil = ctx.request(message_id=message_id, exports=[("ZA", "BR", "2024-01-01")], serial="ZZMARK1")
    return fm.xsw(variant, signed, evil)


@recipe
async def wrapping(ctx: Context, *, variant: str) -> Built:
    """Other ways to move a genuine signature: into the Header, first, twice, around evil content."""
    message_id = str(uuid.uuid4())
    signed = ctx.signed_request(message_id=message_id)
    evil = ctx.request(message_id=message_id, exports=[("ZA", "BR", "2024-01-01")], serial="ZZMARK1")
    if variant == "forge-wrap":
        return forge.wrap_keeping_signature(signed, evil)
    if variant == "signed-twice":
        return ctx.sign("ZA", fm.parse(signed))
    root = fm.parse(signed)
    signature = fm.signature_of(root)
    if variant == "evil-content-genuine-signature":
        evil.append(signature)
        return fm.serialize(evil)
    if variant == "signature-in-header":
        header = root.find(T + "Header")
        assert header is not None
        header.append(signature)
    elif variant == "signature-first":
        root.insert(0, signature)
    elif variant == "signature-duplicated":
        root.append(etree.fromstring(etree.tostring(signature)))
    elif variant == "signature-nested-in-value":
        circumstances = root.find(f"{T}Illicitness/{T}Circumstances")
        assert circumstances is not None
        circumstances.append(signature)
    elif variant == "signature-as-root":
        holder = etree.SubElement(signature, fm.D + "Object")
        root.remove(signature)
        holder.append(root)
        return fm.serialize(signature)
    elif variant == "element-after-signature":
        etree.SubElement(root, T + "IncompleteJustification").text = "ZZMARK"
    else:
        raise ValueError(variant)
    return fm.serialize(root)


# ----------------------------------------------------------------------------------- freshness, impersonation


@recipe
async def stale(ctx: Context, *, offset_seconds: float | None = None, created_at: str | None = None) -> Built:
    """A genuine request whose CreatedAt is `offset_seconds` from now, or the literal `created_at`."""
    root = ctx.request()
    node = root.find(f"{T}Header/{T}CreatedAt")
    assert node is not None
    node.text = created_at if created_at is not None else stamp(ctx.now + timedelta(seconds=offset_seconds or 0))
    return ctx.sign("ZA", root)


@recipe
async def impersonate(ctx: Context, *, signer: str, claims: str, kind: str = "request") -> Built:
    """A message claiming `claims` in Header/Sender, signed in the profile with `signer`'s genuine key."""
    if signer == "GATEWAY":
        signing = Signer.from_files(ctx.pki.gateway_key_path, ctx.pki.gateway_cert_path)
    else:
        signing = ctx.signers[signer]
    if kind == "request":
        exporter = "ZA" if claims == "GATEWAY" else claims
        root = samples.trace_request(claims, exports=[(exporter, "BR", "2019-06-14")], created_at=ctx.now)
    else:
        root = samples.message(kind, claims, created_at=ctx.now)
    return signing.sign(root)


@recipe
async def replayed(ctx: Context) -> Built:
    """A genuine request, first published (and accepted) as ZA; the same bytes are then published again."""
    body = ctx.signed_request()
    await ctx.accepted("ZA", body)
    return body


# ----------------------------------------------------------------------------------------- traces and lifecycle


async def _trace(ctx: Context, status: str) -> str:
    """A trace ZA asked of MZ, brought to `status` through the switch; returns its TraceId."""
    opened = await ctx.accepted("ZA", ctx.request())
    trace_id = opened.trace_id
    assert trace_id is not None
    if status == "delivered":
        return trace_id
    if status == "returned":
        await ctx.accepted("MZ", ctx.reply("ReturnForCompletion", "MZ", trace_id, MissingItem=["caliber"]))
        return trace_id
    if status == "withdrawn":
        await ctx.accepted("ZA", ctx.reply("Withdrawal", "ZA", trace_id, Text="No longer needed."))
        return trace_id
    await ctx.accepted("MZ", ctx.reply("Acknowledgement", "MZ", trace_id))
    if status == "acknowledged":
        return trace_id
    if status == "responded":
        await ctx.accepted("MZ", samples.trace_response("MZ", trace_id, created_at=ctx.now))
    elif status == "refused":
        refusal = ctx.reply("Refusal", "MZ", trace_id, Reason="national-security", Text="Withheld.")
        await ctx.accepted("MZ", refusal)
    else:
        raise ValueError(status)
    return trace_id


def _in_trace(ctx: Context, kind: str, sender: str, trace_id: str) -> etree._Element:
    """A well-formed `kind` for `trace_id` from `sender`, with the body its schema asks for."""
    if kind == "TraceResponse":
        return samples.trace_response(sender, trace_id, created_at=ctx.now)
    if kind == "TraceRequest":  # a resubmission
        return ctx.request(sender, trace_id=trace_id, resubmits=trace_id)
    bodies: dict[str, dict[str, Any]] = {
        "Acknowledgement": {},
        "ReturnForCompletion": {"MissingItem": ["caliber"]},
        "DelayNotice": {"Reason": "ongoing-investigation", "Text": "Later.", "ExpectedBy": "2027-01-01"},
        "Refusal": {"Reason": "national-security", "Text": "Withheld."},
        "Comment": {"Text": "A remark."},
        "Withdrawal": {"Text": "No longer needed."},
        "StatusQuery": {},
    }
    return ctx.reply(kind, sender, trace_id, **bodies[kind])


@recipe
async def in_trace(ctx: Context, *, status: str, kind: str, sender: str, resubmits: str | None = None) -> Built:
    """`kind` from `sender` in a ZA→MZ trace brought to `status` first (wrong party, wrong moment)."""
    trace_id = await _trace(ctx, status)
    root = _in_trace(ctx, kind, sender, trace_id)
    if resubmits == "random":
        node = root.find(T + "Resubmits")
        assert node is not None
        node.text = str(uuid.uuid4())
    return ctx.sign(sender, root)


@recipe
async def unknown_trace(ctx: Context, *, kind: str, sender: str = "MZ", trace_id: str = "random") -> Built:
    """`kind` naming a trace the switch never saw (or naming none)."""
    named = str(uuid.uuid4()) if trace_id == "random" else "00000000-0000-4000-8000-000000000000"
    root = _in_trace(ctx, kind, sender, named)
    if trace_id == "none":
        header = root.find(T + "Header")
        assert header is not None
        header.remove(header[-1])
    return ctx.sign(sender, root)


@recipe
async def trace_id_reused(ctx: Context) -> Built:
    """MZ opens a new trace with the MessageId of ZA's open trace."""
    trace_id = await _trace(ctx, "delivered")
    root = samples.trace_request("MZ", exports=[("MZ", "BR", "2019-06-14")], message_id=trace_id, created_at=ctx.now)
    return ctx.sign("MZ", root)


@recipe
async def gateway_type(ctx: Context, *, example: str, signer: str = "ZA", sender: str = "ZA") -> Built:
    """A gateway message type (Delivery, Receipt...) from the contract's examples, published by a state."""
    root = etree.parse(str(EXAMPLES / example)).getroot()
    header = root.find(T + "Header")
    assert header is not None
    header.findall(T + "MessageId")[0].text = str(uuid.uuid4())
    header.findall(T + "CreatedAt")[0].text = stamp(ctx.now)
    header.findall(T + "Sender")[0].text = sender
    if signer == "GATEWAY":
        return Signer.from_files(ctx.pki.gateway_key_path, ctx.pki.gateway_cert_path).sign(root)
    return ctx.sign(signer, root)


# ------------------------------------------------------------------------------------- schema, reasons, content


def _schema_variant(ctx: Context, variant: str) -> tuple[str, etree._Element]:
    """(signing state, an unsigned message that breaks the schema in the way `variant` names)."""
    root = ctx.request()
    firearm = root.find(T + "Firearm")
    header = root.find(T + "Header")
    assert firearm is not None and header is not None

    def sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
        child = etree.SubElement(parent, name if name.startswith("{") else T + name, attrs)
        child.text = text
        return child

    def header_text(name: str, value: str) -> None:
        node = header.find(T + name)
        assert node is not None
        node.text = value

    simple: dict[str, Callable[[], object]] = {
        "unknown-element": lambda: sub(firearm, "Silencer", "ZZMARK"),
        "element-in-no-namespace": lambda: sub(firearm, "{}Make", "ZZMARK"),
        "element-in-foreign-namespace": lambda: sub(firearm, "{urn:ZZMARK}Make", "ZZMARK"),
        "missing-header": lambda: root.remove(header),
        "missing-confidentiality": lambda: root.remove(root.find(T + "Confidentiality")),  # type: ignore[arg-type]
        "message-id-not-uuid": lambda: header_text("MessageId", "ZZMARK-not-a-uuid"),
        "message-id-empty": lambda: header_text("MessageId", ""),
        "message-id-too-long": lambda: header_text("MessageId", str(uuid.uuid4()) + "0"),
        "created-at-no-zone": lambda: header_text("CreatedAt", ctx.now.strftime("%Y-%m-%dT%H:%M:%S")),
        "created-at-impossible-date": lambda: header_text("CreatedAt", "2026-02-30T10:00:00Z"),
        "sender-lowercase": lambda: header_text("Sender", "za"),
        "sender-three-letters": lambda: header_text("Sender", "ZAF"),
        "sender-empty": lambda: header_text("Sender", ""),
        "trace-id-not-uuid": lambda: sub(header, "TraceId", "ZZMARK"),
        "unknown-attribute": lambda: root.set("evil", "ZZMARK"),
        "xsi-type": lambda: firearm.set(f"{{{XSI}}}type", "t:AmmunitionType"),
        "xsi-nil": lambda: firearm.set(f"{{{XSI}}}nil", "true"),
        "confidentiality-not-boolean": lambda: root.find(T + "Confidentiality").set("guaranteed", "ZZMARK"),  # type: ignore[union-attr]
        "text-in-element-only": lambda: setattr(firearm, "text", "ZZMARK"),
        "value-too-long": lambda: setattr(root.find(f"{T}Illicitness/{T}Circumstances"), "text", "ZZMARK" * 700),
        "photo-not-base64": lambda: sub(firearm, "Photo", "ZZMARK!!", mediaType="image/jpeg", sha256="0" * 64),
        "photo-not-image": lambda: sub(firearm, "Photo", "QUFB", mediaType="text/html", sha256="0" * 64),
        "import-mark-year-two-digits": lambda: firearm.insert(5, etree.fromstring(_SHORT_YEAR)),
        "export-date-impossible": lambda: setattr(root.find(f"{T}ExportRecord/{T}Date"), "text", "2019-02-30"),
        "quantity-negative": lambda: setattr(root.find(f"{T}Recovery/{T}Quantity"), "text", "-1"),
        "firearm-and-ammunition": lambda: root.insert(2, etree.fromstring(_AMMUNITION)),
        "two-firearms": lambda: root.insert(2, etree.fromstring(etree.tostring(firearm))),
        "header-fields-swapped": lambda: header.insert(0, header[2]),
        "body-before-header": lambda: root.append(header),
    }
    if variant in simple:
        simple[variant]()
        return "ZA", root
    trace_id = str(uuid.uuid4())
    if variant == "root-no-namespace":
        plain = etree.tostring(root).replace(b' xmlns:t="urn:itrace:1"', b"", 1)
        return "ZA", etree.fromstring(plain.replace(b"<t:", b"<").replace(b"</t:", b"</"))
    if variant == "root-foreign-namespace":
        return "ZA", etree.fromstring(etree.tostring(root).replace(b"urn:itrace:1", b"urn:ZZMARK", 1))
    roots = {
        "root-unknown-type": "FirearmReport",
        "root-header": "Header",
        "root-record-report": "RecordReport",
        "root-firearm": "Firearm",
    }
    if variant in roots:
        odd = samples.message(roots[variant], "ZA", created_at=ctx.now)
        return "ZA", odd
    replies: dict[str, tuple[str, str, dict[str, Any]]] = {
        "acknowledgement-with-body": ("Acknowledgement", "MZ", {"Text": "ZZMARK"}),
        "return-unknown-item": ("ReturnForCompletion", "MZ", {"MissingItem": ["ZZMARK"]}),
        "return-no-item": ("ReturnForCompletion", "MZ", {"Note": "ZZMARK"}),
        "delay-unknown-reason": ("DelayNotice", "MZ", {"Reason": "ZZMARK", "Text": "x", "ExpectedBy": "2027-01-01"}),
        "delay-without-text": ("DelayNotice", "MZ", {"Reason": "ongoing-investigation", "ExpectedBy": "2027-01-01"}),
        "status-query-bad-role": ("StatusQuery", "ZA", {"Role": "ZZMARK"}),
        "comment-without-text": ("Comment", "ZA", {}),
        "withdrawal-two-texts": ("Withdrawal", "ZA", {"Text": ["a", "b"]}),
    }
    if variant in replies:
        kind, sender, fields = replies[variant]
        return sender, ctx.reply(kind, sender, trace_id, **fields)
    response = samples.trace_response("MZ", trace_id, created_at=ctx.now, restrictions=["ZZMARK"])
    if variant == "response-unknown-restriction":
        return "MZ", response
    if variant == "response-two-outcomes":
        response = samples.trace_response("MZ", trace_id, created_at=ctx.now)
        outcome = response.find(T + "Outcome")
        assert outcome is not None
        sub(outcome, "NotFound")
        return "MZ", response
    raise ValueError(variant)


_SHORT_YEAR = b'<t:ImportMark xmlns:t="urn:itrace:1"><t:State>BR</t:State><t:Year>14</t:Year></t:ImportMark>'
_AMMUNITION = (
    b'<t:Ammunition xmlns:t="urn:itrace:1"><t:Manufacturer>PMP</t:Manufacturer>'
    b"<t:CountryOfManufacture>ZA</t:CountryOfManufacture><t:LotNumber>L-1</t:LotNumber></t:Ammunition>"
)


@recipe
async def schema(ctx: Context, *, variant: str) -> Built:
    """A message signed in the profile by its sender, that breaks the contract's schema."""
    state, root = _schema_variant(ctx, variant)
    return ctx.sign(state, root)


@recipe
async def reason_missing(ctx: Context, *, kind: str) -> Built:
    """A delay, refusal or partial response without its reason code (8.3.4.2)."""
    trace_id = str(uuid.uuid4())
    if kind == "Partial":
        root = samples.trace_response("MZ", trace_id, created_at=ctx.now, partial=True, partial_reason=None)
    elif kind == "DelayNotice":
        root = ctx.reply(kind, "MZ", trace_id, Text="Later.", ExpectedBy="2027-01-01")
    else:
        root = ctx.reply(kind, "MZ", trace_id, Text="Withheld.")
    return ctx.sign("MZ", root)


@recipe
async def incomplete(ctx: Context, *, omit: list[str], ammunition: bool = False) -> Built:
    """A request lacking essential items (6.3, 8.2) and not saying why."""
    if not ammunition:
        return ctx.signed_request(omit=omit)
    root = ctx.request()
    firearm = root.find(T + "Firearm")
    assert firearm is not None
    ammo = etree.fromstring(_AMMUNITION)
    for name in omit:
        node = ammo.find(T + name)
        assert node is not None
        ammo.remove(node)
    root.replace(firearm, ammo)
    return ctx.sign("ZA", root)


@recipe
async def routing(ctx: Context, *, variant: str) -> Built:
    """A request the routing rules of 8.1 cannot deliver."""
    if variant == "to-self":
        return ctx.signed_request(exports=[("MZ", "ZA", "2020-01-01")])
    if variant == "to-unknown-state":
        return ctx.signed_request(exports=[("ZA", "FR", "2020-01-01")])
    if variant == "to-suspended-state":
        return ctx.signed_request(exports=[("ZA", "MW", "2020-01-01")])
    if variant == "no-rule":
        return ctx.signed_request(exports=[], made_in=None, justification="Country of manufacture unknown.")
    if variant == "import-mark-to-self":
        return ctx.signed_request(exports=[], import_marks=[("ZA", 2015)])
    raise ValueError(variant)


def now_utc() -> datetime:
    """The wall clock, to the second (the switch's test clock is set from it)."""
    return datetime.now(UTC).replace(microsecond=0)
