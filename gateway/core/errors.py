"""The one error tree: the wire contract's stable refusal codes and the exceptions that carry them."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """`Rejection/Code` values of the wire contract, section 7; never renamed."""

    MALFORMED_XML = "MALFORMED_XML"
    FORBIDDEN_XML = "FORBIDDEN_XML"
    TOO_LARGE = "TOO_LARGE"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    CERTIFICATE_UNTRUSTED = "CERTIFICATE_UNTRUSTED"
    CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
    SENDER_MISMATCH = "SENDER_MISMATCH"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    UNKNOWN_TRACE = "UNKNOWN_TRACE"
    INVALID_STATE = "INVALID_STATE"
    INCOMPLETE = "INCOMPLETE"
    NO_ROUTE = "NO_ROUTE"
    DESTINATION_IS_SENDER = "DESTINATION_IS_SENDER"
    DESTINATION_NOT_CONNECTED = "DESTINATION_NOT_CONNECTED"
    STALE_MESSAGE = "STALE_MESSAGE"
    REASON_REQUIRED = "REASON_REQUIRED"
    UNKNOWN_RECORD = "UNKNOWN_RECORD"  # addition (contract 4.3): a RecordWithdrawal names no record of its sender's
    PROCESSING_FAILED = "PROCESSING_FAILED"  # addition: held in the dead-letter queue after bounded retries


class GatewayError(Exception):
    """Root of every error tracegate raises on purpose; catch this to catch them all."""


class Refused(GatewayError):
    """A message is refused: `code` and `detail` go to the sender in a signed `Rejection`.

    `detail` is human readable and never echoes the payload.
    """

    code: ErrorCode
    detail: str

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class OutboundTooLarge(GatewayError):
    """A message the gateway composed and signed is over the contract's size cap: never sent (a defect to report;
    the checks before signing should have refused its cause)."""


class ConfigurationError(GatewayError):
    """An administrator's file or setting is wrong; the message names the file and the fault."""


class TransientError(GatewayError):
    """A fault outside the message (database, broker) that a retry may cure; the message is not acked."""
