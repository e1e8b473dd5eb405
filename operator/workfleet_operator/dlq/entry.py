"""One dead-lettered message as an operator sees it, and its headers for a requeue.

Pure functions of the message's properties and body; reading and writing the
queue is dead_letter_queue.py's job.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from workfleet_common import envelope

# Headers that describe past failures. A requeued message starts over, so these go,
# together with the broker's own dead-lettering and delivery-count headers.
FAILURE_HEADERS = (
    envelope.ATTEMPTS_HEADER,
    envelope.REASON_HEADER,
    envelope.ERROR_HEADER,
    envelope.FAILED_AT_HEADER,
    envelope.FIRST_FAILED_AT_HEADER,
    envelope.RETRY_DELAY_HEADER,
    *envelope.BROKER_HEADERS,
)


@dataclass(frozen=True)
class DeadLetter:
    message_id: str  # the message id, or the body's fingerprint when it has none
    reason: str
    attempts: int | None
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    error: str
    headers: dict[str, Any]

    @classmethod
    def from_message(cls, properties, body: bytes) -> "DeadLetter":
        headers = dict(properties.headers or {})
        attempts = headers.get(envelope.ATTEMPTS_HEADER)
        return cls(
            message_id=envelope.message_name(properties.message_id, body),
            reason=_reason(headers),
            attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else None,
            first_failed_at=_time(headers.get(envelope.FIRST_FAILED_AT_HEADER)),
            last_failed_at=_time(headers.get(envelope.FAILED_AT_HEADER)),
            error=_text(headers.get(envelope.ERROR_HEADER)),
            headers=headers,
        )

    def matches(self, ids: set[str] | None, reason: str | None) -> bool:
        """None means any: `matches(None, None)` selects every message."""
        return (ids is None or self.message_id in ids) and (reason is None or self.reason == reason)


def requeue_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """The headers of a message requeued from the dead-letter queue: attempts start over."""
    return {name: value for name, value in (headers or {}).items() if name not in FAILURE_HEADERS}


def _reason(headers: dict[str, Any]) -> str:
    """The worker's reason; else the broker's own (a message the broker dead-lettered
    itself, such as `delivery_limit` for a task that kept killing its worker)."""
    return _text(headers.get(envelope.REASON_HEADER)) or _broker_reason(headers) or "unknown"


def _broker_reason(headers: dict[str, Any]) -> str:
    """Why the broker dead-lettered it last. x-last-death-reason exists from RabbitMQ 3.13; before,
    the newest x-death entry comes first. Not x-first-death-reason: a message that waited in a
    retry queue died there first, of `expired`."""
    if "x-last-death-reason" in headers:
        return _text(headers["x-last-death-reason"])
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return _text(deaths[0].get("reason"))
    return _text(headers.get("x-first-death-reason"))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or timezone.utc)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return datetime.fromtimestamp(value, timezone.utc)
    return None
