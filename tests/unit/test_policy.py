"""The scaling decision over tables of cases: each mode, clamps, activation,
stabilization, the in-flight guard, unknown stats and the fallback."""

import pytest

from workfleet_operator.scaling.policy import (
    Mode,
    Observation,
    Policy,
    Reason,
    Recommendation,
    decide,
    prune_history,
)

NOW = 1000.0


def seen(ready, unacked=0, **extra) -> Observation:
    return Observation(ready=ready, unacked=unacked, **extra)


UNKNOWN = Observation(ready=None, unacked=None, failed_polls=1)

BACKLOG = Policy(min_replicas=1, max_replicas=10, messages_per_replica=10)
TO_ZERO = Policy(min_replicas=0, max_replicas=10, messages_per_replica=10)
DRAIN = Policy(min_replicas=1, max_replicas=50, mode=Mode.DRAIN_TIME, messages_per_replica=10, target_drain_seconds=60)


@pytest.mark.parametrize(
    "observation, current, policy, desired, reason",
    [
        # backlog mode: ceil((ready + unacked) / messagesPerReplica), as KEDA's QueueLength
        (seen(0), 1, BACKLOG, 1, Reason.AT_MIN),
        (seen(35), 1, BACKLOG, 4, Reason.BACKLOG),
        (seen(30, 10), 1, BACKLOG, 4, Reason.BACKLOG),
        (seen(40), 4, BACKLOG, 4, Reason.BACKLOG),
        (seen(1), 1, BACKLOG, 1, Reason.BACKLOG),
        # max and min clamps
        (seen(1000), 2, BACKLOG, 10, Reason.AT_MAX),
        (seen(5), 0, Policy(min_replicas=3, max_replicas=10), 3, Reason.AT_MIN),
        # activation: from zero only above the threshold; the threshold does not matter above zero
        (seen(0), 0, TO_ZERO, 0, Reason.BELOW_ACTIVATION),
        (seen(1), 0, TO_ZERO, 1, Reason.BACKLOG),
        (seen(5), 0, Policy(min_replicas=0, max_replicas=10, activation_backlog=5), 0, Reason.BELOW_ACTIVATION),
        (seen(6), 0, Policy(min_replicas=0, max_replicas=10, activation_backlog=5), 1, Reason.BACKLOG),
        (seen(5), 0, Policy(min_replicas=1, max_replicas=10, activation_backlog=5), 1, Reason.BACKLOG),
        # fast scale-up, and the optional step limit
        (seen(1000), 1, Policy(min_replicas=1, max_replicas=100, scale_up_step=4), 5, Reason.STEP_LIMIT),
        (seen(2000), 98, Policy(min_replicas=1, max_replicas=100, scale_up_step=4), 100, Reason.AT_MAX),
        # drainTime: backlog / target + what keeps arriving, in units of one replica's ack rate
        (seen(600, per_replica_ack_rate=2.0), 1, DRAIN, 5, Reason.DRAIN_TIME),
        (seen(600, publish_rate=4.0, per_replica_ack_rate=2.0), 1, DRAIN, 7, Reason.DRAIN_TIME),
        (seen(0, publish_rate=10.0, per_replica_ack_rate=2.0), 1, DRAIN, 5, Reason.DRAIN_TIME),
        (seen(1, per_replica_ack_rate=100.0), 1, DRAIN, 1, Reason.DRAIN_TIME),
        (seen(6000, per_replica_ack_rate=0.5), 1, DRAIN, 50, Reason.AT_MAX),
        # drainTime without a measured rate yet: backlog mode
        (seen(600), 1, DRAIN, 50, Reason.AT_MAX),
        (seen(60), 1, DRAIN, 6, Reason.BACKLOG),
        # paused: nothing changes, whatever the numbers
        (seen(1000), 2, Policy(min_replicas=1, max_replicas=10, paused=True), 2, Reason.PAUSED),
        (UNKNOWN, 2, Policy(min_replicas=1, max_replicas=10, paused=True), 2, Reason.PAUSED),
    ],
)
def test_decide_without_history(observation, current, policy, desired, reason):
    decision = decide(NOW, observation, current, policy)
    assert (decision.desired, decision.reason) == (desired, reason), decision.message


@pytest.mark.parametrize(
    "failed_polls, fallback, current, desired, reason",
    [
        (1, None, 4, 4, Reason.STATS_UNKNOWN),  # unknown is never zero: hold
        (10, None, 4, 4, Reason.STATS_UNKNOWN),  # no fallback set: hold forever
        (2, 6, 4, 4, Reason.STATS_UNKNOWN),  # below the threshold (3): hold
        (3, 6, 4, 6, Reason.FALLBACK),  # at the threshold: the fallback
        (5, 0, 4, 0, Reason.FALLBACK),
    ],
)
def test_unknown_stats_hold_then_fall_back(failed_polls, fallback, current, desired, reason):
    policy = Policy(min_replicas=0, max_replicas=10, failure_threshold=3, fallback_replicas=fallback)
    observation = Observation(ready=None, unacked=None, failed_polls=failed_polls)
    decision = decide(NOW, observation, current, policy)
    assert (decision.desired, decision.reason) == (desired, reason)
    assert decision.recommendation is None, "an unknown poll must not enter the stabilization history"


STABILIZED = Policy(min_replicas=0, max_replicas=10, messages_per_replica=10, stabilization_seconds=60)


@pytest.mark.parametrize(
    "history, observation, current, desired, reason",
    [
        # no history: straight down
        ((), seen(10), 5, 1, Reason.BACKLOG),
        # a higher recommendation inside the window holds the count up
        ((Recommendation(NOW - 30, 5),), seen(10), 5, 5, Reason.STABILIZING),
        ((Recommendation(NOW - 30, 3),), seen(10), 5, 3, Reason.STABILIZING),
        # outside the window it no longer counts
        ((Recommendation(NOW - 61, 5),), seen(10), 5, 1, Reason.BACKLOG),
        # the window only damps scale-down: scale-up is immediate
        ((Recommendation(NOW - 10, 1),), seen(80), 2, 8, Reason.BACKLOG),
        # stabilization never scales up by itself
        ((Recommendation(NOW - 10, 9),), seen(10), 5, 5, Reason.STABILIZING),
        # to zero once the window has only zeros
        ((Recommendation(NOW - 30, 0),), seen(0), 1, 0, Reason.BELOW_ACTIVATION),
    ],
)
def test_scale_down_is_stabilized(history, observation, current, desired, reason):
    decision = decide(NOW, observation, current, STABILIZED, history)
    assert (decision.desired, decision.reason) == (desired, reason), decision.message


@pytest.mark.parametrize(
    "busy, current, desired, reason",
    [
        (0, 5, 1, Reason.BACKLOG),
        (3, 5, 3, Reason.UNACKED_HELD),  # never below the pods holding unacked messages
        (5, 5, 5, Reason.UNACKED_HELD),
        (9, 5, 5, Reason.UNACKED_HELD),  # more busy connections than pods: hold, never scale up for it
        (1, 5, 1, Reason.BACKLOG),
    ],
)
def test_scale_in_never_goes_below_pods_holding_unacked(busy, current, desired, reason):
    decision = decide(NOW, seen(0, 10, pods_holding_unacked=busy), current, STABILIZED)
    assert (decision.desired, decision.reason) == (desired, reason), decision.message
    assert decision.recommendation == 1, "history keeps what the backlog asked for, not the guard's hold"


def test_a_burst_then_quiet_scales_up_at_once_and_down_after_the_window():
    """The loop as the operator runs it: decisions feed the history."""
    history: tuple[Recommendation, ...] = ()
    current = 1
    timeline = []
    for second, backlog in [(0, 0), (5, 200), (10, 150), (15, 0), (40, 0), (74, 0), (76, 0)]:
        decision = decide(float(second), seen(backlog), current, STABILIZED, history)
        history = prune_history(float(second), history, STABILIZED) + (Recommendation(float(second), decision.recommendation),)
        current = decision.desired
        timeline.append(current)
    # 0 backlog: 0; burst: 10 at once; quiet: held at 10 until the 10 leaves the window (t=65+), then 0.
    assert timeline == [0, 10, 10, 10, 10, 0, 0]


def test_every_decision_explains_itself_with_its_numbers():
    decision = decide(NOW, seen(30, 5), 1, BACKLOG)
    assert "30 ready + 5 unacked" in decision.message and "needs 4" in decision.message
