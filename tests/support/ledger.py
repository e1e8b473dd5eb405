"""The ledger that judges every delivery test, as Jepsen does for RabbitMQ.

The producer side records which ids were confirmed (or indeterminate); the
workers' JSON outcome lines record what happened to each id. After the run:
  lost       = confirmed - (acked + dead-lettered)   must be empty
  unexpected = settled ids nobody published          must be empty
Duplicates (an id acked more than once) are reported so a test can bound them
by what was in flight at the fault. Never judged: the `redelivered` flag.
"""

import collections
from dataclasses import dataclass, field

from tests.support.broker import get_all, queue_depth, wait_until
from workfleet_common.logs import read_delivery_outcomes


@dataclass
class Ledger:
    published: set[str]
    confirmed: set[str]
    outcomes: list[dict] = field(default_factory=list)

    @classmethod
    def of_workers(cls, published, confirmed, workers) -> "Ledger":
        """A ledger read from the workers' logs as they are now."""
        ledger = cls(set(published), set(confirmed))
        for worker in workers:
            ledger.outcomes.extend(read_delivery_outcomes(worker.log_path))
        return ledger

    def ids_with(self, outcome: str) -> collections.Counter:
        return collections.Counter(line["message_id"] for line in self.outcomes if line["outcome"] == outcome)

    @property
    def settled(self) -> set[str]:
        return set(self.ids_with("acked")) | set(self.ids_with("dead_lettered"))

    @property
    def lost(self) -> set[str]:
        return self.confirmed - self.settled

    @property
    def unexpected(self) -> set[str]:
        return {line["message_id"] for line in self.outcomes} - self.published

    @property
    def duplicates(self) -> dict[str, int]:
        settled = self.ids_with("acked") + self.ids_with("dead_lettered")
        return {message_id: count for message_id, count in settled.items() if count > 1}

    def execution_counts(self) -> collections.Counter:
        """Logged executions per id (a task killed mid-run logs none)."""
        return collections.Counter(line["message_id"] for line in self.outcomes)

    def executions(self, message_id: str) -> int:
        return self.execution_counts()[message_id]

    def summary(self) -> str:
        return (
            f"published={len(self.published)} confirmed={len(self.confirmed)} "
            f"acked={len(self.ids_with('acked'))} dead_lettered={len(self.ids_with('dead_lettered'))} "
            f"lost={sorted(self.lost)[:10]} unexpected={sorted(self.unexpected)[:10]} "
            f"duplicates={dict(list(self.duplicates.items())[:10])}"
        )

    def assert_nothing_lost(self, max_duplicates: int = 0) -> None:
        assert not self.lost, "lost messages: " + self.summary()
        assert not self.unexpected, "unexpected messages: " + self.summary()
        assert len(self.duplicates) <= max_duplicates, "too many duplicates: " + self.summary()


    def assert_final(
        self,
        amqp_url: str,
        topology,
        dead_lettered: set[str] = frozenset(),
        max_duplicates: int = 0,
        max_executions: int = 1,
    ) -> None:
        """The whole verdict once the fault healed and everything drained: nothing lost
        or unexpected, duplicates and executions within bounds, the work queue empty,
        and the dead-letter queue holding exactly the expected ids (it is emptied)."""
        self.assert_nothing_lost(max_duplicates)
        over = {message_id: count for message_id, count in self.execution_counts().items() if count > max_executions}
        assert not over, f"executed more than {max_executions} times: {over}; " + self.summary()
        assert set(self.ids_with("dead_lettered")) == set(dead_lettered), "dead-lettered: " + self.summary()
        assert queue_depth(amqp_url, topology.queue)[0] == 0, "the work queue is not empty"
        resting = collections.Counter(properties.message_id for properties, _ in get_all(amqp_url, topology.dead_letter_queue))
        assert set(resting) == set(dead_lettered) and sum(resting.values()) <= len(dead_lettered) + max_duplicates, (
            f"dead-letter queue holds {dict(resting)}"
        )


def wait_for_ledger(ids, confirmed, workers, timeout: float = 120) -> Ledger:
    """Read the workers' logs until every confirmed id is settled; the ledger at that point."""
    ledgers = []

    def settled():
        ledgers.append(Ledger.of_workers(ids, confirmed, workers))
        return ledgers[-1].settled >= set(confirmed)

    try:
        wait_until(settled, timeout=timeout, interval=0.2, message="every confirmed message settled")
    except AssertionError as error:
        raise AssertionError(f"{error}; ledger: {ledgers[-1].summary()}") from None
    return ledgers[-1]
