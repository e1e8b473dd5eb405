"""Does the concurrency-1 path pay for the concurrency it does not use? The worker's defaults now
against the same worker as of a git revision, on trivial tasks, alternating A and B so that the
broker's drift hits both alike; judged by CPU time per message (the worker's own user + system
time, from the kernel), which a shared broker's noise does not move, and by drain rate.

    .venv/bin/python bench/fast_path_ab.py [--pairs 6] [--tasks 4000] [--baseline 311625e]

Prints each pair and the medians; asserts nothing (docs/benchmarks.md).
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.concurrency_peers import baseline_checkout  # noqa: E402
from bench.drain_peers import Run  # noqa: E402
from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def drain(run: Run, tree: Path | None) -> tuple[float, float]:
    """(msg/s, CPU µs per message) of one worker draining the loaded queue; `tree` runs an old checkout."""
    run.load_with_workfleet()
    env = {}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(tree / part) for part in ("common", "worker")) + os.pathsep + str(ROOT)
    before = children_cpu_s()  # the loader has exited: only the worker's time is added below
    rate = run.drain([sys.executable, "-m", "workfleet_worker", "--amqp-url", run.amqp_url, "--queue", run.queue,
                      "--metrics-port", "0", "--task", "bench.peers.task:handle"], **env)
    return rate, (children_cpu_s() - before) / run.count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--baseline", default="311625e")
    options = parser.parse_args()
    tree = baseline_checkout(options.baseline)
    results = {"now": [], "baseline": []}
    with RabbitNode() as node, tempfile.TemporaryDirectory(prefix="bench-ab-") as folder:
        for pair in range(options.pairs):
            order = ("now", "baseline") if pair % 2 == 0 else ("baseline", "now")
            for name in order:
                run = Run(node.amqp_url, "quorum", options.tasks, 0.0, Path(folder))
                results[name].append(drain(run, tree if name == "baseline" else None))
            (rate_now, cpu_now), (rate_base, cpu_base) = results["now"][-1], results["baseline"][-1]
            print(f"pair {pair + 1}: now {rate_now:7.0f}/s {cpu_now:6.1f} us/msg   "
                  f"{options.baseline} {rate_base:7.0f}/s {cpu_base:6.1f} us/msg", flush=True)
    median = {name: (statistics.median(r for r, _ in values), statistics.median(c for _, c in values))
              for name, values in results.items()}
    print(f"\nmedians: now {median['now'][0]:.0f}/s, {median['now'][1]:.1f} us/msg; {options.baseline} "
          f"{median['baseline'][0]:.0f}/s, {median['baseline'][1]:.1f} us/msg")
    print(f"rate ratio {median['now'][0] / median['baseline'][0]:.3f}, "
          f"CPU per message ratio {median['now'][1] / median['baseline'][1]:.3f} (<= 1.05: no cost)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
