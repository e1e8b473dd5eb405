import random

from workfleet_worker.backoff import Backoff


def test_delays_grow_are_capped_and_reset():
    backoff = Backoff(initial=0.5, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(200)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings))
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_jitter_spreads_a_fleet():
    fleet = [Backoff(rng=random.Random(seed)) for seed in range(20)]
    for backoff in fleet:
        backoff.next_delay()
    assert len({round(backoff.next_delay(), 6) for backoff in fleet}) == 20
