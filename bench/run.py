"""Benchmarks from issue 2, competitors interleaved in one run on one private broker.

    .venv/bin/python bench/run.py [--messages 20000] [--rounds 3]

drain:   N trivial tasks at prefetch 1, classic durable queue, first ack to last ack:
         workfleet-worker (JSON outcome log, metrics, retry bookkeeping) vs
         bench/plain_consumer.py, both running the tutorial's work (a sleep of 0 s here);
         then the same with no task work at all (the `noop` task vs a consumer without the
         sleep call), which leaves only the per-message overhead; then N/10 tasks of 5 ms.
publish: N persistent messages, whole process wall time including start-up:
         workfleet-produce (pipelined confirms) vs bench/naive_publish.py (one confirm each).
Prints medians and ratios; asserts nothing about time (results go to docs/benchmarks.md).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pika

from workfleet_common.logs import read_delivery_outcomes
from workfleet_operator.local.rabbitmq import RabbitNode

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


TASK_5MS = 0.005  # seconds per '.'; the 5 ms rows publish "x."


def load(amqp_url: str, queue: str, count: int, body: str = "x") -> None:
    result = subprocess.run(
        [BIN / "workfleet-produce", "--queue", queue, "--queue-type", "classic", "--count", str(count), body],
        env=dict(os.environ, WORKFLEET_AMQP_URL=amqp_url),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def drain_plain(amqp_url: str, queue: str, count: int, dot_seconds: float | None = 0.0) -> float:
    """dot_seconds None: no task work at all (the tutorial's sleep call is skipped)."""
    load(amqp_url, queue, count, "x." if dot_seconds else "x")
    work = "none" if dot_seconds is None else str(dot_seconds)
    out = subprocess.run(
        [PYTHON, BENCH / "plain_consumer.py", amqp_url, queue, str(count), work],
        capture_output=True,
        text=True,
        check=True,
    )
    first, last = map(float, out.stdout.split())
    return (count - 1) / (last - first)


def drain_workfleet(amqp_url: str, queue: str, count: int, log: Path, dot_seconds: float | None = 0.0) -> float:
    """dot_seconds None: the built-in `noop` task instead of `dots`."""
    load(amqp_url, queue, count, "x." if dot_seconds else "x")
    env = dict(os.environ, WORKFLEET_AMQP_URL=amqp_url, WORKFLEET_DOT_SECONDS=str(dot_seconds or 0))
    task = "workfleet_worker.tasks:noop" if dot_seconds is None else "workfleet_worker.tasks:dots"
    with open(log, "wb") as stderr:
        worker = subprocess.Popen(
            [BIN / "workfleet-worker", "--queue", queue, "--queue-type", "classic", "--metrics-port", "0", "--task", task],
            env=env,
            stderr=stderr,
        )
        times = []
        while len(times) < count:
            time.sleep(0.5)
            times = read_delivery_outcomes(log)
        worker.terminate()
        worker.wait(60)
    stamps = [datetime.fromisoformat(line["ts"].rstrip("Z")).timestamp() for line in times]
    return (count - 1) / (max(stamps) - min(stamps))


def publish_naive(amqp_url: str, queue: str, count: int) -> float:
    started = time.monotonic()
    subprocess.run([PYTHON, BENCH / "naive_publish.py", amqp_url, queue, str(count)], check=True)
    return count / (time.monotonic() - started)


def publish_workfleet(amqp_url: str, queue: str, count: int) -> float:
    started = time.monotonic()
    load(amqp_url, queue, count)
    return count / (time.monotonic() - started)


def purge(amqp_url: str, queue: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        connection.channel().queue_purge(queue)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    names = ("drain plain", "drain workfleet", "no-work plain", "no-work workfleet", "5ms plain", "5ms workfleet", "publish naive", "publish workfleet")
    rates = {name: [] for name in names}
    with RabbitNode() as broker:
        url = broker.amqp_url
        for round_number in range(args.rounds):
            rates["drain plain"].append(drain_plain(url, "bench_drain_plain", n))
            rates["drain workfleet"].append(drain_workfleet(url, "bench_drain_wf", n, broker.dir / "worker.log"))
            rates["no-work plain"].append(drain_plain(url, "bench_nowork_plain", n, None))
            rates["no-work workfleet"].append(drain_workfleet(url, "bench_nowork_wf", n, broker.dir / "worker.log", None))
            rates["5ms plain"].append(drain_plain(url, "bench_5ms_plain", n // 10, TASK_5MS))
            rates["5ms workfleet"].append(drain_workfleet(url, "bench_5ms_wf", n // 10, broker.dir / "worker.log", TASK_5MS))
            rates["publish naive"].append(publish_naive(url, "bench_pub_naive", n))
            purge(url, "bench_pub_naive")
            rates["publish workfleet"].append(publish_workfleet(url, "bench_pub_wf", n))
            purge(url, "bench_pub_wf")
            print(f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}
    print()
    print(f"| benchmark ({n} messages, median of {args.rounds}) | msg/s | ratio |")
    print("|---|---:|---:|")
    print(f"| drain: plain tutorial consumer | {median['drain plain']:.0f} | 1.00 |")
    print(f"| drain: workfleet-worker | {median['drain workfleet']:.0f} | {median['drain workfleet'] / median['drain plain']:.2f} |")
    print(f"| drain, no task work: plain consumer without the sleep call | {median['no-work plain']:.0f} | 1.00 |")
    print(f"| drain, no task work: workfleet-worker, noop task | {median['no-work workfleet']:.0f} | {median['no-work workfleet'] / median['no-work plain']:.2f} |")
    print(f"| drain, 5 ms tasks ({n // 10}): plain consumer | {median['5ms plain']:.0f} | 1.00 |")
    print(f"| drain, 5 ms tasks ({n // 10}): workfleet-worker | {median['5ms workfleet']:.0f} | {median['5ms workfleet'] / median['5ms plain']:.2f} |")
    print(f"| publish: one confirm per message | {median['publish naive']:.0f} | 1.00 |")
    print(f"| publish: workfleet-produce | {median['publish workfleet']:.0f} | {median['publish workfleet'] / median['publish naive']:.2f} |")


if __name__ == "__main__":
    main()
