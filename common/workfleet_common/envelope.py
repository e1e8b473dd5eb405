"""The headers workfleet owns on a message, and how a delivery's body is decoded.

Pure functions only: the worker decides from these what to do with a delivery.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# Executions already made before this delivery. Kept by the worker itself rather
# than read from the broker's x-delivery-count, whose meaning changed in RabbitMQ 4.3.
ATTEMPTS_HEADER = "x-workfleet-attempts"
BROKER_DELIVERY_COUNT_HEADER = "x-delivery-count"
REASON_HEADER = "x-workfleet-reason"
ERROR_HEADER = "x-workfleet-error"
FAILED_AT_HEADER = "x-workfleet-failed-at"
FIRST_FAILED_AT_HEADER = "x-workfleet-first-failed-at"
RETRY_DELAY_HEADER = "x-workfleet-retry-delay-ms"  # the wait before the attempt after this failure
# What the broker adds to a message it delivers or dead-letters.
BROKER_HEADERS = (
    BROKER_DELIVERY_COUNT_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)

ERROR_HEADER_LIMIT = 1000
TEXT_CONTENT_TYPES = ("text/", "application/x-www-form-urlencoded")
JSON_CONTENT_TYPE = "application/json"
ACCEPTED_ENCODINGS = (None, "", "utf-8", "utf8", "identity")


class MalformedMessage(ValueError):
    """The delivery cannot be decoded; it is dead-lettered on first sight."""


@dataclass(frozen=True)
class DecodedMessage:
    body: Any
    headers: dict[str, Any]
    attempts_before: int


def fingerprint(body: bytes) -> str:
    """A stable name for a message that has no message id (the tutorial sends none)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def message_name(message_id: str | None, body: bytes) -> str:
    return message_id if message_id else fingerprint(body)


def attempts_before(headers: dict[str, Any]) -> int:
    value = headers.get(ATTEMPTS_HEADER, 0)
    # bool is an int in Python; a header that says True is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedMessage(f"header {ATTEMPTS_HEADER} must be a non-negative integer")
    return value


def decode_body(body: bytes, content_type: str | None, content_encoding: str | None) -> Any:
    """Text for text and untyped bodies, parsed JSON for JSON, bytes for anything else."""
    if content_encoding not in ACCEPTED_ENCODINGS:
        raise MalformedMessage(f"unsupported content-encoding {content_encoding!r}")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and media_type != JSON_CONTENT_TYPE and not media_type.startswith(TEXT_CONTENT_TYPES):
        return body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedMessage(f"body is not UTF-8 text: {error.reason} at byte {error.start}") from None
    if media_type != JSON_CONTENT_TYPE:
        return text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise MalformedMessage(f"body is not valid JSON: {str(error)[:200]}") from None


def decode(
    body: bytes, headers: dict[str, Any] | None, content_type: str | None, content_encoding: str | None
) -> DecodedMessage:
    headers = dict(headers or {})
    return DecodedMessage(
        body=decode_body(body, content_type, content_encoding),
        headers=headers,
        attempts_before=attempts_before(headers),
    )


def summarize_error(error: BaseException) -> str:
    """Type and message of a task's exception, short enough for a header and a log line."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_HEADER_LIMIT else text[: ERROR_HEADER_LIMIT - 3] + "..."
