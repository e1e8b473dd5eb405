import pytest

from workfleet_common import envelope
from workfleet_common.envelope import MalformedMessage


def test_untyped_body_is_text():
    assert envelope.decode(b"hello.", None, None, None).body == "hello."


def test_json_body_is_parsed():
    message = envelope.decode(b'{"a": [1, 2]}', {}, "application/json; charset=utf-8", None)
    assert message.body == {"a": [1, 2]}


def test_binary_content_type_keeps_bytes():
    assert envelope.decode(b"\xff\x00", None, "application/octet-stream", None).body == b"\xff\x00"


@pytest.mark.parametrize(
    "body, content_type, encoding, problem",
    [
        (b"\xff\xfe", None, None, "UTF-8"),
        (b"\xff\xfe", "text/plain", None, "UTF-8"),
        (b"{", "application/json", None, "JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", None, "JSON"),
        (b"x", None, "gzip", "content-encoding"),
    ],
)
def test_undecodable_bodies_are_malformed(body, content_type, encoding, problem):
    with pytest.raises(MalformedMessage, match=problem):
        envelope.decode(body, None, content_type, encoding)


@pytest.mark.parametrize("value", ["3", -1, True, 2.5, None, [1]])
def test_attempts_header_must_be_a_count(value):
    with pytest.raises(MalformedMessage, match=envelope.ATTEMPTS_HEADER):
        envelope.decode(b"x", {envelope.ATTEMPTS_HEADER: value}, None, None)


def test_attempts_header_is_read():
    assert envelope.decode(b"x", {envelope.ATTEMPTS_HEADER: 3}, None, None).attempts_before == 3
    assert envelope.decode(b"x", {}, None, None).attempts_before == 0


def test_fingerprint_is_stable_and_distinguishes_bodies():
    assert envelope.fingerprint(b"a") == envelope.fingerprint(b"a")
    assert envelope.fingerprint(b"a") != envelope.fingerprint(b"b")
    assert envelope.message_name(None, b"a") == envelope.fingerprint(b"a")
    assert envelope.message_name("id-1", b"a") == "id-1"


def test_error_summary_is_bounded():
    summary = envelope.summarize_error(ValueError("x" * 5000))
    assert summary.startswith("ValueError: x")
    assert len(summary) == envelope.ERROR_HEADER_LIMIT
