"""The contract's XSDs and their validator: every example passes once signed, what the contract rules out
is refused with SCHEMA_INVALID and a detail that names the element but never the offending value."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import methods
from signxml.signer import XMLSigner

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.xml.schema_faults import _PATTERN_WORDS, DETAIL_LIMIT
from gateway.xml.schemas import GATEWAY_MESSAGE_TYPES, NPC_MESSAGE_TYPES, SchemaSet
from tests.certs import certificate
from tests.certs import name as x509_name

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
XSD_DIR = Path(__file__).resolve().parents[2] / "schemas" / "xsd"
NS = "urn:itrace:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
XS = {"xs": "http://www.w3.org/2001/XMLSchema"}
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.xml"))
FIREARM = "trace-request-firearm.xml"
EXPORTED = "trace-response-exported.xml"
RECORD_EXAMPLES = {
    "record-report.xml": "RecordReport",
    "record-withdrawal.xml": "RecordWithdrawal",
    "record-query.xml": "RecordQuery",
    "record-query-result.xml": "RecordQueryResult",
    "hit-notice.xml": "HitNotice",
}
"""The examples of contract 4.3 (the records register) and the root each one shows."""

Signer = Callable[[bytes], etree._Element]


def _parse(data: bytes) -> etree._Element:
    """Parses test input the way the gateway's hardened parser would: no DTD, no entity, no network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def _refusal(schemas: SchemaSet, data: bytes) -> str:
    """Validates `data`, expects a SCHEMA_INVALID refusal and returns its detail."""
    with pytest.raises(Refused) as caught:
        schemas.validate(_parse(data))
    assert caught.value.code == ErrorCode.SCHEMA_INVALID
    detail = caught.value.detail
    assert len(detail) <= DETAIL_LIMIT
    return detail


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    """The repository's schema set."""
    return SchemaSet.load(XSD_DIR)


@pytest.fixture(scope="module")
def signer_material() -> tuple[bytes, bytes]:
    """A throwaway EC P-256 key and a self-signed certificate for it, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(key, x509_name(COMMON_NAME="ZA NPC test signer"), now=dt.datetime.now(dt.UTC))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sign(signer_material: tuple[bytes, bytes]) -> Signer:
    """Signs an example's bytes in the contract's profile and returns the signed root."""
    key_pem, cert_pem = signer_material
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="ecdsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=EXC_C14N,
    )

    def _sign(data: bytes) -> etree._Element:
        return signer.sign(_parse(data), key=key_pem, cert=cert_pem.decode())

    return _sign


def _example(name: str) -> bytes:
    """The bytes of one example of the contract."""
    return (EXAMPLES / name).read_bytes()


# ------------------------------------------------------------------------------------------ acceptance


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_validates_once_signed(schemas: SchemaSet, sign: Signer, name: str) -> None:
    """Each example of the contract, signed in its profile, is valid; the signature is the last child."""
    signed = sign(_example(name))
    assert signed[-1].tag == f"{{{DS}}}Signature"
    schemas.validate(signed)


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_validates_unsigned(schemas: SchemaSet, name: str) -> None:
    """A missing signature is not a schema error: the signature stage reports it with its own code."""
    schemas.validate(_parse(_example(name)))


def test_examples_cover_every_message_type(schemas: SchemaSet) -> None:
    """The examples exercise every root of contract 4.1, 4.2 and 4.3, the records register's among them."""
    roots = {etree.QName(_parse(_example(name))).localname for name in EXAMPLE_FILES}
    assert roots == schemas.root_names()
    assert set(RECORD_EXAMPLES) <= set(EXAMPLE_FILES)
    assert {name: etree.QName(_parse(_example(name))).localname for name in RECORD_EXAMPLES} == RECORD_EXAMPLES
    assert set(RECORD_EXAMPLES.values()) <= schemas.root_names()


@pytest.mark.parametrize("status", ["lost", "stolen", "trafficked", "smuggled", "withdrawn", "delivered"])
def test_receipt_status_is_a_trace_or_a_record_status(schemas: SchemaSet, status: str) -> None:
    """A Receipt's Status is a trace's status or, answering a RecordReport/RecordWithdrawal, a record's."""
    data = _example("receipt.xml").replace(b"<t:Status>delivered<", f"<t:Status>{status}<".encode())
    schemas.validate(_parse(data))


@pytest.mark.parametrize("reference", ["ZA-SAPS-2026-004512", "CAS 123/03/2026", "R" * 64, "Ö-1"])
def test_record_references_of_up_to_64_printable_characters_validate(schemas: SchemaSet, reference: str) -> None:
    """A record's Reference of 1 to 64 printable characters, single spaces between words, is valid."""
    data = _example("record-report.xml").replace(b"ZA-SAPS-2026-004512", reference.encode())
    schemas.validate(_parse(data))


def test_record_messages_take_the_optional_parts_away(schemas: SchemaSet) -> None:
    """Without Place, Circumstances, Text, TraceId, any Match or a SerialNumber the 4.3 messages are valid."""
    trimmed = {
        "record-report.xml": rb"<t:(Place|Circumstances|SerialNumber)>.*?</t:\1>",
        "record-withdrawal.xml": rb"<t:(Text)>.*?</t:\1>",
        "record-query.xml": rb"<t:(SerialNumber)>.*?</t:\1>",
        "record-query-result.xml": rb"<t:(Match)>.*?</t:\1>",
        "hit-notice.xml": rb"<t:(TraceId)>.*?</t:\1>",
    }
    for name, pattern in trimmed.items():
        data, count = re.subn(pattern, b"", _example(name), flags=re.DOTALL)
        assert count >= 1, name
        schemas.validate(_parse(data))


def test_default_namespace_documents_validate(schemas: SchemaSet) -> None:
    """A message written with a default namespace instead of the `t:` prefix is equally valid."""
    data = _example("trace-request-firearm.xml").replace(b"t:", b"").replace(b"xmlns:t=", b"xmlns=")
    schemas.validate(_parse(data))


@pytest.mark.parametrize(
    "stamp", ["2026-11-02T09:15:00.123Z", "2026-11-02T09:15:00-05:30", "2026-11-02T23:59:59.5+14:00"]
)
def test_time_stamps_with_fractions_and_offsets_validate(schemas: SchemaSet, stamp: str) -> None:
    """A CreatedAt with fractional seconds or a non-UTC offset is a valid time stamp."""
    data = _example(FIREARM).replace(b"2026-11-02T09:15:00Z", stamp.encode())
    schemas.validate(_parse(data))


def test_a_full_firearm_with_every_optional_part_validates(schemas: SchemaSet) -> None:
    """Photos, several markings, unreadable frame markings, Resubmits and a justification are accepted."""
    photo = b"\x89PNG fake image bytes"
    photo_element = (
        b'<t:Photo mediaType="image/jpeg" sha256="'
        + hashlib.sha256(photo).hexdigest().encode()
        + b'">'
        + base64.b64encode(photo)
        + b"</t:Photo>"
    )
    data = (
        _example(FIREARM)
        .replace(b"</t:Header>", b"</t:Header><t:Resubmits>3F0C6A52-8B1E-4D55-9A57-0D4F7E1B2C01</t:Resubmits>")
        .replace(b"<t:OtherSerialNumber", b'<t:Marking kind="security">S-771</t:Marking><t:OtherSerialNumber')
        .replace(
            b"</t:OtherSerialNumber>",
            b"</t:OtherSerialNumber><t:FrameMarkingsUnreadable>true</t:FrameMarkingsUnreadable>"
            + photo_element
            + photo_element,
        )
        .replace(
            b'<t:Confidentiality guaranteed="true"/>',
            b'<t:Confidentiality guaranteed="true"/>'
            b"<t:IncompleteJustification>Urgent: suspect in custody.</t:IncompleteJustification>",
        )
    )
    schemas.validate(_parse(data))


def test_essential_items_and_reasons_are_optional(schemas: SchemaSet) -> None:
    """Without Make, Caliber, Illicitness, IntendedUse or a Reason it is valid: later stages name them."""
    request = re.sub(rb"<t:(Make|Caliber|Illicitness|IntendedUse)>.*?</t:\1>", b"", _example(FIREARM), flags=re.DOTALL)
    schemas.validate(_parse(request))
    ammunition = re.sub(
        rb"<t:(Manufacturer|LotNumber|Year|Cartridge)>.*?</t:\1>",
        b"",
        _example("trace-request-ammunition.xml"),
        flags=re.DOTALL,
    )
    schemas.validate(_parse(ammunition))
    for name in ("refusal.xml", "delay-notice.xml", "trace-response-partial.xml"):
        schemas.validate(_parse(re.sub(rb"<t:Reason>[a-z-]+</t:Reason>", b"", _example(name))))


# ----------------------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Case:
    """A contract violation: the example, a substitution in its bytes and what the detail must say."""

    id: str
    example: str
    old: bytes
    new: bytes
    path: str
    says: str
    secret: str = ""
    pattern: bool = False  # `old` is a regular expression (DOTALL)


HEADER = (
    b"<t:Header>\n    <t:MessageId>3f0c6a52-8b1e-4d55-9a57-0d4f7e1b2c01</t:MessageId>\n"
    b"    <t:CreatedAt>2026-11-02T09:15:00Z</t:CreatedAt>\n    <t:Sender>ZA</t:Sender>\n  </t:Header>"
)

CASES = [
    Case("missing-header", FIREARM, HEADER, b"", "/TraceRequest/Firearm:", "expected Header"),
    Case(
        "state-code-lower-case",
        FIREARM,
        b"<t:CountryOfManufacture>AT<",
        b"<t:CountryOfManufacture>zaf<",
        "/TraceRequest/Firearm/CountryOfManufacture:",
        "state code",
        "zaf",
    ),
    Case(
        "state-code-digit",
        FIREARM,
        b"<t:ImportingState>MZ<",
        b"<t:ImportingState>Z1<",
        "/TraceRequest/ExportRecord/ImportingState:",
        "state code",
        "Z1",
    ),
    Case(
        "state-code-padded",
        FIREARM,
        b"<t:State>BR<",
        b"<t:State> BR <",
        "/TraceRequest/Firearm/ImportMark/State:",
        "state code",
    ),
    Case(
        "sender-gateway-lower-case",
        "deadline-notice.xml",
        b"<t:Sender>GATEWAY<",
        b"<t:Sender>gateway<",
        "/DeadlineNotice/Header/Sender:",
        "state code or GATEWAY",
        "gateway",
    ),
    Case(
        "created-at-without-time-zone",
        FIREARM,
        b"2026-11-02T09:15:00Z",
        b"2026-11-02T09:15:00",
        "/TraceRequest/Header/CreatedAt:",
        "time zone",
        "09:15",
    ),
    Case(
        "created-at-not-a-date",
        FIREARM,
        b"2026-11-02T09:15:00Z",
        b"yesterday-noon",
        "/TraceRequest/Header/CreatedAt:",
        "time zone",
        "yesterday",
    ),
    Case(
        "created-at-hour-24",
        FIREARM,
        b"2026-11-02T09:15:00Z",
        b"2026-11-02T24:00:00Z",
        "/TraceRequest/Header/CreatedAt:",
        "time zone",
        "24:00",
    ),
    Case(
        "created-at-offset-without-colon",
        FIREARM,
        b"2026-11-02T09:15:00Z",
        b"2026-11-02T09:15:00+0200",
        "/TraceRequest/Header/CreatedAt:",
        "time zone",
        "+0200",
    ),
    Case(
        "date-with-time-zone",
        FIREARM,
        b"<t:Date>2026-10-28<",
        b"<t:Date>2026-10-28+02:00<",
        "/TraceRequest/Recovery/Date:",
        "date (YYYY-MM-DD)",
        "+02:00",
    ),
    Case(
        "impossible-date",
        FIREARM,
        b"<t:Date>2019-06-14<",
        b"<t:Date>2019-02-30<",
        "/TraceRequest/ExportRecord/Date:",
        "date (YYYY-MM-DD)",
        "02-30",
    ),
    Case(
        "bad-message-id",
        FIREARM,
        b"<t:MessageId>3f0c6a52-8b1e-4d55-9a57-0d4f7e1b2c01<",
        b"<t:MessageId>msg-4711-confidential<",
        "/TraceRequest/Header/MessageId:",
        "UUID",
        "4711",
    ),
    Case(
        "bad-trace-id",
        "comment.xml",
        b"<t:TraceId>7a1d2e90-4c3b-4f0e-8b6a-51c9d3e4f502<",
        b"<t:TraceId>7a1d2e90-4c3b-4f0e-8b6a-51c9d3e4f50<",
        "/Comment/Header/TraceId:",
        "UUID",
        "7a1d2e90",
    ),
    Case(
        "unknown-outcome",
        EXPORTED,
        b"<t:Outcome>",
        b"<t:Outcome><t:Stolen/>",
        "/TraceResponse/Outcome/*:",
        "expected one of Manufactured, Imported",
    ),
    Case(
        "two-outcomes-in-one",
        EXPORTED,
        b"</t:Exported>",
        b"</t:Exported><t:NotFound/>",
        "/TraceResponse/Outcome/NotFound:",
        "not expected here",
    ),
    Case(
        "two-outcome-elements",
        EXPORTED,
        b"</t:Outcome>",
        b"</t:Outcome><t:Outcome><t:NotFound/></t:Outcome>",
        "/TraceResponse/Outcome[2]:",
        "not expected here",
    ),
    Case(
        "empty-outcome",
        "trace-response-partial.xml",
        rb"<t:DivertedInternally>.*</t:DivertedInternally>",
        b"",
        "/TraceResponse/Outcome:",
        "missing required child element; expected one of Manufactured",
        pattern=True,
    ),
    Case(
        "wrong-restriction-code",
        EXPORTED,
        b'code="competent-authorities-only"',
        b'code="press-release-ok"',
        "/TraceResponse/Restrictions/Restriction[1]/@code:",
        "one of competent-authorities-only, tracing-purposes-only, no-onward-release-without-consent",
        "press-release",
    ),
    Case(
        "wrong-reason-code",
        "delay-notice.xml",
        b"<t:Reason>ongoing-investigation<",
        b"<t:Reason>we-are-busy<",
        "/DelayNotice/Reason:",
        "one of ongoing-investigation, confidentiality-law",
        "busy",
    ),
    Case(
        "wrong-partial-reason-code",
        "trace-response-partial.xml",
        b"<t:Reason>ongoing-investigation<",
        b"<t:Reason>Ongoing-Investigation<",
        "/TraceResponse/Partial/Reason:",
        "not a valid value",
        "Ongoing",
    ),
    Case(
        "unknown-element",
        FIREARM,
        b"<t:Type>",
        b"<t:Colour>black</t:Colour><t:Type>",
        "/TraceRequest/Firearm/*:",
        "element not expected here",
        "Colour",
    ),
    Case(
        "element-in-no-namespace",
        FIREARM,
        b"<t:Type>",
        b"<Type>pistol</Type><t:Type>",
        "/TraceRequest/Firearm/Type:",
        "in no namespace",
    ),
    Case(
        "elements-out-of-order",
        FIREARM,
        b"<t:Make>Glock</t:Make>\n    <t:Model>17 Gen 4</t:Model>",
        b"<t:Model>17 Gen 4</t:Model>\n    <t:Make>Glock</t:Make>",
        "/TraceRequest/Firearm/Make:",
        "not expected here",
        "Glock",
    ),
    Case(
        "wrong-marking-kind",
        FIREARM,
        b'kind="proof"',
        b'kind="hallmark"',
        "/TraceRequest/Firearm/Marking/@kind:",
        "one of proof, assembly, military, patent, security, other",
        "hallmark",
    ),
    Case(
        "missing-required-attribute",
        FIREARM,
        b'part="slide"',
        b"",
        "/TraceRequest/Firearm/OtherSerialNumber/@part:",
        "missing required attribute",
    ),
    Case(
        "unknown-attribute",
        FIREARM,
        b'kind="proof"',
        b'kind="proof" owner="Jane Doe"',
        "/TraceRequest/Firearm/Marking/@*:",
        "attribute not allowed",
        "owner",
    ),
    Case(
        "boolean-as-digit",
        FIREARM,
        b'guaranteed="true"',
        b'guaranteed="1"',
        "/TraceRequest/Confidentiality/@guaranteed:",
        "true or false",
    ),
    Case(
        "missing-confidentiality",
        FIREARM,
        b'<t:Confidentiality guaranteed="true"/>',
        b"",
        "/TraceRequest:",
        "missing required child element; expected Confidentiality",
    ),
    Case(
        "firearm-and-ammunition",
        FIREARM,
        b"<t:Illicitness>",
        b"<t:Ammunition/><t:Illicitness>",
        "/TraceRequest/Ammunition:",
        "not expected here",
    ),
    Case(
        "whitespace-only-text",
        FIREARM,
        b"<t:Make>Glock</t:Make>",
        b"<t:Make>   </t:Make>",
        "/TraceRequest/Firearm/Make:",
        "empty",
    ),
    Case(
        "text-too-long",
        FIREARM,
        b"<t:Circumstances>Recovered",
        b"<t:Circumstances>" + b"Recovered " * 401,
        "/TraceRequest/Illicitness/Circumstances:",
        "too long (at most 4000 characters)",
        "Recovered",
    ),
    Case(
        "text-inside-element-only-content",
        FIREARM,
        b"<t:Type>",
        b"loose words<t:Type>",
        "/TraceRequest/Firearm:",
        "text not allowed here",
        "loose",
    ),
    Case(
        "bad-date",
        FIREARM,
        b"<t:Date>2026-10-28<",
        b"<t:Date>28/10/2026<",
        "/TraceRequest/Recovery/Date:",
        "date (YYYY-MM-DD)",
        "28/10",
    ),
    Case(
        "zero-quantity",
        FIREARM,
        b"<t:Quantity>1<",
        b"<t:Quantity>0<",
        "/TraceRequest/Recovery/Quantity:",
        "positive whole number",
    ),
    Case(
        "two-digit-year",
        FIREARM,
        b"<t:Year>2014<",
        b"<t:Year>14<",
        "/TraceRequest/Firearm/ImportMark/Year:",
        "four-digit year",
    ),
    Case(
        "unknown-missing-item",
        "return-for-completion.xml",
        b"<t:MissingItem>import-mark<",
        b"<t:MissingItem>colour<",
        "/ReturnForCompletion/MissingItem[2]:",
        "one of make, model",
        "colour",
    ),
    Case(
        "expected-by-with-time",
        "delay-notice.xml",
        b"<t:ExpectedBy>2027-02-15<",
        b"<t:ExpectedBy>2027-02-15T10:00:00Z<",
        "/DelayNotice/ExpectedBy:",
        "date (YYYY-MM-DD)",
        "10:00",
    ),
    Case(
        "status-query-bad-role",
        "status-query.xml",
        b"<t:Role>outgoing<",
        b"<t:Role>sideways<",
        "/StatusQuery/Role:",
        "one of incoming, outgoing",
        "sideways",
    ),
    Case(
        "bad-routing-table-version",
        "delivery.xml",
        b"sha256:5b1f0c9e2a7d",
        b"md5:5b1f0c9e2a7d",
        "/Delivery/Route/RoutingTableVersion:",
        "sha256:",
        "md5",
    ),
    Case(
        "bad-route-rule",
        "delivery.xml",
        b"<t:Rule>export-record<",
        b"<t:Rule>shortest-path<",
        "/Delivery/Route/Rule:",
        "one of export-record, import-mark, manufacture, reply",
        "shortest",
    ),
    Case(
        "payload-without-media-type",
        "delivery.xml",
        b' mediaType="application/xml"',
        b"",
        "/Delivery/Payload/@mediaType:",
        "missing required attribute",
    ),
    Case(
        "unknown-rejection-code",
        "rejection.xml",
        b"<t:Code>INCOMPLETE<",
        b"<t:Code>TEAPOT<",
        "/Rejection/Code:",
        "one of MALFORMED_XML",
        "TEAPOT",
    ),
    Case(
        "unknown-deadline-kind",
        "deadline-notice.xml",
        b"<t:Kind>acknowledgement-overdue<",
        b"<t:Kind>tea-time<",
        "/DeadlineNotice/Kind:",
        "one of acknowledgement-reminder",
        "tea-time",
    ),
    Case(
        "overdue-not-boolean",
        "status-report.xml",
        b"<t:Overdue>false<",
        b"<t:Overdue>no<",
        "/StatusReport/Trace/Overdue:",
        "true or false",
    ),
    Case(
        "receipt-unknown-status",
        "receipt.xml",
        b"<t:Status>delivered<",
        b"<t:Status>misplaced<",
        "/Receipt/Status:",
        "not a valid value for its type",
        "misplaced",
    ),
    Case(
        "acknowledgement-with-a-body",
        "acknowledgement.xml",
        b"</t:Header>",
        b"</t:Header><t:Text>ok</t:Text>",
        "/Acknowledgement/Text:",
        "expected ds:Signature",
    ),
]


RECORD_CASES = [
    Case(
        "record-report-unknown-status",
        "record-report.xml",
        b"<t:Status>stolen<",
        b"<t:Status>borrowed<",
        "/RecordReport/Status:",
        "one of lost, stolen, trafficked, smuggled",
        "borrowed",
    ),
    Case(
        "record-report-withdrawn-is-no-report-status",
        "record-report.xml",
        b"<t:Status>stolen<",
        b"<t:Status>withdrawn<",
        "/RecordReport/Status:",
        "one of lost, stolen, trafficked, smuggled",
    ),
    Case(
        "record-report-reference-too-long",
        "record-report.xml",
        b"ZA-SAPS-2026-004512",
        b"ZA-SAPS-" + b"9" * 57,
        "/RecordReport/Reference:",
        "too long (at most 64 characters)",
        "SAPS",
    ),
    Case(
        "record-report-reference-with-leading-space",
        "record-report.xml",
        b"<t:Reference>ZA-SAPS",
        b"<t:Reference> ZA-SAPS",
        "/RecordReport/Reference:",
        "not a valid value",
        "SAPS",
    ),
    Case(
        "record-report-reference-with-a-tab",
        "record-report.xml",
        b"ZA-SAPS-2026-004512",
        b"ZA-SAPS\t2026-004512",
        "/RecordReport/Reference:",
        "not a valid value",
        "SAPS",
    ),
    Case(
        "record-report-empty-reference",
        "record-report.xml",
        b"ZA-SAPS-2026-004512",
        b"",
        "/RecordReport/Reference:",
        "empty",
    ),
    Case(
        "record-report-without-firearm",
        "record-report.xml",
        rb"<t:Firearm>.*?</t:Firearm>",
        b"",
        "/RecordReport/Date:",
        "expected Firearm",
        pattern=True,
    ),
    Case(
        "record-report-date-with-time",
        "record-report.xml",
        b"<t:Date>2026-03-02<",
        b"<t:Date>2026-03-02T08:00:00Z<",
        "/RecordReport/Date:",
        "date (YYYY-MM-DD)",
    ),
    Case(
        "record-report-elements-out-of-order",
        "record-report.xml",
        b"<t:Reference>ZA-SAPS-2026-004512</t:Reference>\n  <t:Status>stolen</t:Status>",
        b"<t:Status>stolen</t:Status>\n  <t:Reference>ZA-SAPS-2026-004512</t:Reference>",
        "/RecordReport/Status:",
        "not expected here; expected Reference",
    ),
    Case(
        "record-withdrawal-unknown-reason",
        "record-withdrawal.xml",
        b"<t:Reason>recovered<",
        b"<t:Reason>forgotten<",
        "/RecordWithdrawal/Reason:",
        "one of recovered, erroneous, other",
        "forgotten",
    ),
    Case(
        "record-withdrawal-without-reason",
        "record-withdrawal.xml",
        b"<t:Reason>recovered</t:Reason>",
        b"",
        "/RecordWithdrawal/Text:",
        "expected Reason",
    ),
    Case(
        "record-query-without-firearm",
        "record-query.xml",
        rb"<t:Firearm>.*?</t:Firearm>",
        b"",
        "/RecordQuery:",
        "missing required child element; expected Firearm",
        pattern=True,
    ),
    Case(
        "record-query-result-match-without-matched-on",
        "record-query-result.xml",
        rb"\s*<t:MatchedOn>[a-z-]+</t:MatchedOn>\s*<t:MatchedOn>[a-z-]+</t:MatchedOn>",
        b"",
        "/RecordQueryResult/Match:",
        "missing required child element; expected MatchedOn",
        pattern=True,
    ),
    Case(
        "record-query-result-unknown-score",
        "record-query-result.xml",
        b"<t:Score>exact<",
        b"<t:Score>likely<",
        "/RecordQueryResult/Match/Score:",
        "one of exact, probable",
        "likely",
    ),
    Case(
        "record-query-result-unknown-matched-on",
        "record-query-result.xml",
        b"<t:MatchedOn>make<",
        b"<t:MatchedOn>colour<",
        "/RecordQueryResult/Match/MatchedOn[2]:",
        "one of serial-number, make, model, caliber, country-of-manufacture",
        "colour",
    ),
    Case(
        "record-query-result-withdrawn-match",
        "record-query-result.xml",
        b"<t:Status>stolen<",
        b"<t:Status>withdrawn<",
        "/RecordQueryResult/Match/Status:",
        "one of lost, stolen, trafficked, smuggled",
    ),
    Case(
        "record-query-result-bad-query-id",
        "record-query-result.xml",
        b"<t:QueryMessageId>8c1d3e5f",
        b"<t:QueryMessageId>query-8c1d3e5f",
        "/RecordQueryResult/QueryMessageId:",
        "a UUID",
    ),
    Case(
        "hit-notice-without-found-by",
        "hit-notice.xml",
        b"<t:FoundBy>KE</t:FoundBy>",
        b"",
        "/HitNotice/TraceId:",
        "expected FoundBy",
    ),
    Case(
        "hit-notice-found-by-not-a-state",
        "hit-notice.xml",
        b"<t:FoundBy>KE<",
        b"<t:FoundBy>GATEWAY<",
        "/HitNotice/FoundBy:",
        "a state code (two capital letters)",
    ),
    Case(
        "hit-notice-unknown-status",
        "hit-notice.xml",
        b"<t:Status>stolen<",
        b"<t:Status>misplaced<",
        "/HitNotice/Status:",
        "one of lost, stolen, trafficked, smuggled",
        "misplaced",
    ),
    Case(
        "hit-notice-without-matched-on",
        "hit-notice.xml",
        rb"\s*<t:MatchedOn>[a-z-]+</t:MatchedOn>\s*<t:MatchedOn>[a-z-]+</t:MatchedOn>",
        b"",
        "/HitNotice:",
        "missing required child element; expected MatchedOn",
        pattern=True,
    ),
    Case(
        "hit-notice-reference-too-long",
        "hit-notice.xml",
        b"ZA-SAPS-2026-004512",
        b"ZA-SAPS-" + b"9" * 57,
        "/HitNotice/Reference:",
        "too long (at most 64 characters)",
        "SAPS",
    ),
]


@pytest.mark.parametrize("case", CASES + RECORD_CASES, ids=[c.id for c in CASES + RECORD_CASES])
def test_contract_violations_are_refused_with_a_precise_detail(schemas: SchemaSet, case: Case) -> None:
    """Each violation is SCHEMA_INVALID, the detail names the element and the fault, not the value."""
    data = _example(case.example)
    old = case.old if case.pattern else re.escape(case.old)
    changed, count = re.subn(old, case.new.replace(b"\\", b"\\\\"), data, count=1, flags=re.DOTALL)
    assert count == 1, "the substitution must apply"
    detail = _refusal(schemas, changed)
    assert detail.startswith(case.path), detail
    assert case.says in detail, detail
    if case.secret:
        assert case.secret not in detail, detail


def test_root_outside_the_namespace_is_refused(schemas: SchemaSet) -> None:
    """A root in another namespace is refused and the detail says which namespace is expected."""
    data = _example("comment.xml").replace(b'xmlns:t="urn:itrace:1"', b'xmlns:t="urn:example:secret"')
    detail = _refusal(schemas, data)
    assert detail == "/Comment: root element is not in namespace urn:itrace:1"


def test_root_without_namespace_is_refused(schemas: SchemaSet) -> None:
    """A root in no namespace is refused as outside the contract's namespace."""
    data = _example("comment.xml").replace(b"t:", b"").replace(b' xmlns:t="urn:itrace:1"', b"")
    assert "not in namespace urn:itrace:1" in _refusal(schemas, data)


def test_unknown_root_is_refused(schemas: SchemaSet) -> None:
    """A root in the namespace that is no message type is refused without echoing its name."""
    data = _example("comment.xml").replace(b"t:Comment", b"t:Gossip")
    assert _refusal(schemas, data) == "/*: the root element is not a message type of urn:itrace:1"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<t:Type>", b"<t:CALL_PLUS_27_800_FREE_TO_CLAIM>x</t:CALL_PLUS_27_800_FREE_TO_CLAIM><t:Type>"),
        (b'kind="proof"', b'kind="proof" Your_account_is_suspended="1"'),
        (b"<t:Type>", b'<evil:Visit_example_org xmlns:evil="urn:x"/><t:Type>'),
    ],
)
def test_detail_never_names_what_the_contract_does_not(schemas: SchemaSet, old: bytes, new: bytes) -> None:
    """Element and attribute names are payload too: a Rejection's detail shows only names the XSDs declare."""
    data = _example("trace-request-firearm.xml").replace(old, new, 1)
    detail = _refusal(schemas, data)
    for word in ("CALL", "account", "suspended", "Visit", "evil", "example"):
        assert word not in detail, detail
    assert "/*" in detail or "@*" in detail


def test_non_root_global_elements_are_not_messages(schemas: SchemaSet) -> None:
    """An XML-DSig element as the root is refused, though the schema set declares it globally."""
    data = b'<ds:SignatureValue xmlns:ds="http://www.w3.org/2000/09/xmldsig#">AAAA</ds:SignatureValue>'
    assert "not in namespace" in _refusal(schemas, data)


def test_signature_must_be_last(schemas: SchemaSet, sign: Signer) -> None:
    """A ds:Signature anywhere but as the last child is a schema error."""
    signed = sign(_example("acknowledgement.xml"))
    signed.insert(0, signed[-1])
    with pytest.raises(Refused) as caught:
        schemas.validate(signed)
    assert caught.value.detail.startswith("/Acknowledgement/ds:Signature: element not expected here")
    assert "expected Header" in caught.value.detail


def test_photo_is_size_capped(schemas: SchemaSet) -> None:
    """A photograph over 512 KiB decoded (about 700,000 base64 characters) is refused."""
    big = base64.b64encode(b"\0" * (512 * 1024 + 1))
    photo = b'<t:Photo mediaType="image/png" sha256="' + b"0" * 64 + b'">' + big + b"</t:Photo>"
    data = _example(FIREARM).replace(b"</t:OtherSerialNumber>", b"</t:OtherSerialNumber>" + photo)
    detail = _refusal(schemas, data)
    assert detail.startswith("/TraceRequest/Firearm/Photo: too long (at most 524288 bytes)")


def test_photo_needs_an_image_media_type_and_a_digest(schemas: SchemaSet) -> None:
    """A photograph declared as a non-image, or with a short digest, is refused."""
    photo = b'<t:Photo mediaType="application/x-msdownload" sha256="' + b"0" * 64 + b'">AAAA</t:Photo>'
    data = _example(FIREARM).replace(b"</t:OtherSerialNumber>", b"</t:OtherSerialNumber>" + photo)
    assert _refusal(schemas, data).startswith("/TraceRequest/Firearm/Photo/@mediaType:")
    photo = b'<t:Photo mediaType="image/png" sha256="abc">AAAA</t:Photo>'
    data = _example(FIREARM).replace(b"</t:OtherSerialNumber>", b"</t:OtherSerialNumber>" + photo)
    assert _refusal(schemas, data).startswith("/TraceRequest/Firearm/Photo/@sha256: not a valid value")


def test_detail_counts_further_faults_and_stays_short(schemas: SchemaSet) -> None:
    """With several faults the detail describes the first, counts the rest and stays within the cap."""
    data = (
        _example(FIREARM)
        .replace(b"<t:CountryOfManufacture>AT<", b"<t:CountryOfManufacture>at<")
        .replace(b"<t:ImportingState>MZ<", b"<t:ImportingState>mz<")
    )
    detail = _refusal(schemas, data)
    assert detail.startswith("/TraceRequest/Firearm/CountryOfManufacture:")
    assert detail.endswith("(and 1 more)")


def test_long_unknown_names_are_capped(schemas: SchemaSet) -> None:
    """An element name chosen by the sender is shown bounded, and the whole detail stays capped."""
    name = b"X" * 500
    data = _example(FIREARM).replace(b"<t:Type>", b"<t:" + name + b"/><t:Type>")
    detail = _refusal(schemas, data)
    assert "X" * 49 not in detail


# ------------------------------------------------------------------------------------------ property


def _with_country_of_manufacture(value: str) -> etree._Element:
    """The firearm example with `value` as its CountryOfManufacture."""
    root = _parse(_example(FIREARM))
    element = root.find(f"{{{NS}}}Firearm/{{{NS}}}CountryOfManufacture")
    assert element is not None
    element.text = value
    return root


def _xsd_values(path: Path, xpath: str) -> set[str]:
    """The string results of an XPath over one of the XSDs."""
    result = etree.parse(str(path)).xpath(xpath, namespaces=XS)
    assert isinstance(result, list)
    return {str(value) for value in result}


XML_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
        st.sampled_from(" \t\nAZ"),
    ),
    max_size=6,
)


@given(value=XML_TEXT.filter(lambda v: re.fullmatch(r"[A-Z]{2}", v) is None))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_non_state_code_is_refused_as_country_of_manufacture(schemas: SchemaSet, value: str) -> None:
    """Any string but two ASCII capitals, as CountryOfManufacture, is refused and the element named."""
    root = _with_country_of_manufacture(value)
    with pytest.raises(Refused) as caught:
        schemas.validate(root)
    assert caught.value.code == ErrorCode.SCHEMA_INVALID
    assert caught.value.detail.startswith("/TraceRequest/Firearm/CountryOfManufacture: ")


@given(value=st.from_regex(r"[A-Z]{2}", fullmatch=True))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_state_code_is_accepted_as_country_of_manufacture(schemas: SchemaSet, value: str) -> None:
    """Any two ASCII capitals are a well-formed state code for the schema."""
    root = _with_country_of_manufacture(value)
    schemas.validate(root)


# -------------------------------------------------------------------------------------- the schema set


def test_root_names_are_the_contract_message_types(schemas: SchemaSet) -> None:
    """The XSDs' global elements are exactly the roots of contract 4.1, 4.2 and 4.3, and the two are disjoint."""
    assert schemas.root_names() == NPC_MESSAGE_TYPES | GATEWAY_MESSAGE_TYPES
    assert not NPC_MESSAGE_TYPES & GATEWAY_MESSAGE_TYPES


def test_rejection_codes_are_the_error_codes() -> None:
    """`Rejection/Code` enumerates exactly gateway.errors.ErrorCode (contract section 7)."""
    codes = _xsd_values(XSD_DIR / "gateway.xsd", "//xs:simpleType[@name='RejectionCode']//xs:enumeration/@value")
    assert codes == {code.value for code in ErrorCode}


def test_every_pattern_is_described_in_words() -> None:
    """Each pattern facet of the XSDs has words for the detail, so no refusal falls back to a regex."""
    patterns = set().union(*(_xsd_values(path, "//xs:pattern/@value") for path in XSD_DIR.glob("*.xsd")))
    assert patterns == set(_PATTERN_WORDS)


def test_bundled_xsds_carry_no_dtd() -> None:
    """No bundled XSD has a DOCTYPE or an entity declaration (the parser reads none)."""
    for path in XSD_DIR.glob("*.xsd"):
        text = path.read_text(encoding="utf-8")
        assert "<!DOCTYPE" not in text, path.name
        assert "<!ENTITY" not in text, path.name


def test_load_is_done_once(schemas: SchemaSet) -> None:
    """Loading the same directory again returns the same compiled schema set."""
    assert SchemaSet.load(XSD_DIR) is schemas
    assert SchemaSet.load() is SchemaSet.load()


def test_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    """A directory without the entry point is the administrator's error, named in the message."""
    with pytest.raises(ConfigurationError, match=r"itrace\.xsd"):
        SchemaSet.load(tmp_path)


def test_schema_references_outside_the_directory_are_not_followed(tmp_path: Path) -> None:
    """An include that points outside the schema directory (file or network) fails to compile."""
    for target in ("../outside.xsd", "http://example.invalid/outside.xsd"):
        directory = tmp_path / target.replace("/", "_").replace(":", "_")
        directory.mkdir()
        shutil.copy(XSD_DIR / "common.xsd", directory / "common.xsd")
        (tmp_path / "outside.xsd").write_bytes((XSD_DIR / "common.xsd").read_bytes())
        (directory / "itrace.xsd").write_text(
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:itrace:1">'
            f'<xs:include schemaLocation="{target}"/></xs:schema>',
            encoding="utf-8",
        )
        with pytest.raises(ConfigurationError, match="outside the schema directory"):
            SchemaSet.load(directory)
