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
