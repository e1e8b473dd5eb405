"""Tasks the integration tests run in real worker processes (tests/ is on PYTHONPATH)."""

from workfleet_worker.tasks import dots


def poison_or_dots(body, headers):
    """Fails every time for bodies starting with 'poison'; otherwise the tutorial's dots."""
    if str(body).startswith("poison"):
        raise RuntimeError("poisoned input")
    dots(body, headers)


def crash_or_dots(body, headers):
    """Kills its own worker process for bodies starting with 'crash', as a segfault or an
    out-of-memory kill would; otherwise the tutorial's dots."""
    import os

    if str(body).startswith("crash"):
        os._exit(137)
    dots(body, headers)


def slow_first_time(body, headers):
    """Sleeps WORKFLEET_TEST_SLOW_SECONDS the first time it sees a body, then returns
    at once: a task that outlives the broker's consumer timeout only once."""
    import hashlib
    import os
    import time
    from pathlib import Path

    marker = Path(os.environ["WORKFLEET_TEST_STATE_DIR"]) / hashlib.sha256(str(body).encode()).hexdigest()
    if not marker.exists():
        marker.touch()
        time.sleep(float(os.environ["WORKFLEET_TEST_SLOW_SECONDS"]))


def fail_first(body, headers):
    """Body 'fail N ...': fails its first N attempts (counted by the worker's attempts header), then
    succeeds; 'fail always ...' never succeeds."""
    from workfleet_common import envelope

    words = str(body).split()
    attempt = envelope.attempts_before(headers) + 1
    if words[1] == "always" or attempt <= int(words[1]):
        raise RuntimeError(f"failing attempt {attempt} on purpose")


def outage_until(body, headers):
    """Fails while the unix time is before the one in WORKFLEET_TEST_OUTAGE_UNTIL: a downstream
    service that is down, then back."""
    import os
    import time

    if time.time() < float(os.environ["WORKFLEET_TEST_OUTAGE_UNTIL"]):
        raise ConnectionRefusedError("downstream is down")


def blocks_time_limit_first_time(body, headers):
    """On its first delivery, blocks SIGALRM and sleeps 30 s: a task stuck where the soft time
    limit cannot reach it (as in C code). Redelivered, it returns at once."""
    import signal
    import time

    if headers.get("x-delivery-count", 0) == 0:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(30)


async def async_marker(body, headers):
    """An `async def` task: awaits a sleep of WORKFLEET_DOT_SECONDS per '.', then writes a marker
    named by the delivery's message id (read from current_delivery()) in WORKFLEET_TEST_STATE_DIR,
    holding its attempt. A message acked without its marker was acked without running."""
    import asyncio
    import os
    from pathlib import Path

    from workfleet_worker import current_delivery
    from workfleet_worker.tasks import dot_seconds

    await asyncio.sleep(str(body).count(".") * dot_seconds())
    delivery = current_delivery()
    marker = Path(os.environ["WORKFLEET_TEST_STATE_DIR"]) / delivery.message_id.replace("/", "_")
    marker.write_text(str(delivery.attempt))


def spins_or_sleeps_first_time(body, headers):
    """'spin': a pure-Python loop that never returns (only TaskTimeout raised in its thread stops
    it); 'stuck' on its first delivery: one 30 s sleep in C, which nothing raised in the thread can
    interrupt (only the hard limit ends it), then at once when redelivered; else the tutorial's dots."""
    import time

    text = str(body)
    if text == "spin":
        while True:
            pass
    if text == "stuck":
        if headers.get("x-delivery-count", 0) == 0:
            time.sleep(30)
        return
    dots(body, headers)
