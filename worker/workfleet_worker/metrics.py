"""The worker's Prometheus metrics, on an injectable registry.

Labels are bounded: queue and dead-letter reason, never message ids.
"""

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from workfleet_worker.decisions import Action, Reason

# Tasks run from milliseconds to many minutes; the last bucket is 10 minutes.
TASK_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class WorkerMetrics:
    def __init__(self, queue: str, registry: CollectorRegistry = REGISTRY):
        def counter(name: str, documentation: str):
            return Counter(name, documentation, ["queue"], registry=registry).labels(queue)

        self.received = counter("workfleet_worker_messages_received_total", "Deliveries received.")
        self.redelivered = counter(
            "workfleet_worker_messages_redelivered_total",
            "Deliveries the broker marked as redelivered (a previous holder did not ack).",
        )
        self.acked = counter("workfleet_worker_messages_acked_total", "Messages acked after their task succeeded.")
        self.retried = counter(
            "workfleet_worker_messages_retried_total", "Failed tasks republished for another attempt."
        )
        self.requeued = counter(
            "workfleet_worker_messages_requeued_total",
            "Deliveries handed back to the broker unprocessed (shutdown, a republish the broker refused, "
            "or waiting behind a long task).",
        )
        self.handed_back = counter(
            "workfleet_worker_messages_handed_back_total",
            "Buffered deliveries handed back unstarted because the task ahead of them ran long (prefetch auto).",
        )
        dead_lettered = Counter(
            "workfleet_worker_messages_dead_lettered_total",
            "Messages sent to the dead-letter queue, by reason.",
            ["queue", "reason"],
            registry=registry,
        )
        self.dead_lettered = {reason: dead_lettered.labels(queue, reason.value) for reason in Reason}
        task_duration = Histogram(
            "workfleet_worker_task_duration_seconds",
            "Time spent in the task, by what happened to the message.",
            ["queue", "outcome"],
            buckets=TASK_DURATION_BUCKETS,
            registry=registry,
        )
        self.task_duration = {action: task_duration.labels(queue, action.value) for action in Action}
        self.in_flight = Gauge(
            "workfleet_worker_messages_in_flight",
            "Deliveries received and not yet acked, rejected or requeued.",
            ["queue"],
            registry=registry,
        ).labels(queue)
        self.prefetch = Gauge(
            "workfleet_worker_prefetch", "The channel's prefetch now (it moves with --prefetch auto).", ["queue"],
            registry=registry,
        ).labels(queue)
        self.buffered = Gauge(
            "workfleet_worker_messages_buffered",
            "Deliveries received and waiting for the task ahead of them (part of messages_in_flight).",
            ["queue"],
            registry=registry,
        ).labels(queue)
        self.oldest_in_flight_age = Gauge(
            "workfleet_worker_oldest_in_flight_age_seconds",
            "How long the running task has run (0 when idle); near the broker's consumer timeout means trouble.",
            ["queue"],
            registry=registry,
        ).labels(queue)
        self.timeouts = counter(
            "workfleet_worker_task_timeouts_total",
            "Tasks stopped by --task-timeout (TaskTimeout raised inside them); each is a failed attempt.",
        )
        self.reconnects = counter(
            "workfleet_worker_reconnects_total", "Connections lost and attempted again."
        )
        self.late_acks_dropped = counter(
            "workfleet_worker_late_acks_dropped_total",
            "Tasks that finished after their channel was gone; the broker redelivers those.",
        )
        self.concurrency = Gauge(
            "workfleet_worker_concurrency", "Tasks the worker may run at once (--concurrency).", ["queue"],
            registry=registry,
        ).labels(queue)
        self.tasks_running = Gauge(
            "workfleet_worker_tasks_running", "Tasks running now (at most the concurrency).", ["queue"],
            registry=registry,
        ).labels(queue)
        self.connected = Gauge(
            "workfleet_worker_connected", "1 while consuming from the broker (the same condition as /readyz).", ["queue"], registry=registry
        ).labels(queue)
