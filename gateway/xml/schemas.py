"""XML Schema validation of the wire contract: owns loading `schemas/xsd` once, validating a parsed
message against it with lxml, and turning a failure into a `SCHEMA_INVALID` refusal whose detail names
the element and the fault but never echoes the payload's values.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lxml import etree

from gateway.core.errors import ConfigurationError, ErrorCode, Refused

NAMESPACE = "urn:itrace:1"
DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
ENTRY_POINT = "itrace.xsd"
DETAIL_LIMIT = 300
UNNAMED = "*"
"""How a detail shows an element or attribute name the XSDs do not declare (never the sender's own text)."""

NPC_MESSAGE_TYPES: frozenset[str] = frozenset(
    {
        "TraceRequest",
        "Acknowledgement",
        "ReturnForCompletion",
        "TraceResponse",
        "DelayNotice",
        "Refusal",
        "Comment",
        "Withdrawal",
        "StatusQuery",
    }
)
"""Roots an NPC sends to the gateway (contract 4.1)."""

GATEWAY_MESSAGE_TYPES: frozenset[str] = frozenset(
    {"Delivery", "Receipt", "Rejection", "DeadlineNotice", "StatusReport"}
)
"""Roots the gateway sends to an NPC (contract 4.2)."""

# What a pattern or a simple type means, in words; keyed by the XSDs' own patterns and type names.
_PATTERN_WORDS = {
    "[A-Z]{2}": "a state code (two capital letters)",
    "[A-Z]{2}|GATEWAY": "a state code or GATEWAY",
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}": "a UUID",
    (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
        r"(Z|[+\-][0-9]{2}:[0-9]{2})"
    ): "a date-time with a time zone",
    "[0-9]{4}-[0-9]{2}-[0-9]{2}": "a date (YYYY-MM-DD)",
    "[0-9]{4}": "a four-digit year",
    "true|false": "true or false",
    "[0-9a-fA-F]{64}": "64 hex digits",
    "sha256:[0-9a-f]{12,64}": "sha256: and 12 to 64 lowercase hex digits",
    r"[a-z]+/[a-zA-Z0-9.+\-]+": "a media type",
    r"image/[a-zA-Z0-9.+\-]+": "an image media type",
}
_TYPE_WORDS = {
    "Timestamp": "a date-time with a time zone",
    "dateTime": "a date-time",
    "date": "a date (YYYY-MM-DD)",
    "Date": "a date (YYYY-MM-DD)",
    "Year": "a four-digit year",
    "Flag": "true or false",
    "boolean": "true or false",
    "Count": "a positive whole number",
    "CountOrZero": "a whole number",
    "Millimetres": "a positive number of millimetres (up to 3 decimals)",
    "decimal": "a decimal number",
    "integer": "a whole number",
    "PhotoData": "base64",
    "base64Binary": "base64",
}
_LENGTH_FAULTS = frozenset({"SCHEMAV_CVC_MINLENGTH_VALID", "SCHEMAV_CVC_MAXLENGTH_VALID", "SCHEMAV_CVC_LENGTH_VALID"})
_FIXED_FAULTS = {
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "attribute not allowed here",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "attribute not allowed here",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_1": "must be empty",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "text not allowed here, only child elements",
    "SCHEMAV_CVC_TYPE_3_1_2": "child elements not allowed here, only text",
    "SCHEMAV_CVC_ELT_1": "no declaration for this element",
}
_PHOTO = f"{{{NAMESPACE}}}Photo"  # base64Binary lengths count decoded bytes
_PATH_STEP = re.compile(r"(?P<name>[^\[\]/]+)(?:\[(?P<index>[0-9]+)\])?")
_ATTRIBUTE = re.compile(r"^Element '[^']*', attribute '(?:\{[^}]*\})?([^'{}]+)'")
_REQUIRED_ATTRIBUTE = re.compile(r"The attribute '(?:\{[^}]*\})?([^'{}]+)' is required but missing")
_QUOTED = re.compile(r"'([^']*)'")
_LENGTH_LIMIT = re.compile(r"allowed (maximum|minimum) length of '([0-9]+)'\.?$")
_EXPECTED = re.compile(r"\{([^}]*)\}([A-Za-z_][\w.\-]*)")


@dataclass(frozen=True)
class _Vocabulary:
    """Every name the XSDs declare: only these may appear in a detail besides fixed words."""

    elements: frozenset[str]
    attributes: frozenset[str]
    enumerations: frozenset[str]
    types: frozenset[str]
    roots: frozenset[str]


@dataclass(frozen=True)
class _Fault:
    """One entry of lxml's error log, reduced to what the detail is built from."""

    kind: str
    path: str
    message: str


class _LocalOnly(etree.Resolver):
    """Lets the schema parser read files of the schema directory only: no network, no other file."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        """Refuses (with an empty document) any URL outside the schema directory."""
        if "://" not in system_url or system_url.startswith("file://"):
            candidate = Path(system_url.removeprefix("file://"))
            if not candidate.is_absolute():
                candidate = self._directory / candidate
            if candidate.resolve().parent == self._directory and candidate.is_file():
                return None
        return self.resolve_string("", context, base_url=None)


class SchemaSet:
    """The contract's XSDs, compiled once; `validate` is the pipeline's schema stage."""

    _cache: ClassVar[dict[Path, SchemaSet]] = {}
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, schema: etree.XMLSchema, vocabulary: _Vocabulary) -> None:
        self._schema = schema
        self._vocabulary = vocabulary
        self._lock = threading.Lock()  # an lxml validator's error log is per instance

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaSet:
        """The schema set of `directory` (default: the packaged or the repository's XSDs), built once."""
        where = (directory if directory is not None else _default_directory()).resolve()
        with cls._cache_lock:
            cached = cls._cache.get(where)
            if cached is None:
                cached = cls._cache[where] = cls._build(where)
            return cached

    @classmethod
    def _build(cls, directory: Path) -> SchemaSet:
        """Parses and compiles the XSDs of `directory`; a fault is the administrator's to fix."""
        entry = directory / ENTRY_POINT
        if not entry.is_file():
            raise ConfigurationError(f"{entry}: schema entry point not found")
        parser = _schema_parser(directory)
        try:
            documents = _schema_documents(entry, parser)
            schema = etree.XMLSchema(documents[0])
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as err:
            raise ConfigurationError(f"{directory}: XSDs do not compile: {err}") from err
        return cls(schema, _vocabulary(documents))

    def root_names(self) -> frozenset[str]:
        """Local names of the contract's global elements, that is, its message types."""
        return self._vocabulary.roots

    def validate(self, root: etree._Element) -> None:
        """Returns if `root` is a valid message, else raises `Refused(SCHEMA_INVALID, detail)`."""
        qname = etree.QName(root)
        if qname.namespace != NAMESPACE:
            raise Refused(
                ErrorCode.SCHEMA_INVALID,
                f"/{_label(root, self._vocabulary)}: root element is not in namespace {NAMESPACE}",
            )
        if qname.localname not in self._vocabulary.roots:
            raise Refused(ErrorCode.SCHEMA_INVALID, f"/*: the root element is not a message type of {NAMESPACE}")
        with self._lock:
            if self._schema.validate(root):
                return
            faults = [_fault(entry) for entry in self._schema.error_log]  # type: ignore[attr-defined]
        raise Refused(ErrorCode.SCHEMA_INVALID, _detail(root, faults, self._vocabulary))


def _default_directory() -> Path:
    """`gateway/_xsd` in an installed wheel, else the repository's `schemas/xsd`."""
    package = Path(__file__).resolve().parents[1]  # gateway/
    packaged = package / "_xsd"
    if packaged.is_dir():
        return packaged
    return package.parent / "schemas" / "xsd"


def _schema_parser(directory: Path) -> etree.XMLParser:
    """A parser that reads no DTD, expands no entity and fetches nothing outside `directory`."""
    parser = etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    parser.resolvers.add(_LocalOnly(directory))
    return parser


def _schema_documents(entry: Path, parser: etree.XMLParser) -> list[etree._ElementTree]:
    """The entry XSD first, then every XSD it includes or imports, each once, all from its directory."""
    seen: dict[Path, etree._ElementTree] = {}
    pending = [entry.resolve()]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = etree.parse(str(path), parser)
        for ref in seen[path].getroot().iterchildren(f"{{{XSD_NAMESPACE}}}include", f"{{{XSD_NAMESPACE}}}import"):
            location = ref.get("schemaLocation")
            if not location:
                continue  # an import by namespace only loads nothing
            target = (path.parent / location).resolve()
            if "://" in location or target.parent != entry.parent:
                raise ConfigurationError(f"{path}: {location!r} is outside the schema directory")
            pending.append(target)
    return list(seen.values())


def _vocabulary(documents: list[etree._ElementTree]) -> _Vocabulary:
    """Collects the declared names from the XSD documents."""

    def values(xpath: str, namespace: str | None = None) -> frozenset[str]:
        found: set[str] = set()
        for document in documents:
            if namespace is None or document.getroot().get("targetNamespace") == namespace:
                result = document.xpath(xpath, namespaces={"xs": XSD_NAMESPACE})
                found.update(str(v) for v in (result if isinstance(result, list) else []))
        return frozenset(found)

    return _Vocabulary(
        elements=values("//xs:element/@name"),
        attributes=values("//xs:attribute/@name"),
        enumerations=values("//xs:enumeration/@value"),
        types=values("//xs:simpleType/@name | //xs:complexType/@name"),
        roots=values("/xs:schema/xs:element/@name", NAMESPACE),
    )


def _fault(entry: Any) -> _Fault:
    """Copies what is needed out of an lxml log entry (the log is reused by the next validation)."""
    return _Fault(kind=str(entry.type_name), path=str(entry.path or ""), message=str(entry.message or ""))


def _detail(root: etree._Element, faults: list[_Fault], vocabulary: _Vocabulary) -> str:
    """`<path>: <what is wrong>` for the first fault, with a count of the others, capped."""
    if not faults:
        return "not valid against the contract's schema"
    first = faults[0]
    node = _locate(root, first.path)
    path = _render_path(root, node, vocabulary) if node is not None else f"/{_label(root, vocabulary)}"
    attribute = _attribute(first, vocabulary)
    if attribute:
        path = f"{path}/@{attribute}"
    text = f"{path}: {_describe(first, node, vocabulary)}"
    if len(faults) > 1:
        text += f" (and {len(faults) - 1} more)"
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def _describe(fault: _Fault, node: etree._Element | None, vocabulary: _Vocabulary) -> str:
    """The fault in words, built from fixed phrases and names the XSDs declare."""
    if fault.kind in ("SCHEMAV_ELEMENT_CONTENT", "SCHEMAV_CVC_COMPLEX_TYPE_2_4"):
        expected = _expected(fault.message, vocabulary)
        if "Missing child element" in fault.message:
            what = "missing required child element"
        else:
            what = f"element{_foreign(node)} not expected here"
        return f"{what}; expected {expected}" if expected else what
    if fault.kind == "SCHEMAV_CVC_COMPLEX_TYPE_4":
        return "missing required attribute"
    if fault.kind in _LENGTH_FAULTS:
        return _length(fault.message, "bytes" if node is not None and node.tag == _PHOTO else "characters")
    if "_VALID" in fault.kind:  # facet and datatype faults: SCHEMAV_CVC_PATTERN_VALID and kin
        expected = _value_expectation(fault, vocabulary)
        return "not a valid value for its type" + (f"; expected {expected}" if expected else "")
    return _FIXED_FAULTS.get(fault.kind, "not valid against the contract's schema")


def _value_expectation(fault: _Fault, vocabulary: _Vocabulary) -> str:
    """What the value should have been, read from the tail of lxml's message (the schema's part)."""
    message = fault.message
    if fault.kind == "SCHEMAV_CVC_PATTERN_VALID" and "by the pattern '" in message:
        return _PATTERN_WORDS.get(message.rsplit("by the pattern '", 1)[1].removesuffix("'."), "")
    if fault.kind == "SCHEMAV_CVC_ENUMERATION_VALID" and "of the set {" in message:
        names = [v for v in _QUOTED.findall(message.rsplit("of the set {", 1)[1]) if v in vocabulary.enumerations]
        return "one of " + ", ".join(names) if names else ""
    if "atomic type '" in message:
        type_name = message.rsplit("atomic type '", 1)[1].removesuffix("'.")
        local = type_name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
        if local in _TYPE_WORDS:
            return _TYPE_WORDS[local]
        return f"a valid {local}" if local in vocabulary.types else ""
    if "INCLUSIVE" in fault.kind or "EXCLUSIVE" in fault.kind or "DIGITS" in fault.kind:
        return "a number within the allowed range"
    return ""


def _length(message: str, unit: str) -> str:
    """Too long or too short, with the limit (a number from the schema, never the value)."""
    match = _LENGTH_LIMIT.search(message)
    if match is None:
        return "length not allowed"
    if match.group(1) == "maximum":
        return f"too long (at most {match.group(2)} {unit})"
    return "empty" if match.group(2) == "1" else f"too short (at least {match.group(2)} {unit})"


def _expected(message: str, vocabulary: _Vocabulary) -> str:
    """The element names lxml says it expected, limited to names the XSDs declare."""
    if "Expected is" not in message:
        return ""
    names: list[str] = []
    for namespace, local in _EXPECTED.findall(message.rsplit("Expected is", 1)[1]):
        if local in vocabulary.elements and namespace in (NAMESPACE, DSIG_NAMESPACE):
            names.append(f"ds:{local}" if namespace == DSIG_NAMESPACE else local)
    if len(names) > 1:
        return "one of " + ", ".join(names)
    return names[0] if names else ""


def _attribute(fault: _Fault, vocabulary: _Vocabulary) -> str:
    """The attribute a fault is about, if any (a declared name, or a sanitized unknown one)."""
    match = _REQUIRED_ATTRIBUTE.search(fault.message) or _ATTRIBUTE.search(fault.message)
    if match is None:
        return ""
    name = match.group(1).rsplit(":", 1)[-1]
    return name if name in vocabulary.attributes else UNNAMED


def _foreign(node: etree._Element | None) -> str:
    """A hint when an element is in no namespace or a foreign one, the usual cause of confusion."""
    if node is None:
        return ""
    namespace = etree.QName(node).namespace
    if not namespace:
        return " in no namespace"
    return "" if namespace in (NAMESPACE, DSIG_NAMESPACE) else " in a foreign namespace"


def _locate(root: etree._Element, path: str) -> etree._Element | None:
    """The element libxml2's node path (`/*/*[2]`, `/t:A/t:B[3]`) designates, from the validated root."""
    if not path.startswith("/"):
        return None
    node: etree._Element | None = None
    candidates = [root]
    for step in path[1:].split("/"):
        match = _PATH_STEP.fullmatch(step)
        if match is None or step.startswith(("@", "text()")):
            break
        chosen = [c for c in candidates if _step_matches(c, match.group("name"))]
        index = int(match.group("index") or 1)
        if index > len(chosen):
            return None
        node = chosen[index - 1]
        candidates = [c for c in node if isinstance(c.tag, str)]
    return node


def _step_matches(element: etree._Element, name: str) -> bool:
    """libxml2's rule: `*` stands for any element (default namespace), else prefix and local name."""
    if name == "*":
        return True
    prefix, _, local = name.rpartition(":")
    qname = etree.QName(element)
    if prefix:
        return qname.localname == local and element.prefix == prefix
    return qname.localname == local and not qname.namespace


def _render_path(root: etree._Element, node: etree._Element, vocabulary: _Vocabulary) -> str:
    """`/TraceRequest/Firearm/ImportMark[2]/State`: local names, an index only where siblings share a name."""
    steps: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        label = _label(current, vocabulary)
        parent = current.getparent() if current is not root else None
        if parent is not None:
            same = [s for s in parent if s.tag == current.tag]
            if len(same) > 1:
                label += f"[{same.index(current) + 1}]"
        steps.append(label)
        current = parent
    return "/" + "/".join(reversed(steps))


def _label(element: etree._Element, vocabulary: _Vocabulary) -> str:
    """An element's name for a detail: a name the XSDs declare (`ds:` for XML-DSig), else `*`.

    Element names are the sender's text as much as values are: a detail names only what the contract names.
    """
    qname = etree.QName(element)
    if qname.localname not in vocabulary.elements:
        return UNNAMED
    return f"ds:{qname.localname}" if qname.namespace == DSIG_NAMESPACE else qname.localname
