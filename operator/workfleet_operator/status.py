"""A WorkerPool's status and conditions, built from one poll: pure, so it can be compared.

The operator writes status only when the built dict differs from the last one
written; conditions keep their lastTransitionTime until their status flips.
Rates are rounded to three significant digits so that noise alone does not count
as a change.
"""

from dataclasses import dataclass

from workfleet_operator.scaling.rates import Rates

METRICS_AVAILABLE = "MetricsAvailable"
SCALING_ACTIVE = "ScalingActive"
FORGOTTEN_ACK_SUSPECTED = "ForgottenAckSuspected"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def round_rate(value: float) -> float:
    return float(f"{value:.3g}")


def build_status(
    previous: dict,
    generation: int | None,
    current: int | None,
    desired: int | None,
    queue: tuple[int, int, int] | None,
    rates: Rates | None,
    last_decision: dict | None,
    conditions: list[Condition],
    now_iso: str,
) -> dict:
    """The status to write. `previous` is the status as last written (or as found)."""
    status: dict = {}
    if generation is not None:
        status["observedGeneration"] = generation
    if current is not None:
        status["currentReplicas"] = current
    if desired is not None:
        status["desiredReplicas"] = desired
    if queue is not None:
        status["readyMessages"], status["unackedMessages"], status["consumers"] = queue
    if rates is not None:
        status["rates"] = {name: round_rate(getattr(rates, name)) for name in ("publish", "deliver", "ack", "redeliver")}
        if rates.redelivery_ratio is not None:
            status["redeliveryRatio"] = round_rate(rates.redelivery_ratio)
    decision = last_decision or previous.get("lastDecision")
    if decision:
        status["lastDecision"] = decision
    status["conditions"] = _conditions(previous.get("conditions") or [], conditions, now_iso)
    return status


def _conditions(previous: list[dict], conditions: list[Condition], now_iso: str) -> list[dict]:
    before = {item.get("type"): item for item in previous}
    built = []
    for condition in conditions:
        status = "True" if condition.status else "False"
        old = before.get(condition.type, {})
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        built.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": since or now_iso,
            }
        )
    return built


def status_patch(previous: dict, built: dict) -> dict:
    """A merge patch turning `previous` into `built`: fields that disappeared are set to None."""
    patch = dict(built)
    for key in previous:
        if key not in built:
            patch[key] = None
    return patch
