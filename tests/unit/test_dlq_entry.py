from datetime import datetime, timezone

import pika

from workfleet_common import envelope
from workfleet_operator.dlq.cli import format_table
from workfleet_operator.dlq.entry import DeadLetter, requeue_headers

FAILED_AT = int(datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc).timestamp())


def dead_letter_properties(**headers):
    worker_headers = {
        envelope.ATTEMPTS_HEADER: 5,
        envelope.REASON_HEADER: "max_attempts",
        envelope.ERROR_HEADER: "RuntimeError: boom\nwith a second line",
        envelope.FIRST_FAILED_AT_HEADER: FAILED_AT - 60,
        envelope.FAILED_AT_HEADER: FAILED_AT,
        "x-delivery-count": 2,
        "tenant": "acme",
    }
    worker_headers.update(headers)
    return pika.BasicProperties(message_id="m-1", headers=worker_headers)


def test_a_dead_letter_reads_the_workers_headers():
    entry = DeadLetter.from_message(dead_letter_properties(), b"body")
    assert entry.message_id == "m-1"
    assert entry.reason == "max_attempts"
    assert entry.attempts == 5
    assert entry.first_failed_at == datetime(2026, 11, 27, 5, 59, tzinfo=timezone.utc)
    assert entry.last_failed_at == datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)


def test_headers_that_lie_are_shown_as_unknown_not_trusted():
    properties = dead_letter_properties(**{envelope.ATTEMPTS_HEADER: "five", envelope.FAILED_AT_HEADER: True})
    properties.headers.pop(envelope.REASON_HEADER)
    entry = DeadLetter.from_message(properties, b"body")
    assert (entry.attempts, entry.last_failed_at, entry.reason) == (None, None, "unknown")


def test_a_message_without_id_is_named_by_its_fingerprint():
    entry = DeadLetter.from_message(pika.BasicProperties(), b"tutorial task...")
    assert entry.message_id == envelope.fingerprint(b"tutorial task...")


def test_requeue_headers_drop_the_failure_history_and_keep_the_users_headers():
    assert requeue_headers(dead_letter_properties().headers) == {"tenant": "acme"}
    assert requeue_headers(None) == {}


def test_selection_by_ids_and_reason():
    entry = DeadLetter.from_message(dead_letter_properties(), b"body")
    assert entry.matches(None, None)
    assert entry.matches({"m-1", "m-2"}, None)
    assert not entry.matches({"m-2"}, None)
    assert entry.matches(None, "max_attempts")
    assert not entry.matches(None, "malformed")
    assert not entry.matches({"m-1"}, "malformed")


def test_the_table_keeps_each_error_on_one_line():
    table = format_table([DeadLetter.from_message(dead_letter_properties(), b"body")])
    header, row = table.splitlines()
    assert header.split() == ["ID", "REASON", "ATTEMPTS", "FIRST", "FAILED", "LAST", "FAILED", "ERROR"]
    assert row.split()[:3] == ["m-1", "max_attempts", "5"]
    assert "2026-11-27 05:59:00Z" in row and "2026-11-27 06:00:00Z" in row
    assert row.endswith("RuntimeError: boom with a second line")


def test_a_message_the_broker_dead_lettered_shows_the_brokers_reason():
    properties = pika.BasicProperties(message_id="m-2", headers={"x-first-death-reason": b"delivery_limit"})
    entry = DeadLetter.from_message(properties, b"body")
    assert (entry.reason, entry.attempts) == ("delivery_limit", None)
    assert entry.matches(None, "delivery_limit")


def test_the_brokers_last_reason_wins_over_a_retry_queues_expiry():
    """A message that waited in a retry queue died there first (expired); when the work queue's
    delivery limit dead-letters it later, that is its reason, on 4.x and on 3.10 (no x-last-death)."""
    deaths = [{"queue": "jobs", "reason": b"delivery_limit", "count": 1},
              {"queue": "jobs.retry.1s", "reason": b"expired", "count": 1}]
    newer = {"x-first-death-reason": b"expired", "x-last-death-reason": b"delivery_limit", "x-death": deaths}
    older = {"x-first-death-reason": b"expired", "x-death": deaths}
    for headers in (newer, older):
        entry = DeadLetter.from_message(pika.BasicProperties(message_id="m-3", headers=headers), b"body")
        assert entry.reason == "delivery_limit"


def test_requeue_drops_the_retry_delay_and_the_brokers_dead_letter_history():
    headers = dead_letter_properties(**{envelope.RETRY_DELAY_HEADER: 1000, "x-death": [], "x-last-death-queue": b"jobs"}).headers
    assert requeue_headers(headers) == {"tenant": "acme"}
