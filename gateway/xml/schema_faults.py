"""Wording a schema failure: the element and the fault in words, never the payload's values.

lxml reports what broke where; this turns it into the `SCHEMA_INVALID` detail a national system's developer can
act on (the element's path, what was expected), naming only what the XSDs declare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

DETAIL_LIMIT = 300
UNNAMED = "*"
"""How a detail shows an element or attribute name the XSDs do not declare (never the sender's own text)."""
NAMESPACE = "urn:itrace:1"
DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"

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
    r"[^\p{Z}\p{C}]+( [^\p{Z}\p{C}]+)*": "1 to 64 printable characters, words separated by single spaces",
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
class Vocabulary:
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


def fault_of(entry: Any) -> _Fault:
    """Copies what is needed out of an lxml log entry (the log is reused by the next validation)."""
    return _Fault(kind=str(entry.type_name), path=str(entry.path or ""), message=str(entry.message or ""))


def detail_of(root: etree._Element, faults: list[_Fault], vocabulary: Vocabulary) -> str:
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


def _describe(fault: _Fault, node: etree._Element | None, vocabulary: Vocabulary) -> str:
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


def _value_expectation(fault: _Fault, vocabulary: Vocabulary) -> str:
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


def _expected(message: str, vocabulary: Vocabulary) -> str:
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


def _attribute(fault: _Fault, vocabulary: Vocabulary) -> str:
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


def _render_path(root: etree._Element, node: etree._Element, vocabulary: Vocabulary) -> str:
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


def _label(element: etree._Element, vocabulary: Vocabulary) -> str:
    """An element's name for a detail: a name the XSDs declare (`ds:` for XML-DSig), else `*`.

    Element names are the sender's text as much as values are: a detail names only what the contract names.
    """
    qname = etree.QName(element)
    if qname.localname not in vocabulary.elements:
        return UNNAMED
    return f"ds:{qname.localname}" if qname.namespace == DSIG_NAMESPACE else qname.localname


def label_of(element: etree._Element, vocabulary: Vocabulary) -> str:
    """How a detail names an element (as the XSDs declare it, or `UNNAMED`)."""
    return _label(element, vocabulary)
