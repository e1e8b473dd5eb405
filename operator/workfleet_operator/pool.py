"""One WorkerPool's loop: read the queue, decide, scale, explain.

Each poll: read the queue's stats (shared with every pool of the vhost), read the
target's /scale, decide (scaling/policy.py), and if the count changes: mark idle
pods as the cheapest to delete, write the absolute count, emit an Event. Then the
status and metrics are updated. Anything unexpected in one poll is logged and the
next poll starts afresh; the loop itself never dies with the pool still there.
"""

import asyncio
import dataclasses
import datetime
import logging
import time

from workfleet_operator.kube_api import DELETION_COST, KubeApi, ReplicasChanged, Scale, TargetNotFound
from workfleet_operator.metrics import OperatorMetrics
from workfleet_operator.pool_spec import PoolSpec
from workfleet_operator.scaling.forgotten_acks import AckWatch
from workfleet_operator.scaling.policy import Decision, Observation, Reason, Recommendation, decide, prune_history
from workfleet_operator.scaling.rates import RateWindow, observe_queue
from workfleet_operator.stats.management import QueueStats, StatsError, queue_in, waiting_to_retry
from workfleet_operator.status import (
    FORGOTTEN_ACK_SUSPECTED,
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    Condition,
    build_status,
    status_patch,
)

LOGGER = logging.getLogger(__name__)

# The ReplicaSet controller reads pod-deletion-cost from its informer cache, which
# sees a pod patch some time later: scaling in right after marking the pods let it
# delete a busy pod in a test. So pods are marked as soon as fewer replicas are
# recommended, through the stabilization window, and a scale-in that follows new
# marks at once waits this long first.
MARKS_SETTLE_S = 2.0
# The broker updates queue and channel stats separately: a queue may already count an unacked
# message that no connection shows yet. A scale-in waits up to this many polls for every unacked
# message to be seen on a pod, then goes ahead (a holder outside the pool never shows up).
UNPLACED_POLLS_MAX = 3

# Why ScalingActive is False, by the decision's reason (HPA's condition, in its words).
NOT_SCALING = {
    Reason.PAUSED: "Paused",
    Reason.STATS_UNKNOWN: "StatsUnknown",
    Reason.FALLBACK: "Fallback",
}


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PoolLoop:
    def __init__(self, fleet, body: dict, spec: PoolSpec):
        self.fleet = fleet
        self.body = body
        self.spec = spec
        self._changed = asyncio.Event()
        self._rates = RateWindow(spec.rate_window_seconds)
        self._acks = AckWatch()
        self._history: tuple[Recommendation, ...] = ()
        self._failed_polls = 0
        self._unplaced_polls = 0  # scale-ins held in a row because unacked messages were on no known pod
        self._per_replica_rate: float | None = None
        self._written_status: dict = dict(body.get("status") or {})
        self._task: asyncio.Task | None = None

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.spec.namespace, self.spec.name, self.spec.queue)

    @property
    def kube(self) -> KubeApi:
        return self.fleet.kube

    @property
    def metrics(self) -> OperatorMetrics:
        return self.fleet.metrics

    def start(self) -> None:
        self.metrics.add_pool(self.labels)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.metrics.remove_pool(self.labels)

    def update(self, body: dict, spec: PoolSpec) -> None:
        """A new version of the pool: picked up at the next poll (poll timing at once)."""
        if spec.queue != self.spec.queue or spec.broker_key != self.spec.broker_key:
            self._rates = RateWindow(spec.rate_window_seconds)
            self._acks = AckWatch()
        elif spec.rate_window_seconds != self.spec.rate_window_seconds:
            self._rates.seconds = spec.rate_window_seconds
        if self.labels != (spec.namespace, spec.name, spec.queue):
            self.metrics.remove_pool(self.labels)
            self.metrics.add_pool((spec.namespace, spec.name, spec.queue))
        self.body, self.spec = body, spec
        self._changed.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._poll_on_schedule()
            except asyncio.CancelledError:
                raise
            except Exception:  # the API server or broker failing in a way not handled below
                LOGGER.exception("poll failed", extra={"pool": f"{self.spec.namespace}/{self.spec.name}"})
                await asyncio.sleep(self.spec.poll_seconds)

    async def _poll_on_schedule(self) -> None:
        self._changed.clear()  # before reading the spec: a change from here on cuts the wait short
        spec = self.spec
        sampler = await self.fleet.sampler_for(spec)
        due_ms = sampler.next_due(spec.poll_seconds) if not isinstance(sampler, StatsError) else None
        if await self._sleep_until(due_ms, spec.poll_seconds):
            await self.poll(sampler, due_ms)
        # else: the spec changed while waiting; the next turn recomputes the schedule

    async def _sleep_until(self, due_ms: int | None, poll_seconds: float) -> bool:
        """Wait for the due time; False if the pool changed meanwhile."""
        delay = poll_seconds if due_ms is None else max(due_ms / 1000 - time.monotonic(), 0)
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=delay)
            return False
        except asyncio.TimeoutError:
            return True

    async def poll(self, sampler, due_ms: int | None) -> None:
        spec, body = self.spec, self.body
        now = time.monotonic()
        self.metrics.polls.labels(*self.labels).inc()
        stats, error = await self._read_stats(spec, sampler, due_ms)
        try:
            scale = await asyncio.to_thread(self.kube.read_scale, spec.namespace, spec.target_kind, spec.target_name)
        except TargetNotFound as missing:
            await self._write_status(body, None, None, stats, error, None, Condition(SCALING_ACTIVE, False, "TargetNotFound", str(missing)))
            return

        observation = self._observe(now, stats)
        decision = decide(now, observation, scale.replicas, spec.policy, self._history)
        if decision.recommendation is not None and decision.recommendation < scale.replicas:
            decision = await self._guard_scale_in(now, spec, sampler, due_ms, observation, scale, decision)
        if decision.recommendation is not None:
            self._history = prune_history(now, self._history, spec.policy) + (Recommendation(now, decision.recommendation),)

        last_decision = None
        if decision.desired != scale.replicas and not spec.policy.paused:
            try:
                await self._scale(spec, body, scale, decision)
            except ReplicasChanged as changed:
                LOGGER.info("not scaling: replicas changed meanwhile; deciding again next poll", extra={"detail": str(changed)})
                return
        if self._decision_changed(scale.replicas, decision):
            last_decision = {"from": scale.replicas, "to": decision.desired, "reason": decision.reason.value,
                             "message": decision.message, "time": utc_now_iso()}
        scaling = Condition(SCALING_ACTIVE, decision.reason not in NOT_SCALING,
                            NOT_SCALING.get(decision.reason, "ScalingFromBacklog"), decision.message)
        current = decision.desired if not spec.policy.paused else scale.replicas
        await self._write_status(body, current, decision.desired, stats, error, last_decision, scaling)
        self.metrics.current.labels(*self.labels).set(current)
        self.metrics.desired.labels(*self.labels).set(decision.desired)
        self.metrics.min_replicas.labels(*self.labels).set(spec.policy.min_replicas)
        self.metrics.max_replicas.labels(*self.labels).set(spec.policy.max_replicas)

    async def _read_stats(self, spec: PoolSpec, sampler, due_ms) -> tuple[QueueStats | None, StatsError | None]:
        try:
            if isinstance(sampler, StatsError):  # its Secret (credentials or CA) is unreadable
                raise sampler
            queues = await sampler.sample(due_ms, spec.queue)
            self.metrics.observe_waiting_to_retry(self.labels, waiting_to_retry(queues, spec.queue))
            stats = queue_in(queues, spec.queue, spec.vhost)
        except StatsError as error:
            self._failed_polls += 1
            self.metrics.stats_errors.labels(*self.labels, error.kind).inc()
            if error.kind == "Unauthorized":
                self.fleet.forget_credentials(spec)
            return None, error
        self._failed_polls = 0
        self.metrics.last_good_poll.labels(*self.labels).set(time.time())
        return stats, None

    def _observe(self, now: float, stats: QueueStats | None) -> Observation:
        if stats is None:
            return Observation(ready=None, unacked=None, failed_polls=self._failed_polls)
        observation, rates, self._per_replica_rate = observe_queue(now, stats, self._rates, self._per_replica_rate)
        self._acks = self._acks.observe(now, stats.unacked, stats.consumers, stats.counters.ack if stats.counters else None)
        labels = self.labels
        self.metrics.ready.labels(*labels).set(stats.ready)
        self.metrics.unacked.labels(*labels).set(stats.unacked)
        self.metrics.consumers.labels(*labels).set(stats.consumers)
        self.metrics.observe_counters(labels, stats.counters)
        self.metrics.observe_rates(labels, rates)
        return observation

    async def _guard_scale_in(self, now, spec: PoolSpec, sampler, due_ms, observation: Observation, scale: Scale, decision: Decision) -> Decision:
        """When fewer replicas are wanted: count the pods holding work, and make the idle ones cheapest to delete."""
        try:
            if isinstance(sampler, StatsError):  # its Secret (credentials or CA) is unreadable
                raise sampler
            held = await sampler.holdings(due_ms)
            pods = await asyncio.to_thread(self.kube.pods, spec.namespace, scale.selector)
        except StatsError as error:
            return Decision(scale.replicas, Reason.STATS_UNKNOWN, f"not scaling in: which pods hold unacked messages is unknown ({error})")
        unplaced = (observation.unacked or 0) - sum(held.get(pod.metadata.name, 0) for pod in pods)
        if unplaced > 0 and self._unplaced_polls < UNPLACED_POLLS_MAX:
            self._unplaced_polls += 1
            return Decision(scale.replicas, Reason.STATS_UNKNOWN,
                            f"not scaling in yet: {unplaced} of {observation.unacked} unacked messages not seen on a pod")
        self._unplaced_polls = 0
        busy = sum(1 for pod in pods if held.get(pod.metadata.name, 0) > 0)
        # DEBUG: while a scale-in waits out the stabilization window this runs every poll.
        LOGGER.debug("scale-in: unacked messages by pod", extra={
            "pool": f"{spec.namespace}/{spec.name}", "held": {pod.metadata.name: held.get(pod.metadata.name, 0) for pod in pods}})
        decision = decide(now, dataclasses.replace(observation, pods_holding_unacked=busy), scale.replicas, spec.policy, self._history)
        if not spec.policy.paused:
            marked = await asyncio.to_thread(self._mark_deletion_costs, spec.namespace, pods, held)
            if marked and decision.desired < scale.replicas:
                await asyncio.sleep(MARKS_SETTLE_S)
        return decision

    def _mark_deletion_costs(self, namespace: str, pods, held: dict[str, int]) -> int:
        """Pods holding more unacked messages cost more to delete; the ReplicaSet removes the cheapest.
        Returns how many pods were marked anew."""
        changed = 0
        for pod in pods:
            cost = held.get(pod.metadata.name, 0)
            if (pod.metadata.annotations or {}).get(DELETION_COST) != str(cost):
                self.kube.set_deletion_cost(namespace, pod.metadata.name, cost)
                changed += 1
        return changed

    async def _scale(self, spec: PoolSpec, body: dict, scale: Scale, decision: Decision) -> None:
        await asyncio.to_thread(self.kube.set_replicas, spec.namespace, spec.target_kind, spec.target_name, decision.desired, scale)
        direction = "up" if decision.desired > scale.replicas else "down"
        self.metrics.decisions.labels(*self.labels, direction, decision.reason.value).inc()
        event_type = "Warning" if decision.reason is Reason.FALLBACK else "Normal"
        message = f"{scale.replicas} -> {decision.desired} replicas: {decision.message}"
        LOGGER.info("scaled", extra={"pool": f"{spec.namespace}/{spec.name}", "from": scale.replicas,
                                     "to": decision.desired, "reason": decision.reason.value, "detail": decision.message})
        await self._event(body, event_type, f"Scaled{direction.capitalize()}", message)

    def _decision_changed(self, current: int, decision: Decision) -> bool:
        last = self._written_status.get("lastDecision") or {}
        return (last.get("from"), last.get("to"), last.get("reason")) != (current, decision.desired, decision.reason.value)

    async def _write_status(self, body, current, desired, stats, error, last_decision, scaling: Condition) -> None:
        spec = self.spec
        now = time.monotonic()
        metrics_condition = (
            Condition(METRICS_AVAILABLE, True, "StatsRead", f"queue {spec.queue!r} read from {spec.management_url}")
            if error is None
            else Condition(METRICS_AVAILABLE, False, error.kind, str(error))
        )
        suspected = self._acks.suspected(now, spec.forgotten_ack_seconds)
        # No running count of seconds in the message: it would rewrite the status every poll.
        # lastTransitionTime says since when.
        ack_condition = (
            Condition(FORGOTTEN_ACK_SUSPECTED, True, "UnackedWithoutAcks",
                      f"{stats.unacked if stats else 'some'} messages unacked with consumers connected and no ack for"
                      f" over {spec.forgotten_ack_seconds:g}s: a consumer may never ack, or a task is stuck")
            if suspected
            else Condition(FORGOTTEN_ACK_SUSPECTED, False, "AcksFlowing", "no messages held without acks beyond the window")
        )
        self.metrics.forgotten_ack.labels(*self.labels).set(1 if suspected else 0)
        rates = self._rates.rates() if stats else None
        queue = (stats.ready, stats.unacked, stats.consumers) if stats else None
        previous = self._written_status
        built = build_status(previous, (body.get("metadata") or {}).get("generation"), current, desired, queue, rates,
                             last_decision, [metrics_condition, scaling, ack_condition], utc_now_iso())
        if built == previous:
            return
        await self._announce_transitions(body, previous, built)
        await asyncio.to_thread(self.kube.write_status, spec.namespace, spec.name, status_patch(previous, built))
        self._written_status = built

    async def _announce_transitions(self, body: dict, previous: dict, built: dict) -> None:
        """Warning Events when stats become unreadable or acks look forgotten, Normal ones when they recover."""
        before = {item["type"]: item for item in previous.get("conditions") or []}
        for condition in built["conditions"]:
            old = before.get(condition["type"], {}).get("status")
            if old == condition["status"]:
                continue
            if condition["type"] == METRICS_AVAILABLE and (condition["status"] == "False" or old == "False"):
                bad = condition["status"] == "False"
                await self._event(body, "Warning" if bad else "Normal", "MetricsUnavailable" if bad else "MetricsAvailable", condition["message"])
            if condition["type"] == FORGOTTEN_ACK_SUSPECTED and (condition["status"] == "True" or old == "True"):
                bad = condition["status"] == "True"
                await self._event(body, "Warning" if bad else "Normal", "ForgottenAckSuspected" if bad else "AcksResumed", condition["message"])

    async def _event(self, body: dict, event_type: str, reason: str, message: str) -> None:
        try:
            await asyncio.to_thread(self.kube.emit_event, body, event_type, reason, message)
        except Exception:  # an Event is an explanation, never a reason to stop scaling
            LOGGER.warning("could not emit an event", exc_info=True, extra={"reason": reason})
