"""Issue 11's first benchmark: `workfleet up`'s scaling loop on one machine, from a burst.

    .venv/bin/python bench/local_fleet.py [--trials 3] [--tasks 200] [--task-seconds 0.5]

The same burst as bench/cluster_scaling.py: with one worker consuming at rest (min 1, max 4,
backlog mode at 10 messages per worker, 60 s stabilization, a private RabbitMQ 4 node), --tasks
tasks of --task-seconds are published with confirms; the clock starts at the last confirm.
Measured every 0.1 s: the queue's consumers (passive declare, exact), the workers running, and
the acks in the workers' logs:
  first / last: until a second / the fourth consumer consumes;
  drain: until every task is acked, against the ideal of tasks x seconds / 4 workers;
  worker-seconds: running workers integrated over the drain, against the work itself.
Run at the local default poll of 1 s and at the cluster's default of 5 s. Prints a table and
writes docs/img/local_fleet.png (backlog and workers over time, one trial of each); asserts nothing.
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.burst import burst_options, plot_timelines  # noqa: E402

from tests.support.broker import declare, publish, queue_depth  # noqa: E402
from workfleet_common.logs import read_delivery_outcomes  # noqa: E402
from workfleet_common.topology import Topology  # noqa: E402
from workfleet_operator.local.autoscaler import LocalAutoscaler  # noqa: E402
from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402
from workfleet_operator.local.up import broker_of  # noqa: E402
from workfleet_operator.local.worker_processes import WorkerProcesses  # noqa: E402
from workfleet_operator.scaling.policy import Policy  # noqa: E402

MAX_WORKERS = 4
SAMPLE_S = 0.1
PLOT = ROOT / "docs" / "img" / "local_fleet.png"


def acked(workers: WorkerProcesses) -> int:
    return sum(1 for worker in workers.history for line in read_delivery_outcomes(worker.log) if line["outcome"] == "acked")


def watch(node: RabbitNode, queue: str, workers: WorkerProcesses, tasks: int, task_seconds: float) -> dict:
    """The burst and its measurements; runs while the scaling loop runs."""
    while queue_depth(node.amqp_url, queue)[1] != 1:
        time.sleep(SAMPLE_S)
    done_before = acked(workers)
    publish(node.amqp_url, queue, ["."] * tasks)
    start = time.monotonic()
    first = last = None
    worker_seconds = 0.0
    timeline = []
    while True:
        now = time.monotonic() - start
        ready, consumers = queue_depth(node.amqp_url, queue)
        running = len(workers.running)
        timeline.append((now, ready, running))
        if first is None and consumers >= 2:
            first = now
        if last is None and consumers >= MAX_WORKERS:
            last = now
        if acked(workers) - done_before >= tasks:
            return {"first": first, "last": last, "drain": now, "worker_seconds": worker_seconds, "timeline": timeline}
        time.sleep(SAMPLE_S)
        worker_seconds += running * (time.monotonic() - start - now)


async def trial(node: RabbitNode, poll_seconds: float, tasks: int, task_seconds: float, folder: Path) -> dict:
    queue = "tasks"
    declare(node.amqp_url, Topology(queue))
    workers = WorkerProcesses(node.amqp_url, ["--queue", queue], folder, env={"WORKFLEET_DOT_SECONDS": str(task_seconds)})
    policy = Policy(min_replicas=1, max_replicas=MAX_WORKERS, stabilization_seconds=60)
    autoscaler = LocalAutoscaler(broker_of(node.amqp_url, node.management_url), queue, policy, workers, poll_seconds)
    stop = asyncio.Event()
    scaling = asyncio.ensure_future(autoscaler.run(stop, lambda step: None))
    try:
        return await asyncio.to_thread(watch, node, queue, workers, tasks, task_seconds)
    finally:
        stop.set()
        await scaling
        await asyncio.to_thread(workers.stop_all, 30)


def main() -> int:
    options = burst_options()
    work = options.tasks * options.task_seconds
    ideal = work / MAX_WORKERS
    timelines = {}
    print(f"{options.tasks} tasks of {options.task_seconds} s, max {MAX_WORKERS} workers; ideal drain {ideal:.1f} s, "
          f"{options.trials} trials per poll interval")
    print("| poll | measure | median | max |\n|---|---|---:|---:|")
    with RabbitNode() as node:
        for poll_seconds in (1.0, 5.0):
            results = []
            for _ in range(options.trials):
                with tempfile.TemporaryDirectory(prefix="bench-local-") as folder:
                    results.append(asyncio.run(trial(node, poll_seconds, options.tasks, options.task_seconds, Path(folder))))
                time.sleep(2)
            timelines[f"poll {poll_seconds:g} s"] = results[0]["timeline"]
            rows = {
                "first new worker consuming (s)": [result["first"] for result in results],
                "last new worker consuming (s)": [result["last"] for result in results],
                "drain (s)": [result["drain"] for result in results],
                f"drain / ideal ({ideal:.1f} s)": [result["drain"] / ideal for result in results],
                f"worker-seconds / work ({work:.0f} s)": [result["worker_seconds"] / work for result in results],
            }
            for name, values in rows.items():
                print(f"| {poll_seconds:g} s | {name} | {statistics.median(values):.2f} | {max(values):.2f} |")
    plot_timelines(timelines, "workfleet up: a burst of 200 tasks of 0.5 s, max 4 workers", PLOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
