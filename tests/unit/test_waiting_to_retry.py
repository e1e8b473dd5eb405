from prometheus_client import CollectorRegistry

from workfleet_operator.metrics import OperatorMetrics
from workfleet_operator.stats.management import QueueStats, StatsError, waiting_to_retry

LABELS = ("default", "images", "jobs")


def test_retry_queues_of_the_work_queue_are_counted_by_delay_and_nothing_else():
    queues = {
        "jobs": QueueStats(7, 1, 2, None),
        "jobs.dlq": QueueStats(3, 0, 0, None),
        "jobs.retry.1s": QueueStats(4, 1, 0, None),
        "jobs.retry.10m": QueueStats(0, 0, 0, None),
        "jobs.retry.1h": StatsError("StatsMissing", "not sampled yet"),
        "jobs2.retry.1s": QueueStats(9, 0, 0, None),
    }
    assert waiting_to_retry(queues, "jobs") == {"1s": 5, "10m": 0}


def test_a_retry_queue_that_goes_away_loses_its_series():
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    metrics.add_pool(LABELS)

    def value(delay):
        return registry.get_sample_value("workfleet_pool_messages_waiting_retry",
                                         dict(zip(("namespace", "pool", "queue"), LABELS), delay=delay))

    metrics.observe_waiting_to_retry(LABELS, {"1s": 5, "10m": 0})
    assert (value("1s"), value("10m")) == (5, 0)
    metrics.observe_waiting_to_retry(LABELS, {"10m": 2})
    assert (value("1s"), value("10m")) == (None, 2)
    metrics.remove_pool(LABELS)
    assert value("10m") is None
