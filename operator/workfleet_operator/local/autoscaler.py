"""The operator's scaling loop on one machine, for `workfleet up`.

The same stats reader (the management API, with exact ready counts over AMQP, on the
operator's shared poll grid) and the same policy function as a WorkerPool in Kubernetes;
the replicas are worker processes (worker_processes.py). Which workers hold messages is
read from each worker's own /metrics, so a scale-in never stops a busy worker while an
idle one runs.
"""

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from workfleet_operator.local.worker_processes import WorkerProcesses
from workfleet_operator.scaling.policy import Decision, Observation, Policy, Recommendation, decide, prune_history
from workfleet_operator.scaling.rates import Rates, RateWindow, observe_queue
from workfleet_operator.stats.management import (Credentials, ManagementClient, QueueStats, StatsError, queue_in,
                                                  waiting_to_retry)
from workfleet_operator.stats.ready_probe import ReadyProbe
from workfleet_operator.stats.sampler import VhostSampler


@dataclass(frozen=True)
class Broker:
    management_url: str
    amqp_url: str
    credentials: Credentials
    vhost: str = "/"
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class Step:
    """One poll: what was seen, and what was decided."""

    at: float  # monotonic seconds
    previous: int
    decision: Decision
    stats: QueueStats | None
    error: StatsError | None
    rates: Rates | None
    busy: int  # workers holding messages
    running: int  # workers alive and not stopping, after the decision was acted on
    dead_letters: int | None  # messages in <queue>.dlq
    waiting_to_retry: dict[str, int]  # messages in <queue>.retry.<delay>, by delay

    @property
    def changed(self) -> bool:
        return self.decision.desired != self.previous


class LocalAutoscaler:
    def __init__(self, broker: Broker, queue: str, policy: Policy, workers: WorkerProcesses,
                 poll_seconds: float = 1.0, rate_window_seconds: float = 10.0):
        self.broker = broker
        self.queue = queue
        self.policy = policy
        self.workers = workers
        self.poll_seconds = poll_seconds
        self._rates = RateWindow(rate_window_seconds)
        self._history: tuple[Recommendation, ...] = ()
        self._failed_polls = 0
        self._per_replica_rate: float | None = None

    async def run(self, stop: asyncio.Event, on_step: Callable[[Step], None]) -> None:
        """Poll on the grid until `stop` is set; each step is reported, then acted on."""
        async with aiohttp.ClientSession() as session:
            client = ManagementClient(session, self.broker.management_url, self.broker.credentials,
                                      self.broker.timeout_seconds)
            probe = ReadyProbe(self.broker.amqp_url, self.broker.vhost, self.broker.credentials)
            sampler = VhostSampler(client, self.broker.vhost, probe=probe)
            try:
                while not stop.is_set():
                    due_ms = sampler.next_due(self.poll_seconds)
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=max(due_ms / 1000 - time.monotonic(), 0))
                        return
                    except asyncio.TimeoutError:
                        pass
                    step = await self.poll(sampler, due_ms)
                    on_step(step)
            finally:
                await asyncio.to_thread(probe.close)

    async def poll(self, sampler: VhostSampler, due_ms: int) -> Step:
        now = time.monotonic()
        stats, error, dead_letters, waiting = await self._read_stats(sampler, due_ms)
        holdings = await asyncio.to_thread(self.workers.holdings)
        busy = sum(1 for held in holdings.values() if held > 0)
        observation = dataclasses.replace(self._observe(now, stats), pods_holding_unacked=busy)
        current = self.workers.replicas  # as a Deployment's replicas: lost workers are replaced, not unwanted
        decision = decide(now, observation, current, self.policy, self._history)
        if decision.recommendation is not None:
            self._history = prune_history(now, self._history, self.policy) + (Recommendation(now, decision.recommendation),)
        await asyncio.to_thread(self.workers.reconcile, decision.desired)
        return Step(now, current, decision, stats, error, self._rates.rates() if stats else None, busy,
                    len(self.workers.running), dead_letters, waiting)

    async def _read_stats(self, sampler: VhostSampler, due_ms: int
                          ) -> tuple[QueueStats | None, StatsError | None, int | None, dict[str, int]]:
        """The work queue's stats or why they are missing, the dead-letter queue's depth, and the
        retry queues'."""
        dead_letters, waiting = None, {}
        try:
            queues = await sampler.sample(due_ms, self.queue)
            waiting = waiting_to_retry(queues, self.queue)
            dead_letter_stats = queues.get(f"{self.queue}.dlq")
            if isinstance(dead_letter_stats, QueueStats):
                dead_letters = dead_letter_stats.ready + dead_letter_stats.unacked
            stats = queue_in(queues, self.queue, self.broker.vhost)
        except StatsError as error:
            self._failed_polls += 1
            return None, error, dead_letters, waiting
        self._failed_polls = 0
        return stats, None, dead_letters, waiting

    def _observe(self, now: float, stats: QueueStats | None) -> Observation:
        if stats is None:
            return Observation(ready=None, unacked=None, failed_polls=self._failed_polls)
        observation, _, self._per_replica_rate = observe_queue(now, stats, self._rates, self._per_replica_rate)
        return observation
