"""Issue 10's benchmark: the chart on the one-node cluster (real pods), scaling from a burst.

    .venv/bin/python bench/cluster_scaling.py [--trials 3] [--tasks 200] [--task-seconds 0.5]

Installs the chart with the images of `make images` and the chart's defaults except: the local
images and 1 Gi volume, maxReplicas 4, and WORKFLEET_DOT_SECONDS so that each task (".") takes
--task-seconds. Per trial, with one worker consuming at rest, --tasks tasks are published with
confirms at the broker's Service address; the clock starts at the last confirm. Measured from the
queue's consumer count and ack counter (management API, polled every 0.2 s):
  first: until a second consumer (the first new worker pod) consumes;
  last:  until the fourth one does;
  drain: until every task is acked, against the ideal of tasks x seconds / 4 pods.
Between trials the pool scales back to 1. Prints a table; asserts nothing (docs/benchmarks.md).
"""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.burst import burst_options  # noqa: E402

import yaml  # noqa: E402

from tests.node.test_fleet import CHART, NAMESPACE, RELEASE, VALUES, Fleet  # noqa: E402
from tests.support.broker import wait_until  # noqa: E402
from tests.support.cluster import NodeCluster  # noqa: E402
from tests.support.oci_images import chart_images  # noqa: E402

MAX_PODS = 4


def trial(fleet: Fleet, tasks: int) -> tuple[float, float, float]:
    wait_until(lambda: fleet.replicas() == 1 and fleet.queue("tasks")["consumers"] == 1, timeout=300,
               message="one worker at rest")
    acks = fleet.acks()
    fleet.publish(".", count=tasks)
    start = time.monotonic()
    first = last = None
    while True:
        queue = fleet.queue("tasks")
        now = time.monotonic() - start
        if first is None and queue["consumers"] >= 2:
            first = now
        if last is None and queue["consumers"] >= MAX_PODS:
            last = now
        if fleet.acks() - acks >= tasks:
            return first, last, now
        time.sleep(0.2)


def main() -> int:
    options = burst_options()
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    with NodeCluster() as cluster:
        cluster.import_images(chart_images(version))
        fleet = Fleet(cluster)
        installed = fleet.helm("install", RELEASE, str(CHART), "--create-namespace", "-f", str(VALUES),
                               "--set", "autoscaling.pollSeconds=5", "--set", "autoscaling.scaleDownStabilizationSeconds=60",
                               "--set", "worker.extraEnv[0].name=WORKFLEET_DOT_SECONDS",
                               "--set-string", f"worker.extraEnv[0].value={options.task_seconds}",
                               "--wait", "--timeout=5m")
        assert installed.returncode == 0, installed.stderr
        results = [trial(fleet, options.tasks) for _ in range(options.trials)]
    ideal = options.tasks * options.task_seconds / MAX_PODS
    print(f"{options.tasks} tasks of {options.task_seconds} s, max {MAX_PODS} pods, pollSeconds 5, "
          f"stabilization 60 s, {options.trials} trials in namespace {NAMESPACE}")
    print("| measure | median | max |")
    print("|---|---|---|")
    for name, values in zip(("first new pod consuming (s)", "last new pod consuming (s)", "drain (s)"), zip(*results)):
        print(f"| {name} | {statistics.median(values):.1f} | {max(values):.1f} |")
    drains = [result[2] for result in results]
    print(f"| drain / ideal ({ideal:.1f} s) | {statistics.median(drains) / ideal:.2f} | {max(drains) / ideal:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
