"""Issue 23's benchmark: what one worker process drains when its tasks wait on I/O, workfleet-worker
at concurrency 1 (its default) and 8 against the peers at their defaults and at the settings their
docs recommend for I/O-bound work, in one run on one broker; and `async def` tasks.

    .venv/bin/python bench/concurrency_peers.py [--rounds 3] [--hundred-ms 400] [--five-ms 2000]
                                                 [--trivial 5000] [--async-tasks 3000] [--baseline REV]

Competitors, each one process (Dramatiq: --processes 1, its supervisor plus one worker process)
consuming one queue with acks after the task:
  workfleet-worker, defaults (concurrency 1, prefetch auto), --concurrency 8 (prefetch auto: 8,
  one per slot), and --concurrency 8 --prefetch 32 (a buffer of 24, as deep as Celery's default);
  Dramatiq 2.2.1, defaults: 8 worker threads, prefetch 2 per thread (classic queues only: it
  declares its queues itself and has no quorum option);
  Celery 5.7.0, --pool threads -c 8 (its docs' pool for I/O-bound tasks), task_acks_late,
  worker_prefetch_multiplier 4 (its default).
Async tasks (`await asyncio.sleep(0.1)`):
  workfleet-worker with the task as `async def`, --concurrency 100 and 8;
  Dramatiq 2.2.1 with an async actor and its AsyncIO middleware, default 8 threads (each thread
  waits for its coroutine, so 8 run at once);
  taskiq with taskiq-aio-pika 0.6.1 (its RabbitMQ broker; one worker process, acks after the task),
  at its defaults (prefetch 10, up to 100 async tasks) and with prefetch 100.
Not run: arq, which needs Redis, not this RabbitMQ.
With --baseline REV, workfleet-worker's defaults also run as of that git revision (checked out
under .cache/bench-baseline), so the concurrency-1 path is compared with the code before a change.

Method: drain_peers.py's. The queue is loaded first, then the consumer starts; every competitor runs
bench/peers/task.py (sleep 0, 5 or 100 ms, then append the time to a file); the rate is
(N - 1) / (last - first stamp), the queue empty afterwards. Peak RSS is the consumer's process tree
sampled every 0.2 s. Prints medians of --rounds rounds, competitors interleaved; asserts nothing.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drain_peers import BIN, Run, peers_python, rate_text  # noqa: E402
from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402
from workfleet_operator.local.rabbitmq_install import describe  # noqa: E402

SYNC_COMPETITORS = (
    "workfleet-worker (defaults: concurrency 1)",
    "workfleet-worker --concurrency 8",
    "workfleet-worker --concurrency 8 --prefetch 32",
    "Dramatiq (defaults: 8 threads)",
    "Celery --pool threads -c 8",
)
ASYNC_COMPETITORS = (
    "workfleet-worker async --concurrency 100",
    "workfleet-worker async --concurrency 8",
    "Dramatiq async actor (defaults: 8 threads)",
    "taskiq-aio-pika (defaults: prefetch 10, 100 async tasks)",
    "taskiq-aio-pika --max-async-tasks 100, prefetch 100",
)


BASELINE = "workfleet-worker (defaults) at baseline"


def baseline_checkout(revision: str) -> Path:
    """A work tree of the revision, made once per revision."""
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    tree = ROOT / ".cache" / "bench-baseline" / commit
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True, capture_output=True)
    return tree


def baseline_worker(run: Run, tree: Path) -> float:
    run.load_with_workfleet()
    path = os.pathsep.join(str(tree / part) for part in ("common", "worker")) + os.pathsep + str(ROOT)
    return run.drain([sys.executable, "-m", "workfleet_worker", "--amqp-url", run.amqp_url, "--queue", run.queue,
                      "--queue-type", run.queue_type, "--metrics-port", "0", "--task", "bench.peers.task:handle"],
                     PYTHONPATH=path)


def workfleet(run: Run, task: str, *options: str) -> float:
    run.load_with_workfleet()
    return run.drain([BIN / "workfleet-worker", "--amqp-url", run.amqp_url, "--queue", run.queue, "--queue-type",
                      run.queue_type, "--metrics-port", "0", "--task", task, *options])


def run_competitor(name: str, run: Run) -> float | None:
    if name.startswith("workfleet-worker async"):
        return workfleet(run, "bench.peers.task:handle_async", "--concurrency", name.rsplit(" ", 1)[1])
    if name.startswith("workfleet-worker"):
        options = name.split(" ", 1)[1].split() if name.startswith("workfleet-worker --") else ()
        return workfleet(run, "bench.peers.task:handle", *options)
    if name.startswith("Celery"):
        run.load_with("bench.peers.celery_app")
        return run.drain([peers_python(), "-m", "celery", "-A", "bench.peers.celery_app", "worker", "-P", "threads",
                          "-c", "8", "-Q", run.queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
                          "--loglevel", "WARNING"], BENCH_CELERY_MULTIPLIER="4")
    if name.startswith("taskiq"):
        run.env["BENCH_TASKIQ_QOS"] = "100" if "prefetch 100" in name else "10"
        run.load_with("bench.peers.taskiq_app")
        return run.drain([peers_python(), "-m", "taskiq", "worker", "bench.peers.taskiq_app:broker", "--workers", "1",
                          "--max-async-tasks", "100", "--ack-type", "when_executed"])
    if name.startswith("Dramatiq"):
        if run.queue_type != "classic":
            return None
        asynchronous = "async" in name
        run.env["BENCH_ASYNC"] = "1" if asynchronous else ""
        run.load_with("bench.peers.dramatiq_app")
        return run.drain([peers_python(), "-m", "dramatiq", "bench.peers.dramatiq_app", "--processes", "1"],
                         BENCH_ASYNC="1" if asynchronous else "")
    raise ValueError(name)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hundred-ms", type=int, default=400, help="tasks in the 100 ms rows")
    parser.add_argument("--five-ms", type=int, default=2000, help="tasks in the 5 ms rows")
    parser.add_argument("--trivial", type=int, default=5000, help="tasks in the no-work rows")
    parser.add_argument("--async-tasks", type=int, default=3000, help="tasks in the async 100 ms rows")
    parser.add_argument("--baseline", help="a git revision whose workfleet-worker runs too, at its defaults")
    options = parser.parse_args()
    baseline = baseline_checkout(options.baseline) if options.baseline else None
    sync_competitors = SYNC_COMPETITORS + ((BASELINE,) if baseline else ())
    sizes = {"100 ms": (options.hundred_ms, 0.1), "5 ms": (options.five_ms, 0.005), "trivial": (options.trivial, 0.0),
             "async 100 ms": (options.async_tasks, 0.1)}
    peers_python()
    rates: dict[tuple, list[float]] = {}
    memory: dict[tuple, list[float]] = {}
    with RabbitNode() as node, tempfile.TemporaryDirectory(prefix="bench-concurrency-") as folder:
        print(f"broker: {describe(node.install)}", flush=True)
        for round_number in range(options.rounds):
            for queue_type in ("quorum", "classic"):
                for size, (count, seconds) in sizes.items():
                    for name in ASYNC_COMPETITORS if size.startswith("async") else sync_competitors:
                        run = Run(node.amqp_url, queue_type, count, seconds, Path(folder))
                        rate = baseline_worker(run, baseline) if name == BASELINE else run_competitor(name, run)
                        if rate is None:
                            continue
                        rates.setdefault((queue_type, size, name), []).append(rate)
                        memory.setdefault((queue_type, size, name), []).append(run.peak_rss_mib)
                        print(f"round {round_number + 1}  {queue_type:7} {size:12} {name:44} {rate:8.1f}/s "
                              f"{run.peak_rss_mib:6.1f} MiB", flush=True)
    report(rates, memory, sizes, options.rounds, sync_competitors)
    return 0


def report(rates: dict, memory: dict, sizes: dict, rounds: int, sync_competitors: tuple) -> None:
    median = {key: statistics.median(values) for key, values in rates.items()}
    rss = {key: statistics.median(values) for key, values in memory.items()}
    for queue_type in ("quorum", "classic"):
        print(f"\n{queue_type} queue, msg/s per process, median of {rounds} (peak RSS MiB)\n")
        print("| competitor | " + " | ".join(f"{size} ({count} tasks)" for size, (count, _) in sizes.items()) + " |")
        print("|---|" + "---:|" * len(sizes))
        for name in sync_competitors + ASYNC_COMPETITORS:
            cells = []
            for size in sizes:
                key = (queue_type, size, name)
                cells.append(f"{rate_text(median[key])} ({rss[key]:.0f})" if key in median else "n/a")
            print(f"| {name} | " + " | ".join(cells) + " |")
    eight = "workfleet-worker --concurrency 8"
    dramatiq = median.get(("classic", "100 ms", "Dramatiq (defaults: 8 threads)"))
    print("\ntargets:")
    if dramatiq:
        print(f"  classic 100 ms, concurrency 8 / Dramatiq's defaults: {median[('classic', '100 ms', eight)] / dramatiq:.2f} (>= 0.95)")
    for queue_type in ("quorum", "classic"):
        celery = median[(queue_type, "100 ms", "Celery --pool threads -c 8")]
        print(f"  {queue_type} 100 ms, concurrency 8 / Celery threads 8: {median[(queue_type, '100 ms', eight)] / celery:.2f}")
        print(f"  {queue_type} async 100 ms at concurrency 100: "
              f"{median[(queue_type, 'async 100 ms', 'workfleet-worker async --concurrency 100')]:.0f}/s (>= 500)")
        if BASELINE in sync_competitors:
            now = median[(queue_type, "trivial", SYNC_COMPETITORS[0])]
            print(f"  {queue_type} trivial, concurrency 1 / the baseline's defaults: "
                  f"{now / median[(queue_type, 'trivial', BASELINE)]:.3f} (>= 0.95)")


if __name__ == "__main__":
    raise SystemExit(main())
