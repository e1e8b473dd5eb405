"""Tasks the integration tests run in real worker processes (tests/ is on PYTHONPATH)."""

from workfleet_worker.tasks import dots


def poison_or_dots(body, headers):
    """Fails every time for bodies starting with 'poison'; otherwise the tutorial's dots."""
    if str(body).startswith("poison"):
        raise RuntimeError("poisoned input")
    dots(body, headers)
