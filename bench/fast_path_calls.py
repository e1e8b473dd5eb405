"""The concurrency-1 path's cost per message in Python function calls, now against a git revision:
a count that neither the machine's load nor the broker's drift moves, where rates and CPU times on
this shared 2-core machine differ by 10% between two runs of the same code (docs/benchmarks.md).

Each revision's worker drains a small and a large queue of trivial tasks under cProfile; calls per
message is the difference of the two totals over the difference of the counts, so start-up and
shut-down cancel out. Also lists the functions whose calls per message differ.

    .venv/bin/python bench/fast_path_calls.py [--small 500] [--large 2500] [--baseline 311625e]

Prints; asserts nothing (docs/benchmarks.md).
"""

import argparse
import os
import pstats
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.concurrency_peers import baseline_checkout  # noqa: E402
from bench.drain_peers import Run  # noqa: E402
from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402

Calls = dict[str, int]


def profiled_drain(amqp_url: str, count: int, tree: Path | None, folder: Path) -> Calls:
    """Calls per function of one worker (main thread) draining `count` trivial tasks."""
    run = Run(amqp_url, "quorum", count, 0.0, folder)
    run.load_with_workfleet()
    env = {}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(tree / part) for part in ("common", "worker")) + os.pathsep + str(ROOT)
    profile = folder / f"{run.queue}.prof"
    run.drain([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "workfleet_worker", "--amqp-url", run.amqp_url,
               "--queue", run.queue, "--metrics-port", "0", "--task", "bench.peers.task:handle"], **env)
    stats = pstats.Stats(str(profile)).stats  # {(file, line, name): (primitive calls, calls, ...)}
    calls: Calls = {}
    for (file, _, name), (_, total, *_) in stats.items():
        key = f"{Path(file).name}:{name}"
        calls[key] = calls.get(key, 0) + total
    return calls


def per_message(small: Calls, large: Calls, messages: int) -> dict[str, float]:
    return {key: (large.get(key, 0) - small.get(key, 0)) / messages for key in set(small) | set(large)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=2500)
    parser.add_argument("--baseline", default="311625e")
    options = parser.parse_args()
    tree = baseline_checkout(options.baseline)
    messages = options.large - options.small
    costs = {}
    with RabbitNode() as node, tempfile.TemporaryDirectory(prefix="bench-calls-") as folder:
        for name, checkout in (("now", None), (options.baseline, tree)):
            small = profiled_drain(node.amqp_url, options.small, checkout, Path(folder))
            large = profiled_drain(node.amqp_url, options.large, checkout, Path(folder))
            costs[name] = per_message(small, large, messages)
            print(f"{name}: {sum(costs[name].values()):.1f} calls per message", flush=True)
    now, base = costs["now"], costs[options.baseline]
    total_now, total_base = sum(now.values()), sum(base.values())
    print(f"ratio now / {options.baseline}: {total_now / total_base:.3f}")
    changed = sorted(((now.get(key, 0) - base.get(key, 0), key) for key in set(now) | set(base)), reverse=True)
    print("functions whose calls per message changed by 0.5 or more:")
    for difference, key in changed:
        if abs(difference) >= 0.5:
            print(f"  {difference:+6.1f}  {key}  ({base.get(key, 0):.1f} -> {now.get(key, 0):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
