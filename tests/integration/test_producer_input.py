"""Bad producer input against a real broker: a clear error, non-zero exit, nothing sent."""

import subprocess
import sys
from pathlib import Path

import pika
import pytest

PRODUCE = Path(sys.executable).parent / "workfleet-produce"


def queue_exists(amqp_url: str, queue: str) -> bool:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        try:
            connection.channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert error.reply_code == 404
            return False
        return True


@pytest.mark.parametrize(
    "case",
    ["empty file", "blank lines only", "empty stdin", "missing file", "a directory", "one line too big"],
)
def test_bad_input_is_refused_before_anything_is_sent(broker, queue_name, tmp_path, case):
    """Pass: exit status 2, one line on stderr that says what is wrong, and the
    queue was never even declared (the producer refuses before connecting)."""
    stdin = ""
    if case == "empty file":
        (tmp_path / "in.txt").write_bytes(b"")
        args = ["--file", str(tmp_path / "in.txt")]
    elif case == "blank lines only":
        (tmp_path / "in.txt").write_text("\n  \n\n")
        args = ["--file", str(tmp_path / "in.txt")]
    elif case == "empty stdin":
        args = ["--file", "-"]
    elif case == "missing file":
        args = ["--file", str(tmp_path / "absent.txt")]
    elif case == "a directory":
        args = ["--file", str(tmp_path)]
    else:
        (tmp_path / "in.txt").write_text("fine\n" + "x" * 2000 + "\nalso fine\n")
        args = ["--file", str(tmp_path / "in.txt"), "--max-message-bytes", "1000"]
    result = subprocess.run(
        [PRODUCE, "--amqp-url", broker.amqp_url, "--queue", queue_name, *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    expected = {
        "empty file": "nothing to publish",
        "blank lines only": "nothing to publish",
        "empty stdin": "nothing to publish",
        "missing file": "cannot read",
        "a directory": "cannot read",
        "one line too big": "1 message(s) over the 1000-byte limit, nothing was sent: #2 (2000 bytes)",
    }[case]
    assert message.startswith("workfleet-produce: ") and expected in message, message
    assert not queue_exists(broker.amqp_url, queue_name)
