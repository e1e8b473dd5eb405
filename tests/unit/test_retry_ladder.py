import pytest

from workfleet_common.retry_ladder import DEFAULT_LADDER, LadderError, RetryLadder, delay_name, parse_delay
from workfleet_common.topology import Topology


@pytest.mark.parametrize("text, milliseconds", [("0", 0), ("250ms", 250), ("1s", 1000), ("90s", 90_000),
                                                ("10m", 600_000), ("1h", 3_600_000), (" 2s ", 2000), ("168h", 604_800_000)])
def test_delays_parse_to_milliseconds(text, milliseconds):
    assert parse_delay(text) == milliseconds


@pytest.mark.parametrize("text", ["", "5", "1x", "-1s", "1.5s", "01s", "s", "169h", "1s 2s"])
def test_bad_delays_are_refused_with_the_fix(text):
    with pytest.raises(LadderError, match="is not a delay|longer than the longest"):
        parse_delay(text)


@pytest.mark.parametrize("milliseconds, name", [(250, "250ms"), (1000, "1s"), (1500, "1500ms"), (90_000, "90s"),
                                                (60_000, "1m"), (7_200_000, "2h"), (5_400_000, "90m")])
def test_delay_names_are_the_shortest_exact_spelling(milliseconds, name):
    assert delay_name(milliseconds) == name
    assert parse_delay(name) == milliseconds


def test_attempt_n_waits_the_nth_delay_and_the_last_repeats():
    ladder = RetryLadder.parse("1s,10s,1m")
    assert [ladder.delay_after(attempt) for attempt in range(1, 6)] == [1000, 10_000, 60_000, 60_000, 60_000]
    assert str(ladder) == "1s,10s,1m"


def test_only_delays_some_attempt_waits_get_a_queue():
    ladder = RetryLadder.parse(DEFAULT_LADDER)
    assert ladder.delays_used(5) == [1000, 10_000, 60_000, 600_000]
    assert ladder.delays_used(1) == []
    assert ladder.delays_used(9) == [1000, 10_000, 60_000, 600_000, 3_600_000]
    assert RetryLadder.parse("0").delays_used(5) == []
    assert RetryLadder.parse("0,5s,5s,0").delays_used(10) == [5000]


def test_a_ladder_has_at_most_twenty_rungs():
    RetryLadder.parse(",".join(["1s"] * 20))
    with pytest.raises(LadderError, match="at most 20"):
        RetryLadder.parse(",".join(["1s"] * 21))


def test_retry_queues_dead_letter_back_into_the_work_queue_at_least_once():
    for topology in (Topology("jobs"), Topology("task_queue", "classic")):
        name = topology.queue
        assert topology.retry_queue(10_000) == f"{name}.retry.10s"
        assert topology.retry_queue_prefix == f"{name}.retry."
        assert topology.retry_queue_arguments(10_000) == {
            "x-queue-type": "quorum",
            "x-message-ttl": 10_000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
