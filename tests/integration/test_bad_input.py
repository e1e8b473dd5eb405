"""Arbitrary bodies and headers never crash the worker and never get lost."""

import datetime
import uuid

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.broker import declare, wait_until
from tests.support.ledger import Ledger
from tests.support.processes import WorkerProcess
from workfleet_common import envelope
from workfleet_common.topology import Topology

MAX_ATTEMPTS = 2

# Values pika can put in an AMQP table (it has no encoding for floats).
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.datetimes(datetime.datetime(1970, 1, 2), datetime.datetime(2100, 1, 1)),
    st.text(max_size=50), st.binary(max_size=50),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
header_keys = st.one_of(st.just(envelope.ATTEMPTS_HEADER), st.just(envelope.REASON_HEADER), st.text(min_size=1, max_size=30))
headers = st.none() | st.dictionaries(header_keys, values, max_size=5)
nested_json = st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
bodies = st.one_of(st.binary(max_size=2000), st.text(max_size=200).map(str.encode), nested_json, st.just(b""),
                   st.just(b"x" * 2_000_000))
content_types = st.sampled_from([None, "text/plain", "application/json", "application/octet-stream", "garbage/?", ""])
encodings = st.sampled_from([None, "utf-8", "gzip", "nonsense"])


@pytest.fixture(scope="module")
def fuzz_worker(broker, tmp_path_factory):
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    declare(broker.amqp_url, Topology(queue))
    worker = WorkerProcess(broker.amqp_url, tmp_path_factory.mktemp("fuzz") / "worker.log",
                           "--queue", queue, "--max-attempts", str(MAX_ATTEMPTS), dot_seconds=0.0)
    worker.wait_ready()
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    yield worker, channel, queue
    connection.close()
    worker.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, headers=headers, content_type=content_types, encoding=encodings)
def test_any_message_ends_acked_or_dead_lettered(fuzz_worker, body, headers, content_type, encoding):
    """Pass: each message, whatever its body and headers (invalid UTF-8, huge, empty,
    deeply nested JSON, wrong types in our headers, attempt counts that lie), ends
    acked or dead-lettered with a reason, after at most max-attempts executions,
    and the worker keeps running."""
    worker, channel, queue = fuzz_worker
    message_id = uuid.uuid4().hex
    properties = pika.BasicProperties(message_id=message_id, headers=headers, content_type=content_type,
                                      content_encoding=encoding, delivery_mode=2)
    channel.basic_publish("", queue, body, properties, mandatory=True)

    def ledger_of_this_message() -> Ledger:
        ledger = Ledger.of_workers({message_id}, {message_id}, [worker])
        ledger.outcomes = [line for line in ledger.outcomes if line["message_id"] == message_id]
        return ledger

    wait_until(lambda: message_id in ledger_of_this_message().settled, timeout=30, interval=0.02,
               message=f"{message_id} settled")
    ledger = ledger_of_this_message()
    ledger.assert_nothing_lost()
    assert ledger.executions(message_id) <= MAX_ATTEMPTS
    for line in ledger.outcomes:
        if line["outcome"] == "dead_lettered":
            assert line["reason"] in {"malformed", "max_attempts", "rejected"}
    assert worker.process.poll() is None
