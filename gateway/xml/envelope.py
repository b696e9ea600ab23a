"""Bytes to a parsed element, safely: size cap before parsing, no DTD, no entities, no network, no XInclude.

Also reads the few `Header` fields needed to answer a message that fails later checks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.core.errors import ErrorCode, Refused
from gateway.core.model import NS

XINCLUDE_NAMESPACES = frozenset({"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"})
_XINCLUDE_ELEMENTS = tuple(f"{{{ns}}}*" for ns in sorted(XINCLUDE_NAMESPACES))
_T = f"{{{NS}}}"
_LOCAL = threading.local()
MAX_NAMESPACES_PER_ELEMENT = 32
"""Namespace declarations one element may carry (a contract message needs two or three)."""
MAX_ATTRIBUTES_PER_ELEMENT = 32
"""Attributes one element may carry (the contract's elements have at most three)."""
# Below these counts in the whole body no element can exceed a cap, so the exact count is skipped.
_NS_GATE = MAX_NAMESPACES_PER_ELEMENT
_ATTRIBUTE_GATE = MAX_ATTRIBUTES_PER_ELEMENT


def _parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers serve one thread at a time); it never loads, expands or fetches anything."""
    parser: etree.XMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,
        )
    return parser


@dataclass(frozen=True)
class Envelope:
    """A parsed message: its root element, its type and what could be read of its `Header`."""

    root: etree._Element
    kind: str
    message_id: str | None
    sender: str | None
    trace_id: str | None = None


def _check_size(body: bytes, max_bytes: int) -> None:
    """Refuse an oversize body before any parsing."""
    if len(body) > max_bytes:
        raise Refused(ErrorCode.TOO_LARGE, f"message is {len(body)} bytes; the limit is {max_bytes} bytes")


def _check_encoding(body: bytes) -> None:
    """The contract's bodies are UTF-8; anything else is refused before the parser guesses."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        raise Refused(ErrorCode.MALFORMED_XML, "the body must be UTF-8; a UTF-16 or UTF-32 byte order mark was found")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refused(ErrorCode.MALFORMED_XML, f"the body is not valid UTF-8 (byte offset {err.start})") from err


def _prolog_declares_doctype(body: bytes) -> bool:
    """Whether a `<!DOCTYPE` stands in the prolog (the only place one can), past declarations, PIs and comments."""
    i = 3 if body.startswith(b"\xef\xbb\xbf") else 0
    while (start := body.find(b"<", i)) >= 0:
        if body.startswith(b"<?", start):
            end, skip = body.find(b"?>", start + 2), 2
        elif body.startswith(b"<!--", start):
            end, skip = body.find(b"-->", start + 4), 3
        else:
            return body.startswith(b"<!DOCTYPE", start)
        if end < 0:
            return False
        i = end + skip
    return False


class _Counter:
    """A parser target that counts each element's own namespace declarations and attributes, building nothing."""

    def __init__(self) -> None:
        self.declared = 0  # declarations seen since the last start tag: the next element's own

    def start_ns(self, prefix: str | None, uri: str) -> None:
        """One namespace declaration, reported before the start tag that carries it. (Counted here, not from the
        `nsmap` lxml up to 6.1 passed to `start`: lxml 6.2 passes none, which had let every flood through.)"""
        self.declared += 1
        if self.declared > MAX_NAMESPACES_PER_ELEMENT:
            raise Refused(
                ErrorCode.FORBIDDEN_XML,
                f"an element declares more than {MAX_NAMESPACES_PER_ELEMENT} namespaces; "
                f"the limit is {MAX_NAMESPACES_PER_ELEMENT}",
            )

    def start(self, tag: str, attrib: dict[str, str], nsmap: object = None) -> None:
        """Refuse the first element over a cap (the parse stops there)."""
        self.declared = 0
        if len(attrib) > MAX_ATTRIBUTES_PER_ELEMENT:
            raise Refused(
                ErrorCode.FORBIDDEN_XML,
                f"an element carries {len(attrib)} attributes; the limit is {MAX_ATTRIBUTES_PER_ELEMENT}",
            )

    def end(self, tag: str) -> None:
        """Nothing to do at an end tag."""

    def data(self, data: str | bytes) -> None:
        """Text is not counted."""

    def comment(self, text: str | bytes) -> None:
        """Comments are not counted (the signature check refuses them)."""

    def close(self) -> None:
        """Nothing is built."""


def _check_declarations(body: bytes) -> None:
    """Refuse an element with more namespace declarations or attributes than the caps allow.

    Each declaration is cheap to parse but a canonicalisation may have to render it on every element in its scope;
    the caps keep what any message can cost proportional to its size. The exact count (a second, tree-less parse)
    runs only for a body with enough declarations or attributes in all to exceed a cap somewhere.
    """
    if body.count(b"xmlns") <= _NS_GATE and body.count(b"=") <= _ATTRIBUTE_GATE:
        return
    # lxml-stubs type a target's start() without the nsmap lxml passes to a target that takes it.
    counter: Any = _Counter()
    parser = etree.XMLParser(target=counter, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return  # the tree parse that follows says what is malformed


def _parse(body: bytes) -> etree._ElementTree:
    """Parse with the hardened parser; a syntax error is MALFORMED_XML with its position and kind, never its text."""
    if not body.strip():
        raise Refused(ErrorCode.MALFORMED_XML, "the body is empty")
    if _prolog_declares_doctype(body):
        # Refused before libxml2 sees it: no DTD, internal or external, is ever read or resolved.
        raise Refused(ErrorCode.FORBIDDEN_XML, "a document type declaration (DTD) is not allowed")
    _check_declarations(body)
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as err:
        kind = _error_kind(err)
        if "entity" in kind:
            raise Refused(ErrorCode.FORBIDDEN_XML, "entity references are not allowed") from err
        where = f"line {err.lineno}, column {err.offset}" if err.offset else f"line {err.lineno}"
        raise Refused(ErrorCode.MALFORMED_XML, f"not well-formed XML at {where}: {kind}") from err
    if root is None:
        raise Refused(ErrorCode.MALFORMED_XML, "no root element")
    return root.getroottree()


_ERROR_NAMES = {v: k for k, v in vars(etree.ErrorTypes).items() if k.startswith("ERR_") and isinstance(v, int)}


def _error_kind(err: etree.XMLSyntaxError) -> str:
    """libxml2's name for the error (e.g. "tag name mismatch"): a fixed vocabulary, so no payload text leaks."""
    code = int(getattr(err, "code", 0) or 0)  # lxml's stubs omit `code`
    name = str(_ERROR_NAMES.get(code, "ERR_SYNTAX"))
    return name.removeprefix("ERR_").replace("_", " ").lower()


def _check_forbidden(tree: etree._ElementTree) -> None:
    """Refuse what the contract forbids: DTD, entities, XInclude, processing instructions past the prolog."""
    info = tree.docinfo
    # lxml's stubs lag behind `DocInfo`; read the three DTD traces without trusting their types.
    dtd_traces: tuple[object, ...] = (getattr(info, "doctype", ""), info.internalDTD, info.externalDTD)
    if any(trace not in (None, "") for trace in dtd_traces):
        raise Refused(ErrorCode.FORBIDDEN_XML, "a document type declaration (DTD) is not allowed")
    if info.encoding and info.encoding.upper().replace("_", "-") not in {"UTF-8", "UTF8"}:
        raise Refused(ErrorCode.MALFORMED_XML, f"declared encoding {info.encoding} is not UTF-8")
    root = tree.getroot()
    sibling = root.getnext()
    while sibling is not None:
        if isinstance(sibling, etree._ProcessingInstruction):
            raise Refused(ErrorCode.FORBIDDEN_XML, "a processing instruction after the root element is not allowed")
        sibling = sibling.getnext()
    for node in root.iter(etree.Entity, etree.ProcessingInstruction):
        if isinstance(node, etree._Entity):
            raise Refused(ErrorCode.FORBIDDEN_XML, "entity references are not allowed")
        raise Refused(ErrorCode.FORBIDDEN_XML, "a processing instruction inside the message is not allowed")
    for _ in root.iter(*_XINCLUDE_ELEMENTS):
        raise Refused(ErrorCode.FORBIDDEN_XML, "XInclude is not allowed")


def _header_texts(root: etree._Element) -> dict[str, str]:
    """The first `Header`'s fields by name (the first of each), stripped and capped, empty ones left out; read
    before the schema has vouched for anything, so that a message failing later checks can still be answered."""
    header = next(root.iterchildren(f"{_T}Header"), None)
    found: dict[str, str] = {}
    if header is None:
        return found
    for child in header.iterchildren(etree.Element):
        tag = child.tag
        if isinstance(tag, str) and tag.startswith(_T) and tag[len(_T) :] not in found:
            found[tag[len(_T) :]] = (child.text or "").strip()[:64]
    return {name: value for name, value in found.items() if value}


def open_envelope(body: bytes, *, max_bytes: int) -> Envelope:
    """Turn received bytes into an `Envelope`, or raise `Refused` with the contract's code."""
    _check_size(body, max_bytes)
    _check_encoding(body)
    tree = _parse(body)
    _check_forbidden(tree)
    root = tree.getroot()
    qname = etree.QName(root)
    kind = qname.localname if qname.namespace == NS else f"{{{qname.namespace or ''}}}{qname.localname}"
    header = _header_texts(root)
    return Envelope(
        root=root,
        kind=kind,
        message_id=header.get("MessageId"),
        sender=header.get("Sender"),
        trace_id=header.get("TraceId"),
    )
