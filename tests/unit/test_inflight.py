"""The in-flight age gauge reports the task running, not deliveries waiting in the buffer."""

import time

from workfleet_worker.inflight import Delivery, InFlight


def delivery(tag: int, started_s_ago: float | None) -> Delivery:
    started = None if started_s_ago is None else time.monotonic() - started_s_ago
    return Delivery(session=None, delivery_tag=tag, name=f"m{tag}", redelivered=False, properties=None, body=b"",
                    started_at=started)


def test_buffered_deliveries_count_as_in_flight_but_not_in_the_age():
    inflight = InFlight()
    for tag in range(1, 5):
        inflight.add(delivery(tag, None))  # waiting in the buffer since the session began
    assert inflight.count() == 4 and inflight.oldest_age() == 0.0
    running = delivery(5, started_s_ago=3.0)
    inflight.add(running)
    assert inflight.count() == 5
    assert 3.0 <= inflight.oldest_age() < 4.0
    inflight.remove(running)
    assert inflight.oldest_age() == 0.0
