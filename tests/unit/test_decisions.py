import pytest

from workfleet_worker import decisions
from workfleet_worker.decisions import Action, Reason
from workfleet_worker.errors import Reject


@pytest.mark.parametrize(
    "attempt, max_attempts, error, action, reason",
    [
        (1, 5, None, Action.ACK, None),
        (5, 5, None, Action.ACK, None),
        (1, 5, RuntimeError("x"), Action.RETRY, None),
        (4, 5, RuntimeError("x"), Action.RETRY, None),
        (5, 5, RuntimeError("x"), Action.DEAD_LETTER, Reason.MAX_ATTEMPTS),
        (9, 5, RuntimeError("x"), Action.DEAD_LETTER, Reason.MAX_ATTEMPTS),  # a header that lies
        (1, 1, RuntimeError("x"), Action.DEAD_LETTER, Reason.MAX_ATTEMPTS),
        (1, 5, Reject("never"), Action.DEAD_LETTER, Reason.REJECTED),
        (1, 5, SystemExit(3), Action.RETRY, None),
    ],
)
def test_after_task(attempt, max_attempts, error, action, reason):
    decision = decisions.after_task(attempt, max_attempts, error)
    assert (decision.action, decision.reason) == (action, reason)


def test_malformed_is_dead_lettered():
    assert decisions.for_malformed().reason is Reason.MALFORMED
