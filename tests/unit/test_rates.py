"""Rates from counters differenced over a window; unknown is never zero."""

import pytest

from workfleet_operator.scaling.forgotten_acks import AckWatch
from workfleet_operator.scaling.rates import Counters, RateWindow, Rates, per_replica_ack_rate
from workfleet_operator.stats.management import QueueStats, StatsError, parse_queue
from workfleet_operator.stats.sampler import next_due_ms


def counters(publish=0, deliver=0, ack=0, redeliver=0) -> Counters:
    return Counters(publish, deliver, ack, redeliver)


def test_rates_are_counter_differences_over_the_window():
    window = RateWindow(seconds=30)
    window.add(0, counters(publish=100, deliver=100, ack=90))
    assert window.rates() is None, "one sample gives no rate"
    window.add(10, counters(publish=100, deliver=100, ack=90))
    assert window.rates() is None, "a span under half the window gives no rate"
    window.add(20, counters(publish=300, deliver=250, ack=230, redeliver=10))
    assert window.rates() == Rates(publish=10.0, deliver=7.5, ack=7.0, redeliver=0.5)
    assert window.rates().redelivery_ratio == pytest.approx(10 / 150)


def test_the_window_slides_and_a_burst_is_averaged_not_spiked():
    window = RateWindow(seconds=30)
    for second in range(0, 61, 5):
        # a burst of 600 publishes counted between t=40 and t=45 only
        window.add(second, counters(publish=600 if second >= 45 else 0))
    rates = window.rates()
    assert rates.publish == pytest.approx(600 / 30), "600 over the 30 s window, not 120/s in one 5 s step"


@pytest.mark.parametrize("later", [None, counters(publish=5)])
def test_missing_or_reset_counters_restart_the_window(later):
    window = RateWindow(seconds=10)
    window.add(0, counters(publish=100))
    window.add(10, counters(publish=200))
    assert window.rates().publish == 10.0
    window.add(20, later)  # stats turned off, or the broker restarted (counters went back)
    assert window.rates() is None


def test_per_replica_rate_is_measured_only_while_work_waits():
    busy = Rates(publish=0, deliver=20, ack=20, redeliver=0)
    assert per_replica_ack_rate(busy, consumers=4, ready=100, previous=None) == 5.0
    assert per_replica_ack_rate(busy, consumers=4, ready=0, previous=3.0) == 3.0, "idle workers say nothing of their speed"
    assert per_replica_ack_rate(None, consumers=4, ready=100, previous=None) is None


def test_forgotten_acks_need_unacked_consumers_and_a_still_ack_counter():
    watch = AckWatch().observe(0, unacked=3, consumers=1, ack_count=10)
    watch = watch.observe(50, unacked=3, consumers=1, ack_count=10)
    assert watch.stalled_for(50) == 50 and not watch.suspected(50, 60)
    assert watch.observe(61, unacked=3, consumers=1, ack_count=10).suspected(61, 60)
    # an ack restarts the clock; nothing held or nobody connected clears it
    assert not watch.observe(61, unacked=3, consumers=1, ack_count=11).suspected(61, 60)
    assert watch.observe(61, unacked=0, consumers=1, ack_count=10).stalled_since is None
    assert watch.observe(61, unacked=3, consumers=0, ack_count=10).stalled_since is None
    # unknown stats are no evidence either way
    assert watch.observe(61, unacked=None, consumers=None, ack_count=None) == watch


@pytest.mark.parametrize(
    "item, expected",
    [
        ({"name": "q", "messages_ready": 3, "messages_unacknowledged": 1, "consumers": 2,
          "message_stats": {"publish": 9, "ack": 4}}, QueueStats(3, 1, 2, counters(publish=9, ack=4))),
        # no message_stats at all (a new queue, or collection off): counts known, rates unknown
        ({"name": "q", "messages_ready": 0, "messages_unacknowledged": 0, "consumers": 0}, QueueStats(0, 0, 0, None)),
        # a counter that is not a count: rates unknown, not zero
        ({"name": "q", "messages_ready": 0, "messages_unacknowledged": 0, "consumers": 0,
          "message_stats": {"publish": "lots"}}, QueueStats(0, 0, 0, None)),
    ],
)
def test_queue_parsing(item, expected):
    assert parse_queue(item) == expected


@pytest.mark.parametrize(
    "item",
    [
        {"name": "q"},  # a quorum queue the broker has not sampled yet
        {"name": "q", "messages_ready": -1, "messages_unacknowledged": 0, "consumers": 0},
        {"name": "q", "messages_ready": True, "messages_unacknowledged": 0, "consumers": 0},
        {"name": "q", "messages_ready": 1, "messages_unacknowledged": None, "consumers": 0},
    ],
)
def test_missing_counts_are_an_error_never_zero(item):
    result = parse_queue(item)
    assert isinstance(result, StatsError) and result.kind == "StatsMissing"


@pytest.mark.parametrize(
    "now, poll, offset, due",
    [(0, 1000, 0, 1000), (999, 1000, 0, 1000), (1000, 1000, 0, 2000), (1200, 5000, 300, 5300), (5300, 5000, 300, 10300)],
)
def test_poll_grid(now, poll, offset, due):
    assert next_due_ms(now, poll, offset) == due


def test_pools_with_one_and_five_second_polls_share_every_fifth_grid_point():
    ones = {next_due_ms(now, 1000, 123) for now in range(0, 20000, 1000)}
    fives = {next_due_ms(now, 5000, 123) for now in range(0, 20000, 1000)}
    assert fives == {123, 5123, 10123, 15123, 20123}
    assert fives - {20123} <= ones
