"""--prefetch auto: the prefetch that keeps the buffer's work under its budget."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workfleet_worker.prefetch import MIN_CHANGE_INTERVAL_S, AdaptivePrefetch

BUDGET_S = 0.05
CAP = 50


class Clock:
    """Seconds for observe(now=...): each task a second after the last unless told otherwise."""

    def __init__(self):
        self._ticks = itertools.count()

    def __call__(self) -> float:
        return float(next(self._ticks))


def settled(durations: list[float], clock: Clock | None = None) -> AdaptivePrefetch:
    clock = clock or Clock()
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    for duration in durations:
        prefetch.observe(duration, now=clock())
    return prefetch


@pytest.mark.parametrize("duration_s, expected", [
    (0.0, CAP),          # faster than the clock: the cap
    (0.0001, CAP),
    (0.005, 11),         # 1 running + 10 x 5 ms waiting = the 50 ms budget
    (0.02, 3),
    (0.05, 1),           # at the budget: fair dispatch
    (1.0, 1),
])
def test_steady_tasks_get_one_plus_the_budget_over_their_duration(duration_s, expected):
    assert settled([duration_s] * 60).current == expected


def test_it_starts_at_one_and_rises_after_the_first_short_task():
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    assert prefetch.current == 1
    assert prefetch.observe(0.001, now=0.0) == CAP


def test_it_moves_at_most_once_a_second_except_down_to_one():
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    assert prefetch.observe(0.004, now=0.0) == 13
    # Tasks ten times faster, at once: held until a second has passed.
    assert [prefetch.observe(0.0004, now=0.1 * step) for step in range(1, 10)] == [None] * 9
    assert prefetch.observe(0.0004, now=MIN_CHANGE_INTERVAL_S) >= 2 * 13
    # A task of twice the budget drops it to 1 at once.
    assert prefetch.observe(1.0, now=MIN_CHANGE_INTERVAL_S + 0.01) == 1


def test_a_long_task_drops_it_to_one_at_once_and_short_tasks_bring_it_back():
    clock = Clock()
    prefetch = settled([0.001] * 30, clock)
    prefetch.task_ran_long(elapsed_s=BUDGET_S, now=clock())
    assert prefetch.current == 1
    assert prefetch.observe(2.0, now=clock()) is None, "still 1 after the long task ends"
    # The long task weighs in the average for a while: frequent long tasks keep it at 1.
    rises = [prefetch.observe(0.001, now=clock()) for _ in range(80)]
    assert prefetch.current > 20 and any(rises)


def test_jitter_does_not_move_it():
    clock = Clock()
    prefetch = settled([0.005] * 60, clock)
    changes = [prefetch.observe(duration, now=clock()) for duration in [0.003, 0.008] * 50]
    assert changes == [None] * 100


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=10), st.floats(min_value=0, max_value=5)),
                min_size=1, max_size=200))
def test_always_between_one_and_the_cap_and_one_once_tasks_take_the_budget(tasks):
    prefetch = AdaptivePrefetch(BUDGET_S, CAP)
    now = 0.0
    for duration, gap in tasks:
        now += gap
        changed = prefetch.observe(duration, now=now)
        assert changed is None or changed == prefetch.current
        assert 1 <= prefetch.current <= CAP
    for _ in range(60):
        prefetch.observe(BUDGET_S * 2, now=now)
    assert prefetch.current == 1
