"""Issue 13's benchmark: how fast one worker drains a queue, workfleet-worker at prefetch 1 and
with the default `--prefetch auto`, against a plain pika consumer and the peers users would
otherwise pick, on the default quorum queue and on a classic one, in one run on one broker.

    .venv/bin/python bench/drain_peers.py [--rounds 3] [--trivial 5000] [--five-ms 1000] [--hundred-ms 60]

Competitors, each one process consuming one queue with manual (late) acks:
  plain pika consumer at prefetch 1 and at prefetch 20 (bench/peers/plain.py);
  workfleet-worker --prefetch 1, and with its default (auto);
  Celery 5.7.0, prefork -c 1, task_acks_late, worker_prefetch_multiplier 1, and its default 4;
  Dramatiq 2.2.1, --processes 1 --threads 1, default middleware (classic queues only: it
  declares its queues itself and has no quorum option).
Celery and Dramatiq run from a virtualenv of their own (.cache/bench-peers, made on the first
run), because Celery pins a python-dateutil that the kubernetes client refuses.

Method, the same for every competitor: the queue is loaded first (each with its own publisher),
then the consumer starts. Every competitor runs the same task (bench/peers/task.py: sleep 0, 5 or
100 ms, then append the time to a file); the rate is (N - 1) / (last - first stamp). Cross-check:
N stamps, and the queue empty afterwards. Prints one table per queue type, medians of --rounds
rounds with the competitors interleaved; asserts nothing (docs/benchmarks.md).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402
from workfleet_operator.local.rabbitmq_install import describe  # noqa: E402

BIN = Path(sys.executable).parent
PEERS_VENV = ROOT / ".cache" / "bench-peers"
PEERS = ("celery==5.7.0", "dramatiq[rabbitmq]==2.2.1", "taskiq-aio-pika==0.6.1")
RUN_TIMEOUT_S = 600

COMPETITORS = (
    "plain pika, prefetch 1",
    "plain pika, prefetch 20",
    "workfleet-worker --prefetch 1",
    "workfleet-worker (default: auto)",
    "Celery, multiplier 1",
    "Celery, default multiplier 4",
    "Dramatiq",
)


def peers_python() -> Path:
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "installed.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(PEERS):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
        stamp.write_text("\n".join(PEERS))
    return python


def ready(amqp_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def wait_for(predicate, what: str, timeout: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def stamps_of(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (Dramatiq forks its worker), in MiB."""
    total_kib, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total_kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        pending.extend(int(child) for child in children)
    return total_kib / 1024


class Run:
    """One competitor draining one freshly loaded queue."""

    def __init__(self, amqp_url: str, queue_type: str, count: int, task_seconds: float, folder: Path):
        self.amqp_url = amqp_url
        self.queue_type = queue_type
        self.count = count
        self.queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.stamps = folder / f"{self.queue}.stamps"
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_AMQP_URL=amqp_url, BENCH_QUEUE=self.queue,
                        BENCH_QUEUE_TYPE=queue_type, BENCH_STAMPS=str(self.stamps),
                        BENCH_TASK_SECONDS=str(task_seconds))

    def load_with_workfleet(self) -> None:
        subprocess.run([BIN / "workfleet-produce", "--amqp-url", self.amqp_url, "--queue", self.queue,
                        "--queue-type", self.queue_type, "--count", str(self.count), "x"],
                       env=self.env, capture_output=True, check=True)

    def load_with(self, module: str) -> None:
        subprocess.run([peers_python(), "-m", module, str(self.count)], env=self.env, capture_output=True, check=True)

    def drain(self, command: list, **env: str) -> float:
        """The drain rate; also sets peak_rss_mib, the consumer's process tree's largest RSS seen."""
        wait_for(lambda: ready(self.amqp_url, self.queue) == self.count, f"{self.queue} loaded")
        self.peak_rss_mib = 0.0
        with open(self.stamps.with_suffix(".log"), "wb") as log:
            consumer = subprocess.Popen(command, env=dict(self.env, **env), stdout=log, stderr=log)

            def drained() -> bool:
                self.peak_rss_mib = max(self.peak_rss_mib, tree_rss_mib(consumer.pid))
                return len(stamps_of(self.stamps)) >= self.count or consumer.poll() is not None

            try:
                wait_for(drained, f"{self.queue} drained")
            finally:
                consumer.terminate()
                try:
                    consumer.wait(30)
                except subprocess.TimeoutExpired:
                    consumer.kill()
        stamps = stamps_of(self.stamps)
        assert len(stamps) == self.count, f"{len(stamps)} of {self.count} handled; log {self.stamps.with_suffix('.log')}"
        assert ready(self.amqp_url, self.queue) == 0, "the queue is not empty"
        return (self.count - 1) / (max(stamps) - min(stamps))


def run_competitor(name: str, run: Run) -> float | None:
    if name.startswith("plain pika"):
        run.load_with_workfleet()
        prefetch = name.rsplit(" ", 1)[1]
        return run.drain([sys.executable, "-m", "bench.peers.plain", run.amqp_url, run.queue, str(run.count), prefetch])
    if name.startswith("workfleet-worker"):
        run.load_with_workfleet()
        prefetch = "1" if "--prefetch 1" in name else "auto"
        return run.drain([BIN / "workfleet-worker", "--amqp-url", run.amqp_url, "--queue", run.queue, "--queue-type",
                          run.queue_type, "--prefetch", prefetch, "--metrics-port", "0", "--task", "bench.peers.task:handle"])
    if name.startswith("Celery"):
        run.load_with("bench.peers.celery_app")
        multiplier = "1" if "multiplier 1" in name else "4"
        return run.drain([peers_python(), "-m", "celery", "-A", "bench.peers.celery_app", "worker", "-P", "prefork",
                          "-c", "1", "-Q", run.queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
                          "--loglevel", "WARNING"], BENCH_CELERY_MULTIPLIER=multiplier)
    if name == "Dramatiq":
        if run.queue_type != "classic":
            return None
        run.load_with("bench.peers.dramatiq_app")
        return run.drain([peers_python(), "-m", "dramatiq", "bench.peers.dramatiq_app", "--processes", "1", "--threads", "1"])
    raise ValueError(name)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trivial", type=int, default=5000, help="tasks in the no-work rows")
    parser.add_argument("--five-ms", type=int, default=1000, help="tasks in the 5 ms rows")
    parser.add_argument("--hundred-ms", type=int, default=60, help="tasks in the 100 ms rows")
    options = parser.parse_args()
    sizes = {"trivial": (options.trivial, 0.0), "5 ms": (options.five_ms, 0.005), "100 ms": (options.hundred_ms, 0.1)}
    peers_python()
    rates: dict[tuple[str, str, str], list[float]] = {}
    with RabbitNode() as node, tempfile.TemporaryDirectory(prefix="bench-peers-") as folder:
        print(f"broker: {describe(node.install)}", flush=True)
        for round_number in range(options.rounds):
            for queue_type in ("quorum", "classic"):
                for size, (count, seconds) in sizes.items():
                    for name in COMPETITORS:
                        rate = run_competitor(name, Run(node.amqp_url, queue_type, count, seconds, Path(folder)))
                        if rate is not None:
                            rates.setdefault((queue_type, size, name), []).append(rate)
                            print(f"round {round_number + 1}  {queue_type:7} {size:7} {name:34} {rate:8.1f}/s", flush=True)
    report(rates, sizes, options.rounds)
    return 0


def rate_text(rate: float) -> str:
    return f"{rate:.1f}" if rate < 100 else f"{rate:,.0f}"


def report(rates: dict, sizes: dict, rounds: int) -> None:
    median = {key: statistics.median(values) for key, values in rates.items()}
    for queue_type in ("quorum", "classic"):
        print(f"\n{queue_type} queue, msg/s, median of {rounds} (ratio to plain pika at prefetch 1)\n")
        print("| competitor | " + " | ".join(f"{size} ({count} tasks)" for size, (count, _) in sizes.items()) + " |")
        print("|---|" + "---:|" * len(sizes))
        for name in COMPETITORS:
            cells = []
            for size in sizes:
                value = median.get((queue_type, size, name))
                base = median[(queue_type, size, "plain pika, prefetch 1")]
                cells.append("n/a" if value is None else f"{rate_text(value)} ({value / base:.2f})")
            print(f"| {name} | " + " | ".join(cells) + " |")
    auto, fixed = "workfleet-worker (default: auto)", "workfleet-worker --prefetch 1"
    print("\ntargets (quorum queue unless said):")
    print(f"  trivial, auto / workfleet prefetch 1: {median[('quorum', 'trivial', auto)] / median[('quorum', 'trivial', fixed)]:.2f} (>= 2.5)")
    print(f"  trivial, auto / plain prefetch 20: {median[('quorum', 'trivial', auto)] / median[('quorum', 'trivial', 'plain pika, prefetch 20')]:.2f} (>= 0.8)")
    print(f"  100 ms, auto / workfleet prefetch 1: {median[('quorum', '100 ms', auto)] / median[('quorum', '100 ms', fixed)]:.3f} (within 5%)")
    for queue_type in ("quorum", "classic"):
        for size in sizes:
            peers = {name: median.get((queue_type, size, name)) for name in ("Celery, default multiplier 4", "Dramatiq")}
            ahead = all(value is None or median[(queue_type, size, auto)] > value for value in peers.values())
            print(f"  {queue_type} {size}: auto ahead of Celery's default and Dramatiq: {ahead}")


if __name__ == "__main__":
    raise SystemExit(main())
