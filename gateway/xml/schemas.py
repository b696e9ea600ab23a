"""XML Schema validation of the wire contract: owns loading `schemas/xsd` once, validating a parsed
message against it with lxml, and turning a failure into a `SCHEMA_INVALID` refusal whose detail names
the element and the fault but never echoes the payload's values.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

from lxml import etree

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.xml.schema_faults import NAMESPACE, Vocabulary, detail_of, fault_of, label_of

XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
ENTRY_POINT = "itrace.xsd"

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
        "RecordReport",
        "RecordWithdrawal",
        "RecordQuery",
    }
)
"""Roots an NPC sends to the gateway (contract 4.1, and the records register's of 4.3)."""

GATEWAY_MESSAGE_TYPES: frozenset[str] = frozenset(
    {"Delivery", "Receipt", "Rejection", "DeadlineNotice", "StatusReport", "RecordQueryResult", "HitNotice"}
)
"""Roots the gateway sends to an NPC (contract 4.2, and the records register's of 4.3)."""


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

    def __init__(self, schema: etree.XMLSchema, vocabulary: Vocabulary) -> None:
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
                f"/{label_of(root, self._vocabulary)}: root element is not in namespace {NAMESPACE}",
            )
        if qname.localname not in self._vocabulary.roots:
            raise Refused(ErrorCode.SCHEMA_INVALID, f"/*: the root element is not a message type of {NAMESPACE}")
        with self._lock:
            if self._schema.validate(root):
                return
            faults = [fault_of(entry) for entry in self._schema.error_log]  # type: ignore[attr-defined]
        raise Refused(ErrorCode.SCHEMA_INVALID, detail_of(root, faults, self._vocabulary))


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


def _vocabulary(documents: list[etree._ElementTree]) -> Vocabulary:
    """Collects the declared names from the XSD documents."""

    def values(xpath: str, namespace: str | None = None) -> frozenset[str]:
        found: set[str] = set()
        for document in documents:
            if namespace is None or document.getroot().get("targetNamespace") == namespace:
                result = document.xpath(xpath, namespaces={"xs": XSD_NAMESPACE})
                found.update(str(v) for v in (result if isinstance(result, list) else []))
        return frozenset(found)

    return Vocabulary(
        elements=values("//xs:element/@name"),
        attributes=values("//xs:attribute/@name"),
        enumerations=values("//xs:enumeration/@value"),
        types=values("//xs:simpleType/@name | //xs:complexType/@name"),
        roots=values("/xs:schema/xs:element/@name", NAMESPACE),
    )
