"""--prefetch auto: the prefetch that keeps the buffer's work under its budget."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workfleet_worker.prefetch import AdaptivePrefetch

BUDGET_S = 0.05
CAP = 50


def settled(durations: list[float]) -> AdaptivePrefetch:
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    for duration in durations:
        prefetch.observe(duration)
    return prefetch


@pytest.mark.parametrize("duration_s, expected", [
    (0.0, CAP),          # faster than the clock: the cap
    (0.0001, CAP),
    (0.005, 8),          # wants 11 (1 running + 10 x 5 ms waiting = the budget); doubling from 1 stops at 8
    (0.02, 2),           # wants 3
    (0.05, 1),           # at the budget: fair dispatch
    (1.0, 1),
])
def test_steady_tasks_get_at_most_one_plus_the_budget_over_their_duration(duration_s, expected):
    assert settled([duration_s] * 200).current == expected


def test_it_starts_at_one_and_doubles_after_as_many_tasks_as_it_holds():
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    assert prefetch.current == 1
    changes = [change for change in (prefetch.observe(0.0) for _ in range(70)) if change is not None]
    assert changes == [2, 4, 8, 16, 32, CAP]


def test_one_short_task_risks_only_a_small_buffer():
    """After one trivial task (a smoke test, say) a burst of long tasks finds a buffer of 2, not 50."""
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    assert prefetch.observe(0.0) == 2
    prefetch.task_ran_long(elapsed_s=BUDGET_S)  # the first long one passes the budget: one hand-back
    assert prefetch.current == 1


def test_a_long_task_drops_it_to_one_at_once_and_short_tasks_bring_it_back():
    prefetch = settled([0.001] * 100)
    assert prefetch.current == CAP
    prefetch.task_ran_long(elapsed_s=BUDGET_S)
    assert prefetch.current == 1
    assert prefetch.observe(2.0) is None, "still 1 after the long task ends"
    # The long task weighs in the average for a while: frequent long tasks keep it at 1.
    rises = [prefetch.observe(0.001) for _ in range(120)]
    assert prefetch.current > 20 and any(rises)


def test_jitter_does_not_move_it():
    prefetch = settled([0.005] * 200)
    changes = [prefetch.observe(duration) for duration in [0.003, 0.008] * 50]
    assert changes == [None] * 100


@given(st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=300))
def test_always_between_one_and_the_cap_and_one_once_tasks_take_the_budget(durations):
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    for duration in durations:
        before = prefetch.current
        changed = prefetch.observe(duration)
        assert changed is None or changed == prefetch.current
        assert 1 <= prefetch.current <= min(CAP, before * 2)
    for _ in range(60):
        prefetch.observe(BUDGET_S * 2)
    assert prefetch.current == 1
