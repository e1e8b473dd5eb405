"""The operator's Prometheus metrics, on an injectable registry.

Per-pool series carry namespace, pool and queue labels and are removed when the
pool is deleted; every other label (operation, direction, reason, kind) comes from
a fixed set and is pre-initialised, so a rate() over it never starts from nothing.
"""

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from workfleet_operator.scaling.policy import Reason
from workfleet_operator.scaling.rates import OPERATIONS, Counters, Rates
from workfleet_operator.stats.management import StatsError

POOL_LABELS = ("namespace", "pool", "queue")
DIRECTIONS = ("up", "down")
# The broker's counter names, as the verbs Prometheus users expect in a metric name.
COUNTER_NAMES = {"publish": "published", "deliver": "delivered", "ack": "acked", "redeliver": "redelivered"}


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        def gauge(name: str, documentation: str, *extra: str) -> Gauge:
            return Gauge(name, documentation, [*POOL_LABELS, *extra], registry=registry)

        self.ready = gauge("workfleet_pool_messages_ready", "Messages in the queue waiting for a worker.")
        self.unacked = gauge("workfleet_pool_messages_unacked", "Messages delivered to workers and not yet acked.")
        self.consumers = gauge("workfleet_pool_consumers", "Consumers connected to the queue.")
        self.waiting_to_retry = gauge(
            "workfleet_pool_messages_waiting_retry",
            "Failed messages waiting out their delay in the queue's retry queues, by delay (not backlog).",
            "delay",
        )
        self.messages = {
            operation: Counter(
                f"workfleet_pool_messages_{verb}_total",
                f"Messages {verb} by the queue, from the broker's counter (counted while the operator watches).",
                POOL_LABELS,
                registry=registry,
            )
            for operation, verb in COUNTER_NAMES.items()
        }
        self.rate = gauge(
            "workfleet_pool_messages_per_second",
            "Messages per second over the pool's rate window, by operation (publish, deliver, ack, redeliver).",
            "operation",
        )
        self.redelivery_ratio = gauge(
            "workfleet_pool_redelivery_ratio", "Redeliveries per delivery over the pool's rate window."
        )
        self.desired = gauge("workfleet_pool_replicas_desired", "Replicas the last decision asked for.")
        self.current = gauge("workfleet_pool_replicas_current", "Replicas of the scale target when last read.")
        self.min_replicas = gauge("workfleet_pool_replicas_min", "The pool's minReplicas.")
        self.max_replicas = gauge("workfleet_pool_replicas_max", "The pool's maxReplicas (alerts compare desired with it).")
        self.decisions = Counter(
            "workfleet_pool_scaling_decisions_total",
            "Replica changes made, by direction and reason.",
            [*POOL_LABELS, "direction", "reason"],
            registry=registry,
        )
        self.forgotten_ack = gauge(
            "workfleet_pool_forgotten_ack_suspected",
            "1 while messages stay unacked with consumers connected and no ack arriving for the pool's window.",
        )
        self.stats_errors = Counter(
            "workfleet_pool_stats_errors_total",
            "Polls whose queue stats could not be read, by kind.",
            [*POOL_LABELS, "kind"],
            registry=registry,
        )
        self.polls = Counter(
            "workfleet_pool_polls_total", "Polls made: stats read (or tried) and a decision taken.", POOL_LABELS, registry=registry
        )
        self.last_good_poll = gauge(
            "workfleet_pool_last_successful_poll_timestamp_seconds", "Unix time of the last poll that read the stats."
        )
        self.management_requests = Counter(
            "workfleet_operator_management_requests_total",
            "Queue-stats requests made to management APIs, by outcome (one per vhost per poll, shared by its pools).",
            ["outcome"],
            registry=registry,
        )
        self.ready_probes = Counter(
            "workfleet_operator_ready_probes_total",
            "Exact ready counts read over AMQP (pools with broker.amqpUrl), one batch per vhost per poll, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "error"):
            self.management_requests.labels(outcome)
            self.ready_probes.labels(outcome)
        self.pools = Gauge("workfleet_operator_pools", "WorkerPools the operator is scaling.", registry=registry)
        self._last_counters: dict[tuple[str, ...], Counters] = {}
        self._retry_delays: dict[tuple[str, ...], set[str]] = {}

    def add_pool(self, labels: tuple[str, str, str]) -> None:
        for gauge in (self.ready, self.unacked, self.consumers, self.desired, self.current, self.min_replicas,
                      self.max_replicas, self.forgotten_ack, self.last_good_poll):
            gauge.labels(*labels)
        for counter in (*self.messages.values(), self.polls):
            counter.labels(*labels)
        for direction in DIRECTIONS:
            for reason in Reason:
                self.decisions.labels(*labels, direction, reason.value)
        for kind in StatsError.KINDS:
            self.stats_errors.labels(*labels, kind)

    def remove_pool(self, labels: tuple[str, str, str]) -> None:
        self._last_counters.pop(labels, None)
        self.observe_waiting_to_retry(labels, {})
        for metric in (self.ready, self.unacked, self.consumers, self.desired, self.current, self.min_replicas,
                       self.max_replicas, self.forgotten_ack, self.last_good_poll, self.redelivery_ratio, self.polls, *self.messages.values()):
            _remove(metric, labels)
        for operation in OPERATIONS:
            _remove(self.rate, (*labels, operation))
        for direction in DIRECTIONS:
            for reason in Reason:
                _remove(self.decisions, (*labels, direction, reason.value))
        for kind in StatsError.KINDS:
            _remove(self.stats_errors, (*labels, kind))

    def observe_counters(self, labels: tuple[str, str, str], counters: Counters | None) -> None:
        """Advance the re-exported counters by what the broker's counters moved since the last poll."""
        before = self._last_counters.get(labels)
        if counters is None:
            self._last_counters.pop(labels, None)
            return
        self._last_counters[labels] = counters
        if before is None:
            return
        for operation in OPERATIONS:
            moved = getattr(counters, operation) - getattr(before, operation)
            if moved > 0:  # a drop means the broker restarted: nothing to add
                self.messages[operation].labels(*labels).inc(moved)

    def observe_waiting_to_retry(self, labels: tuple[str, str, str], waiting: dict[str, int]) -> None:
        """One series per retry queue seen; a retry queue no longer there loses its series."""
        for delay in self._retry_delays.get(labels, set()) - set(waiting):
            _remove(self.waiting_to_retry, (*labels, delay))
        for delay, count in waiting.items():
            self.waiting_to_retry.labels(*labels, delay).set(count)
        if waiting:
            self._retry_delays[labels] = set(waiting)
        else:
            self._retry_delays.pop(labels, None)

    def observe_rates(self, labels: tuple[str, str, str], rates: Rates | None) -> None:
        for operation in OPERATIONS:
            if rates is None:
                _remove(self.rate, (*labels, operation))  # unknown is absent, not zero
            else:
                self.rate.labels(*labels, operation).set(getattr(rates, operation))
        ratio = rates.redelivery_ratio if rates else None
        if ratio is None:
            _remove(self.redelivery_ratio, labels)
        else:
            self.redelivery_ratio.labels(*labels).set(ratio)


def _remove(metric, labels: tuple[str, ...]) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass
