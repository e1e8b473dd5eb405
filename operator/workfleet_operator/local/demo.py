"""`workfleet demo`: the tutorial's Work Queues on this machine, in about a minute.

Starts a private RabbitMQ node, two worker processes and a burst of dotted
tasks, shows the backlog draining and who did what, then stops everything.
Workers and the producer run as separate processes, exactly as in production.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika

from workfleet_common.logs import read_delivery_outcomes
from workfleet_operator.local.rabbitmq import RabbitNode, free_port
from workfleet_operator.local.rabbitmq_install import describe

QUEUE = "tasks"
POLL_S = 0.5


def tutorial_burst(count: int) -> list[str]:
    """Alternating heavy and light tasks, as in the tutorial: '.' is one unit of work."""
    return [f"task {index + 1}" + "." * (4 if index % 2 == 0 else 1) for index in range(count)]


def run_demo(workers: int = 2, tasks: int = 12, dot_seconds: float = 0.25, out=sys.stdout) -> int:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    bodies = tutorial_burst(tasks)
    work_units = sum(body.count(".") for body in bodies)
    with tempfile.TemporaryDirectory(prefix="workfleet-demo-") as scratch, RabbitNode() as broker:
        say(f"broker   private node of {describe(broker.install)} on {broker.amqp_url} (management {broker.management_url})")
        env = dict(os.environ, WORKFLEET_AMQP_URL=broker.amqp_url, WORKFLEET_DOT_SECONDS=str(dot_seconds))
        logs = [Path(scratch) / f"worker-{number}.log" for number in range(1, workers + 1)]
        fleet = [
            subprocess.Popen(
                [sys.executable, "-m", "workfleet_worker", "--metrics-port", str(free_port())],
                env=env,
                stderr=open(log, "wb"),
            )
            for log in logs
        ]
        try:
            _wait_for_consumers(broker.amqp_url, workers)
            say(f"workers  {workers} workfleet-worker processes, prefetch 1, task workfleet_worker.tasks:dots")
            started = time.monotonic()
            ledger = Path(scratch) / "published.jsonl"
            produced = subprocess.run(
                [sys.executable, "-m", "workfleet_producer", "--ledger", str(ledger), *bodies],
                env=env,
                capture_output=True,
                text=True,
            )
            say(f"producer {produced.stdout.strip()}")
            if produced.returncode != 0:
                say(produced.stderr.strip())
                return 1
            done = _show_progress(broker.amqp_url, logs, tasks, say)
            elapsed = time.monotonic() - started
            # The producer's ledger lists ids in publish order, the order of `bodies`.
            ids = [json.loads(line)["message_id"] for line in ledger.read_text().splitlines()]
            units_of = {message_id: body.count(".") for message_id, body in zip(ids, bodies)}
        finally:
            for worker in fleet:
                worker.terminate()
            exit_codes = [worker.wait(60) for worker in fleet]

        say("")
        say("summary")
        for number, log in enumerate(logs, 1):
            outcomes = _outcomes(log)
            units = sum(units_of.get(line["message_id"], 0) for line in outcomes)
            say(f"  worker-{number}: {len(outcomes)} tasks acked, {units} units of work, exit {exit_codes[number - 1]}")
        serial = work_units * dot_seconds
        say(
            f"  {done}/{tasks} tasks done in {elapsed:.1f}s; one worker alone needs {serial:.1f}s of work, "
            f"{workers} workers ideally {serial / workers:.1f}s"
        )
        return 0 if done == tasks and not any(exit_codes) else 1


def _wait_for_consumers(amqp_url: str, expected: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _queue_state(amqp_url)[1] >= expected:
                return
        except pika.exceptions.AMQPError:
            pass
        time.sleep(POLL_S)
    raise RuntimeError("the workers did not start consuming; see their logs")


def _queue_state(amqp_url: str) -> tuple[int, int]:
    """(ready, consumers) from a passive declare: exact, unlike the management API."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        method = connection.channel().queue_declare(QUEUE, passive=True).method
        return method.message_count, method.consumer_count


def _outcomes(log: Path) -> list[dict]:
    """The worker's acked deliveries (the demo's tasks never fail)."""
    return [line for line in read_delivery_outcomes(log) if line["outcome"] == "acked"]


def _show_progress(amqp_url: str, logs: list[Path], total: int, say, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        per_worker = [len(_outcomes(log)) for log in logs]
        done = sum(per_worker)
        ready = _queue_state(amqp_url)[0]
        line = f"progress {done}/{total} done, {ready} waiting, " + ", ".join(
            f"worker-{number}: {count}" for number, count in enumerate(per_worker, 1)
        )
        if line != last:
            say(line)
            last = line
        if done >= total:
            return done
        time.sleep(POLL_S)
    return sum(len(_outcomes(log)) for log in logs)
