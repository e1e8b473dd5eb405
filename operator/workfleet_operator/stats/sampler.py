"""One stats request per vhost per poll, however many pools read that vhost.

Pools poll on a shared time grid: a pool polling every P seconds wakes at the
multiples of P (plus an offset per broker, so brokers do not all wake at once).
Pools on one grid point ask the sampler for the same due time, and the first
asker's request is the one every other pool awaits. Pools polling every 1 s and
every 5 s share every fifth request; requests per minute grow with the number of
distinct poll intervals on a vhost, never with the number of pools.

With a ReadyProbe (the pools give `broker.amqpUrl`), each sample also carries
the exact ready count and consumers of every queue asked for at that due time,
read over AMQP right after the management request.
"""

import asyncio
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable

from workfleet_operator.stats.management import ManagementClient, QueueStats, StatsError
from workfleet_operator.stats.ready_probe import ReadyProbe, ReadyProbeError

LOGGER = logging.getLogger(__name__)

VhostQueues = dict[str, "QueueStats | StatsError"]
# Results are kept this long after their due time, for pools that ask late.
KEEP_MS = 30_000


def grid_offset_ms(key: str, poll_ms: int = 1000) -> int:
    """A stable offset below one second for a broker, from its key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % poll_ms


def next_due_ms(now_ms: int, poll_ms: int, offset_ms: int) -> int:
    """The next grid point strictly after now for a poll interval."""
    return (math.floor((now_ms - offset_ms) / poll_ms) + 1) * poll_ms + offset_ms


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class VhostSampler:
    """Shares the management-API request for one due time among every pool of a vhost."""

    def __init__(
        self,
        client: ManagementClient,
        vhost: str,
        on_request: Callable[[str, bool], None] = lambda source, ok: None,
        probe: ReadyProbe | None = None,
    ):
        self.client = client
        self.vhost = vhost
        self.probe = probe
        self.offset_ms = grid_offset_ms(f"{client.base_url}|{vhost}")
        self._on_request = on_request
        self._by_due: dict[int, asyncio.Task] = {}
        self._wanted: dict[int, set[str]] = {}
        self._holdings_by_due: dict[int, asyncio.Task] = {}

    def next_due(self, poll_seconds: float) -> int:
        return next_due_ms(monotonic_ms(), max(int(poll_seconds * 1000), 1), self.offset_ms)

    async def sample(self, due_ms: int, queue: str) -> VhostQueues:
        """The vhost's queues as read at the due time; raises StatsError for the whole vhost."""
        self._wanted.setdefault(due_ms, set()).add(queue)
        task = self._by_due.get(due_ms)
        if task is None:
            self._forget_old(due_ms)
            task = self._by_due[due_ms] = asyncio.ensure_future(self._fetch_at(due_ms))
        # shield: one pool being cancelled (deleted) must not cancel the others' request.
        return await asyncio.shield(task)

    async def holdings(self, due_ms: int) -> dict[str, int]:
        """Unacked messages by client-named connection, read once per due time for every pool
        of the vhost that is about to scale in; raises StatsError."""
        task = self._holdings_by_due.get(due_ms)
        if task is None:
            for due in [due for due in self._holdings_by_due if due < due_ms - KEEP_MS]:
                self._retire(self._holdings_by_due.pop(due))
            task = self._holdings_by_due[due_ms] = asyncio.ensure_future(self.client.unacked_by_connection_name(self.vhost))
        return await asyncio.shield(task)

    async def _fetch_at(self, due_ms: int) -> VhostQueues:
        delay = (due_ms - monotonic_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            queues = await self.client.vhost_queues(self.vhost)
        except StatsError:
            self._on_request("management", False)
            raise
        self._on_request("management", True)
        wanted = sorted(self._wanted.pop(due_ms, ()))
        if self.probe is None or not wanted:
            return queues
        try:
            exact = await asyncio.to_thread(self.probe.read, wanted)
        except ReadyProbeError as error:  # the sampled numbers still serve
            LOGGER.warning("ready probe failed; using the management API's numbers", extra={"error": str(error)})
            self._on_request("amqp", False)
            return queues
        self._on_request("amqp", True)
        return {name: _with_exact(stats, exact.get(name)) for name, stats in queues.items()}

    def _forget_old(self, now_due_ms: int) -> None:
        for due in [due for due in self._wanted if due < now_due_ms - KEEP_MS]:
            del self._wanted[due]
        for due in [due for due in self._by_due if due < now_due_ms - KEEP_MS]:
            self._retire(self._by_due.pop(due))

    @staticmethod
    def _retire(task: asyncio.Task) -> None:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved


def _with_exact(stats: "QueueStats | StatsError", exact: tuple[int, int] | None) -> "QueueStats | StatsError":
    if exact is None or not isinstance(stats, QueueStats):
        return stats
    ready, consumers = exact
    return dataclasses.replace(stats, ready=ready, consumers=consumers)
