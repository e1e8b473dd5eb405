"""Issue 11's policy comparison: the two policy modes and KEDA-like settings on one bursty trace.

    .venv/bin/python bench/local_policies.py [--bursts 3] [--burst-tasks 80] [--gap-seconds 45]

One private RabbitMQ 4 node; for each setting in turn, a fresh queue and `workfleet up`'s scaling
loop (in-process) with min 0 and max 4 workers, tasks of 0.5 s. The trace: --bursts bursts of
--burst-tasks tasks, --gap-seconds apart, each published with confirms. Measured every 0.1 s (the
workers running, the acks in their logs) from the first burst until the fleet is back at zero
workers after the last task:
  makespan: first burst confirmed to last task acked;
  worker-seconds: running workers integrated over that whole time, idle tails included, against
  the work itself;
  peak workers, and scale events (decisions that changed the count).
Prints one table and writes docs/img/local_policies.png (backlog and workers over time, each
setting); asserts nothing (docs/benchmarks.md).
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.burst import plot_timelines  # noqa: E402
from tests.support.broker import declare, publish, queue_depth  # noqa: E402
from workfleet_common.logs import read_delivery_outcomes  # noqa: E402
from workfleet_common.topology import Topology  # noqa: E402
from workfleet_operator.local.autoscaler import LocalAutoscaler  # noqa: E402
from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402
from workfleet_operator.local.up import broker_of  # noqa: E402
from workfleet_operator.local.worker_processes import WorkerProcesses  # noqa: E402
from workfleet_operator.scaling.policy import Mode, Policy  # noqa: E402

TASK_SECONDS = 0.5
MAX_WORKERS = 4
SAMPLE_S = 0.1
PLOT = ROOT / "docs" / "img" / "local_policies.png"
# name -> (policy, poll seconds). KEDA's defaults: pollingInterval 30 s, and the HPA it drives
# waits 300 s before scaling down; its RabbitMQ scaler's queueLength target plays messagesPerReplica.
SETTINGS = {
    "backlog (workfleet up defaults)": (Policy(0, MAX_WORKERS, Mode.BACKLOG, messages_per_replica=10, stabilization_seconds=60), 1.0),
    "drainTime, 15 s target": (Policy(0, MAX_WORKERS, Mode.DRAIN_TIME, target_drain_seconds=15, stabilization_seconds=60), 1.0),
    "KEDA-like: 30 s poll, 300 s stabilization": (Policy(0, MAX_WORKERS, Mode.BACKLOG, messages_per_replica=10, stabilization_seconds=300), 30.0),
}


def acked(workers: WorkerProcesses) -> int:
    return sum(1 for worker in workers.history for line in read_delivery_outcomes(worker.log) if line["outcome"] == "acked")


def drive(node: RabbitNode, queue: str, workers: WorkerProcesses, options) -> dict:
    total = options.bursts * options.burst_tasks
    start = time.monotonic()
    published = 0
    last_ack = None
    worker_seconds = 0.0
    peak = 0
    previous = start
    timeline = []
    while True:
        now = time.monotonic()
        if published < options.bursts and now - start >= published * options.gap_seconds:
            publish(node.amqp_url, queue, ["."] * options.burst_tasks)
            published += 1
        running = len(workers.running)
        timeline.append((now - start, queue_depth(node.amqp_url, queue)[0], running))
        peak = max(peak, running)
        worker_seconds += running * (now - previous)
        previous = now
        if last_ack is None and acked(workers) >= total:
            last_ack = now - start
        if last_ack is not None and workers.replicas == 0 and running == 0:
            return {"makespan": last_ack, "worker_seconds": worker_seconds, "peak": peak, "settled": now - start,
                    "timeline": timeline}
        time.sleep(SAMPLE_S)


async def run_setting(node: RabbitNode, name: str, policy: Policy, poll_seconds: float, options, folder: Path) -> dict:
    queue = f"trace-{abs(hash(name)) % 10_000}"
    declare(node.amqp_url, Topology(queue))
    workers = WorkerProcesses(node.amqp_url, ["--queue", queue], folder, env={"WORKFLEET_DOT_SECONDS": str(TASK_SECONDS)})
    autoscaler = LocalAutoscaler(broker_of(node.amqp_url, node.management_url), queue, policy, workers, poll_seconds)
    events = []
    stop = asyncio.Event()
    scaling = asyncio.ensure_future(autoscaler.run(stop, lambda step: events.append(step) if step.changed else None))
    try:
        result = await asyncio.to_thread(drive, node, queue, workers, options)
    finally:
        stop.set()
        await scaling
        await asyncio.to_thread(workers.stop_all, 30)
    return {**result, "events": len(events)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--burst-tasks", type=int, default=80)
    parser.add_argument("--gap-seconds", type=float, default=45)
    options = parser.parse_args()
    work = options.bursts * options.burst_tasks * TASK_SECONDS
    print(f"{options.bursts} bursts of {options.burst_tasks} tasks of {TASK_SECONDS} s, {options.gap_seconds:g} s apart; "
          f"{work:.0f} s of work; min 0, max {MAX_WORKERS} workers")
    print("| setting | makespan (s) | worker-seconds / work | peak workers | scale events | back at 0 after (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    timelines = {}
    with RabbitNode() as node:
        for name, (policy, poll_seconds) in SETTINGS.items():
            with tempfile.TemporaryDirectory(prefix="bench-policies-") as folder:
                result = asyncio.run(run_setting(node, name, policy, poll_seconds, options, Path(folder)))
            timelines[name] = result["timeline"]
            print(f"| {name} | {result['makespan']:.1f} | {result['worker_seconds'] / work:.2f} | {result['peak']} | "
                  f"{result['events']} | {result['settled']:.0f} |", flush=True)
    plot_timelines(timelines, f"{options.bursts} bursts of {options.burst_tasks} tasks of {TASK_SECONDS} s, "
                              f"max {MAX_WORKERS} workers", PLOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
