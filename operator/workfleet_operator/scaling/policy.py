"""The scaling decision: a pure function of what was observed and what the pool allows.

`decide` takes the queue's numbers (or the fact that they are unknown), the current
replicas, the pool's policy and the recent recommendations, and returns the replicas
to run and why. It does no I/O and reads no clock, so every rule below is tested
over tables of cases (tests/unit/test_policy.py).

The rules, in the order they apply:
1. paused: keep the current replicas, whatever the numbers say;
2. unknown stats: keep the current replicas until `failure_threshold` polls in a
   row failed, then run `fallback_replicas` if set (unknown is never zero);
3. the recommendation: from the backlog (ready + unacked), by mode; a pool that
   may scale to zero runs none until the backlog passes the activation threshold;
4. clamps: at most `scale_up_step` more than now, within min and max;
5. scale-down damping: the highest recommendation within the stabilization window,
   and never fewer replicas than pods still holding unacked messages.
"""

import math
from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    BACKLOG = "backlog"
    DRAIN_TIME = "drainTime"


class Reason(str, Enum):
    """Why the replicas are what they are: a bounded set, used as a metric label."""

    BACKLOG = "Backlog"
    DRAIN_TIME = "DrainTime"
    BELOW_ACTIVATION = "BelowActivation"
    AT_MAX = "AtMaxReplicas"
    AT_MIN = "AtMinReplicas"
    STEP_LIMIT = "ScaleUpStepLimit"
    STABILIZING = "ScaleDownStabilizing"
    UNACKED_HELD = "PodsHoldUnacked"
    STATS_UNKNOWN = "StatsUnknown"
    FALLBACK = "Fallback"
    PAUSED = "Paused"


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    mode: Mode = Mode.BACKLOG
    messages_per_replica: int = 10
    target_drain_seconds: float = 60.0
    activation_backlog: int = 0
    scale_up_step: int | None = None
    stabilization_seconds: float = 60.0
    failure_threshold: int = 3
    fallback_replicas: int | None = None
    paused: bool = False


@dataclass(frozen=True)
class Observation:
    """What the last poll saw. `ready`/`unacked` are None when the stats could not be read."""

    ready: int | None
    unacked: int | None
    # Messages per second, None while unknown (no counters yet, or a window too short).
    publish_rate: float | None = None
    per_replica_ack_rate: float | None = None
    failed_polls: int = 0  # polls in a row that could not read the stats
    pods_holding_unacked: int = 0

    @property
    def known(self) -> bool:
        return self.ready is not None and self.unacked is not None

    @property
    def backlog(self) -> int:
        return (self.ready or 0) + (self.unacked or 0)


@dataclass(frozen=True)
class Recommendation:
    """A replica count recommended at a time (monotonic seconds); kept for the stabilization window."""

    at: float
    replicas: int


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: Reason
    message: str
    # The count before scale-down damping; the caller keeps it as history.
    recommendation: int | None = None


def decide(
    now: float,
    observation: Observation,
    current: int,
    policy: Policy,
    history: tuple[Recommendation, ...] = (),
) -> Decision:
    if policy.paused:
        return Decision(current, Reason.PAUSED, f"paused: keeping {current} replicas")
    if not observation.known:
        return _without_stats(observation, current, policy)

    wanted, reason, message = _recommend(observation, policy)
    wanted, reason, message = _clamp(wanted, reason, message, current, policy)
    if wanted >= current:
        return Decision(wanted, reason, message, recommendation=wanted)
    return _damp_scale_down(now, wanted, reason, message, observation, current, policy, history)


def _without_stats(observation: Observation, current: int, policy: Policy) -> Decision:
    failed = observation.failed_polls
    if policy.fallback_replicas is not None and failed >= policy.failure_threshold:
        return Decision(
            policy.fallback_replicas,
            Reason.FALLBACK,
            f"queue stats unreadable for {failed} polls (threshold {policy.failure_threshold}): "
            f"running the fallback {policy.fallback_replicas} replicas",
        )
    return Decision(current, Reason.STATS_UNKNOWN, f"queue stats unreadable ({failed} polls): keeping {current} replicas")


def _recommend(observation: Observation, policy: Policy) -> tuple[int, Reason, str]:
    backlog = observation.backlog
    if policy.min_replicas == 0 and backlog <= policy.activation_backlog:
        # KEDA's activation: the threshold only decides between zero and some replicas.
        return 0, Reason.BELOW_ACTIVATION, (
            f"backlog {backlog} is not above the activation threshold {policy.activation_backlog}"
        )
    per_replica = observation.per_replica_ack_rate
    if policy.mode is Mode.DRAIN_TIME and per_replica:
        # Enough replicas to absorb what keeps arriving and clear the backlog in time.
        arriving = observation.publish_rate or 0.0
        needed = backlog / policy.target_drain_seconds + arriving
        replicas = max(math.ceil(needed / per_replica), 1 if backlog else 0)
        return replicas, Reason.DRAIN_TIME, (
            f"backlog {backlog} cleared within {policy.target_drain_seconds:g}s at {per_replica:.2f} acks/s"
            f" per replica, with {arriving:.2f} msg/s arriving, needs {replicas}"
        )
    replicas = math.ceil(backlog / policy.messages_per_replica)
    note = " (drainTime: no ack rate measured yet)" if policy.mode is Mode.DRAIN_TIME else ""
    return replicas, Reason.BACKLOG, (
        f"backlog {backlog} ({observation.ready} ready + {observation.unacked} unacked)"
        f" at {policy.messages_per_replica} per replica needs {replicas}{note}"
    )


def _clamp(wanted: int, reason: Reason, message: str, current: int, policy: Policy) -> tuple[int, Reason, str]:
    if policy.scale_up_step is not None and wanted > current + policy.scale_up_step:
        wanted, reason = current + policy.scale_up_step, Reason.STEP_LIMIT
        message += f"; limited to {policy.scale_up_step} more per decision"
    if wanted > policy.max_replicas:
        return policy.max_replicas, Reason.AT_MAX, message + f"; capped at maxReplicas {policy.max_replicas}"
    if wanted < policy.min_replicas:
        return policy.min_replicas, Reason.AT_MIN, message + f"; raised to minReplicas {policy.min_replicas}"
    return wanted, reason, message


def _damp_scale_down(
    now: float,
    wanted: int,
    reason: Reason,
    message: str,
    observation: Observation,
    current: int,
    policy: Policy,
    history: tuple[Recommendation, ...],
) -> Decision:
    window_start = now - policy.stabilization_seconds
    recent = [entry.replicas for entry in history if entry.at >= window_start]
    highest = max([wanted, *recent])
    desired, final_reason, final_message = wanted, reason, message
    if highest > wanted:
        desired, final_reason = min(highest, current), Reason.STABILIZING
        final_message = (
            f"{message}; holding {desired}: {highest} was recommended within the last"
            f" {policy.stabilization_seconds:g}s stabilization window"
        )
    busy = min(observation.pods_holding_unacked, current)
    if busy > desired:
        desired, final_reason = busy, Reason.UNACKED_HELD
        final_message = f"{message}; holding {busy}: that many pods still hold unacked messages"
    return Decision(desired, final_reason, final_message, recommendation=wanted)


def prune_history(now: float, history: tuple[Recommendation, ...], policy: Policy) -> tuple[Recommendation, ...]:
    """The recommendations still inside the stabilization window."""
    return tuple(entry for entry in history if entry.at >= now - policy.stabilization_seconds)
