"""Real dead letters, made by a real worker whose task always fails."""

from tests.support.broker import declare, publish, queue_depth, wait_until
from workfleet_common.topology import Topology

FAILING_TASK = "workfleet_worker.tasks:fail"


def fail_into_dead_letter_queue(amqp_url: str, queue: str, workers, bodies: list[str]):
    """Declare the topology, publish `bodies` with confirms, and let a worker with
    --max-attempts 1 dead-letter every one. Returns (ids, that worker, still running)."""
    topology = Topology(queue)
    declare(amqp_url, topology)
    worker = workers(amqp_url, "--queue", queue, "--task", FAILING_TASK, "--max-attempts", "1")
    ids, confirmed = publish(amqp_url, queue, bodies)
    assert confirmed == set(ids)
    wait_until(
        lambda: queue_depth(amqp_url, topology.dead_letter_queue)[0] == len(bodies),
        timeout=120,
        message=f"{len(bodies)} dead letters",
    )
    return ids, worker
