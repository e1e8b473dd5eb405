"""The status the operator writes: rounded so noise is no change, transition times kept."""

from workfleet_operator.scaling.rates import Rates
from workfleet_operator.status import Condition, build_status, status_patch


def build(previous, conditions, rates=None, now="2026-01-01T00:00:10Z"):
    return build_status(previous, 3, 2, 4, (10, 2, 2), rates, None, conditions, now)


def test_conditions_keep_their_transition_time_until_their_status_flips():
    first = build({}, [Condition("MetricsAvailable", True, "StatsRead", "ok")], now="2026-01-01T00:00:00Z")
    same = build(first, [Condition("MetricsAvailable", True, "StatsRead", "ok")])
    assert same == first, "nothing changed, so nothing is to be written"
    flipped = build(first, [Condition("MetricsAvailable", False, "Unreachable", "down")])
    assert flipped["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:10Z"
    assert flipped["conditions"][0]["reason"] == "Unreachable"


def test_rate_noise_below_three_digits_is_not_a_change():
    a = build({}, [], Rates(publish=10.0001, deliver=10, ack=10, redeliver=0))
    b = build(a, [], Rates(publish=10.0002, deliver=10, ack=10, redeliver=0))
    assert a == b
    assert a["rates"]["publish"] == 10.0 and a["redeliveryRatio"] == 0.0


def test_unknown_numbers_are_removed_from_status_not_zeroed():
    known = build({}, [], Rates(publish=1, deliver=1, ack=1, redeliver=0))
    unknown = build_status(known, 3, 2, 4, None, None, None, [], "t")
    patch = status_patch(known, unknown)
    assert patch["rates"] is None and patch["readyMessages"] is None
    assert patch["currentReplicas"] == 2
