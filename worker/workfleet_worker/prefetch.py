"""How many deliveries the broker may send ahead: a fixed number, or `auto`.

A prefetch of 1 is the tutorial's fair dispatch: a worker holds only the task it runs, so no task
waits behind a long one. It costs a broker round trip per task, which for millisecond tasks is most
of the time spent. `auto` keeps the work waiting in the worker's own buffer under a time budget:
  prefetch = 1 + budget / (typical task duration), capped,
so tasks of a second or more stay at 1 and millisecond tasks get enough to hide the round trip.
The typical duration is a moving average of the last tens of tasks. A guess from a few short
tasks can be wrong (a burst of long ones may follow), and a wrong guess costs a hand-back of the
whole buffer, so it grows as TCP's slow start does: at most doubling, and only after as many tasks
as the current prefetch. Each change costs a new consumer (three round trips), and above ten or so
the exact prefetch hardly matters, so it moves only by a factor of two, except down to 1, which is
never delayed. A task cannot be known to be long before it runs: when one passes the budget, the
consumer hands the buffer back and calls `task_ran_long`, which drops to 1 until short tasks bring
it up again.
"""

from dataclasses import dataclass

# Weight of the newest duration in the moving average: about the last 10 tasks count.
SMOOTHING = 0.1
CHANGE_FACTOR = 2


@dataclass(frozen=True)
class PrefetchSetting:
    """`--prefetch`: a number, or auto (None) with its budget and cap."""

    fixed: int | None
    budget_s: float = 0.05
    cap: int = 50

    @property
    def initial(self) -> int:
        return self.fixed or 1


class AdaptivePrefetch:
    def __init__(self, budget_s: float, cap: int):
        self.budget_s = budget_s
        self.cap = cap
        self.current = 1
        self._typical_s: float | None = None
        self._tasks_since_change = 0

    def observe(self, duration_s: float) -> int | None:
        """Record a finished task's duration; the new prefetch if it should change, else None."""
        self._tasks_since_change += 1
        if self._typical_s is None:
            self._typical_s = duration_s
        else:
            self._typical_s += SMOOTHING * (duration_s - self._typical_s)
        wanted = self._target()
        if wanted == self.current:
            return None
        if wanted == 1:
            return self._change_to(1)
        if self._tasks_since_change < self.current:
            return None
        if wanted >= self.current * CHANGE_FACTOR or wanted == self.cap:
            return self._change_to(min(wanted, self.current * 2))
        if wanted * CHANGE_FACTOR <= self.current:
            return self._change_to(wanted)
        return None

    def _change_to(self, prefetch: int) -> int:
        self.current = prefetch
        self._tasks_since_change = 0
        return prefetch

    def task_ran_long(self, elapsed_s: float) -> None:
        """A task has run past the budget: back to 1, and the average starts from that task."""
        self.current = 1
        self._tasks_since_change = 0
        self._typical_s = max(self._typical_s or 0.0, elapsed_s)

    def _target(self) -> int:
        if self._typical_s >= self.budget_s:
            return 1
        # A zero duration (a task faster than the clock) counts as a microsecond.
        return min(self.cap, 1 + int(self.budget_s / max(self._typical_s, 1e-6)))
