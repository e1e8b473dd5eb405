"""`workfleet up`: the autoscaled fleet on one machine.

A broker (the one at --amqp-url, or a private RabbitMQ node started here and stopped on exit),
worker processes, and the operator's scaling loop acting on them (autoscaler.py), shown live on a
terminal or as one line per scaling decision elsewhere (fleet_view.py), with the operator's metrics
served and the workers' listed for Prometheus (fleet_metrics.py); `--prometheus` also runs one with
the chart's alert rules (prometheus.py). `--demo` also publishes a burst of tutorial tasks, lets the
fleet scale up, drain and scale back down, prints a summary and exits 0 only if nothing was lost.
Ctrl-C, SIGTERM or a closed terminal (SIGHUP) stops everything: the workers finish their tasks
first (stop_signals.py).
"""

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pika

from workfleet_common.amqp import connection_parameters
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology
from workfleet_operator.local.autoscaler import Broker, LocalAutoscaler, Step
from workfleet_operator.local.broker_policy import PolicyRefused, apply_work_queue_policy
from workfleet_operator.local.fleet_metrics import FleetMetrics
from workfleet_operator.local.fleet_view import FleetRecord, PlainView, choose_view
from workfleet_operator.local.prometheus import LocalPrometheus, PrometheusUnavailable, prometheus_binary
from workfleet_operator.local.rabbitmq import RabbitNode
from workfleet_operator.local.rabbitmq_install import describe
from workfleet_operator.local.stop_signals import StopSignals
from workfleet_operator.local.worker_processes import WorkerProcesses
from workfleet_operator.scaling.policy import Mode, Policy
from workfleet_operator.stats.management import Credentials

SETTLED = ("acked", "dead_lettered")
CHAOS_EVERY_S = 5.0


def tutorial_burst(count: int) -> list[str]:
    """Alternating heavy and light tasks, as in the tutorial: '.' is one unit of work."""
    return [f"task {index + 1}" + "." * (4 if index % 2 == 0 else 1) for index in range(count)]


def add_command(commands) -> None:
    up = commands.add_parser("up", help="run an autoscaled fleet of workers on this machine",
                             description="Run workers that scale with the queue's backlog, as the operator "
                                         "scales a WorkerPool. Worker options go after `--`.")
    up.add_argument("--amqp-url", help="broker to use (default: start a private RabbitMQ node, stopped on exit)")
    up.add_argument("--management-url", help="its management API (default: port 15672 of the --amqp-url host)")
    up.add_argument("--queue", default="tasks", help="work queue (default tasks)")
    up.add_argument("--task", help="the workers' --task")
    # What a WorkerPool spec says, with the same defaults, except the poll: one machine can afford 1 s.
    up.add_argument("--min", type=int, help="fewest workers (default 1, or 0 with --demo; 0 scales to zero)")
    up.add_argument("--max", type=int, default=4, help="most workers (default 4)")
    up.add_argument("--mode", choices=[mode.value for mode in Mode], default=Mode.BACKLOG.value,
                    help="backlog (--messages-per-replica) or drainTime (--target-drain-seconds)")
    up.add_argument("--messages-per-replica", type=int, default=10, help="backlog one worker is there for (default 10)")
    up.add_argument("--target-drain-seconds", type=float, default=60, help="drainTime's target (default 60)")
    up.add_argument("--activation-backlog", type=int, default=0, help="with --min 0, start a worker only above this")
    up.add_argument("--poll-seconds", type=float, default=1, help="seconds between decisions (default 1)")
    up.add_argument("--stabilization-seconds", type=float,
                    help="scale down only to the highest recommendation of this window (default 60, or 10 with --demo)")
    up.add_argument("--logs", type=Path, help="keep the workers' logs in this folder (default: a temporary one)")
    up.add_argument("--grace-seconds", type=float, default=30, help="how long stopping workers may finish (default 30)")
    up.add_argument("--prometheus", action="store_true",
                    help="also run a Prometheus scraping the fleet, with the chart's alert rules")
    up.add_argument("--demo", action="store_true", help="publish a burst of tutorial tasks, drain it, summarize, exit")
    up.add_argument("--chaos", action="store_true",
                    help=f"SIGKILL a busy worker every {CHAOS_EVERY_S:g}s, to see what it costs (nothing lost)")
    up.add_argument("--tasks", type=int, default=60, help="tasks in the demo's burst (default 60)")
    up.add_argument("--dot-seconds", type=float, default=0.25, help="the demo's seconds of work per '.' (default 0.25)")
    up.add_argument("worker_args", nargs=argparse.REMAINDER, help="after --: options for every workfleet-worker")


def check(args, parser) -> None:
    """Fills in the defaults that depend on --demo, and refuses bad values, naming every one."""
    if args.min is None:
        args.min = 0 if args.demo else 1
    if args.stabilization_seconds is None:
        args.stabilization_seconds = 10 if args.demo else 60
    problems = []
    if args.min < 0 or args.max < 1 or args.min > args.max:
        problems.append("--min must be 0 or more, --max 1 or more, and --min at most --max")
    if args.poll_seconds <= 0 or args.stabilization_seconds < 0 or args.grace_seconds < 0:
        problems.append("--poll-seconds must be above 0, --stabilization-seconds and --grace-seconds not negative")
    if args.messages_per_replica < 1 or args.target_drain_seconds <= 0 or args.activation_backlog < 0:
        problems.append("--messages-per-replica must be at least 1, --target-drain-seconds above 0, "
                        "--activation-backlog not negative")
    if args.tasks < 1 or args.dot_seconds < 0:
        problems.append("--tasks must be at least 1 and --dot-seconds not negative")
    if args.prometheus:
        try:
            prometheus_binary()
        except PrometheusUnavailable as error:
            problems.append(str(error))
    if problems:
        parser.error("; ".join(problems))


def policy_of(args) -> Policy:
    return Policy(min_replicas=args.min, max_replicas=args.max, mode=Mode(args.mode),
                  messages_per_replica=args.messages_per_replica, target_drain_seconds=args.target_drain_seconds,
                  activation_backlog=args.activation_backlog, stabilization_seconds=args.stabilization_seconds)


def broker_of(amqp_url: str, management_url: str | None) -> Broker:
    parts = urllib.parse.urlsplit(amqp_url)
    vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    management = management_url or f"http://{parts.hostname or 'localhost'}:15672"
    credentials = Credentials(urllib.parse.unquote(parts.username or "guest"), urllib.parse.unquote(parts.password or "guest"))
    return Broker(management, amqp_url, credentials, vhost)


def say(text: str) -> None:
    print(text, flush=True)


def run(args) -> int:
    stop_signals = StopSignals()
    stop_signals.interrupt()
    try:
        return _run(args, stop_signals)
    except PrometheusUnavailable as error:
        print(f"workfleet up: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # stopped before the fleet ran, or a second Ctrl-C while stopping
        print("workfleet up: interrupted", file=sys.stderr)
        return 130


def _run(args, stop_signals: StopSignals) -> int:
    with contextlib.ExitStack() as stack:
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
        folder = args.logs or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workfleet-up-")))
        node = None
        if args.amqp_url:
            broker = broker_of(args.amqp_url, args.management_url)
        else:
            node = stack.enter_context(RabbitNode())
            say(f"broker   private node of {describe(node.install)} on {node.amqp_url}")
            broker = broker_of(node.amqp_url, node.management_url)
        topology = Topology(args.queue)
        with pika.BlockingConnection(connection_parameters(broker.amqp_url, "workfleet-up")) as connection:
            topology.declare(connection.channel())
        try:
            policy_line = (f"policy   {apply_work_queue_policy(broker, topology)['name']} on queue {args.queue!r}: "
                           f"the broker's own dead-lettering is at least once")
        except PolicyRefused as error:
            policy_line = f"policy   not applied: {error}; the delivery limit's dead-lettering stays at most once"

        worker_args = [*(["--task", args.task] if args.task else []), "--queue", args.queue,
                       *[arg for arg in args.worker_args if arg != "--"]]
        workers = WorkerProcesses(broker.amqp_url, worker_args, folder,
                                  env={"WORKFLEET_DOT_SECONDS": str(args.dot_seconds)} if args.demo else None)
        policy = policy_of(args)
        say(f"fleet    {policy.min_replicas}..{policy.max_replicas} workers on queue {args.queue!r}, "
            f"{policy.mode.value} mode, a decision every {args.poll_seconds:g}s; Ctrl-C stops")
        metrics = FleetMetrics(args.queue, policy, folder)
        say(f"metrics  operator {metrics.serve()}; the workers' for Prometheus (file_sd) in {metrics.targets_file}")
        if args.prometheus:
            # The broker's own metrics only when it is ours: an --amqp-url broker's may be anywhere, or off.
            prometheus = stack.enter_context(LocalPrometheus(folder / "prometheus", args.queue, metrics.port,
                                                             metrics.targets_file, node.prometheus_port if node else None))
            say(f"prometheus {prometheus.url}, scraping the fleet, with the chart's {prometheus.rule_count} alert rules")
        say(policy_line)
        record = FleetRecord()
        autoscaler = LocalAutoscaler(broker, args.queue, policy, workers, args.poll_seconds)
        demo = DemoRun(args, broker.amqp_url, workers, record) if args.demo else None
        try:
            with choose_view(record, f"workfleet up: queue {args.queue!r}, {policy.min_replicas}..{policy.max_replicas} workers") as view:
                def on_step(step: Step) -> None:
                    metrics.record(step, workers)
                    view.step(step)

                outcome = asyncio.run(_run_fleet(args, autoscaler, workers, view, on_step, demo, stop_signals))
        finally:
            stop_signals.interrupt(stopping=True)
            workers.stop_all(args.grace_seconds)
        for line in demo.summary if demo else ():
            say(line)
        return outcome


async def _run_fleet(args, autoscaler: LocalAutoscaler, workers: WorkerProcesses, view: PlainView,
                     on_step, demo: "DemoRun | None", stop_signals: StopSignals) -> int:
    stop = asyncio.Event()
    stop_signals.stop_loop(asyncio.get_running_loop(), stop.set)
    scaling = asyncio.ensure_future(autoscaler.run(stop, on_step))
    chaos = asyncio.ensure_future(_chaos(stop, workers, view)) if args.chaos else None
    status = 0
    if demo:
        status = await asyncio.to_thread(demo.run, stop, view.say)
        stop.set()
    await scaling
    if chaos:
        await chaos
    return status


async def _chaos(stop: asyncio.Event, workers: WorkerProcesses, view: PlainView) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=CHAOS_EVERY_S)
            return
        except asyncio.TimeoutError:
            pass
        victim = await asyncio.to_thread(workers.kill_a_busy_one)
        if victim:
            view.record.killed += 1
            view.say(f"{view.record.elapsed()}  chaos: SIGKILL {victim}, which held a task")


class DemoRun:
    """Publish a burst, wait until it is settled and the fleet is back at its minimum, summarize."""

    def __init__(self, args, amqp_url: str, workers: WorkerProcesses, record: FleetRecord):
        self.args = args
        self.amqp_url = amqp_url
        self.workers = workers
        self.record = record
        self.summary: list[str] = []

    def run(self, stop: asyncio.Event, say, timeout: float = 600) -> int:
        bodies = tutorial_burst(self.args.tasks)
        confirmed = self.publish(bodies)
        burst_at = time.monotonic()
        say(f"demo     {len(confirmed)}/{len(bodies)} tutorial tasks confirmed")
        deadline = burst_at + timeout
        drained_at = None
        while time.monotonic() < deadline and not stop.is_set():
            settled = self.settled_ids()
            if drained_at is None and confirmed <= settled:
                drained_at = time.monotonic()
                say(f"demo     all {len(confirmed)} tasks settled after {drained_at - burst_at:.1f}s; waiting for the scale-down")
            if drained_at is not None and len(self.workers.running) <= self.args.min:
                break
            time.sleep(0.5)
        return self.summarize(bodies, confirmed, burst_at, drained_at)

    def publish(self, bodies: list[str]) -> set[str]:
        """The burst, published by workfleet-produce as a user would; the confirmed ids from its ledger."""
        ledger = self.workers.folder / "published.jsonl"
        subprocess.run([sys.executable, "-m", "workfleet_producer", "--amqp-url", self.amqp_url, "--queue",
                        self.args.queue, "--ledger", str(ledger), *bodies],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        lines = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
        return {line["message_id"] for line in lines if line["outcome"] == "confirmed"}

    def outcomes(self) -> list[dict]:
        return [line for worker in self.workers.history for line in read_delivery_outcomes(worker.log)]

    def settled_ids(self) -> set[str]:
        return {line["message_id"] for line in self.outcomes() if line["outcome"] in SETTLED}

    def summarize(self, bodies: list[str], confirmed: set[str], burst_at: float, drained_at: float | None) -> int:
        """Writes the summary (printed once the view is gone); 0 when every confirmed task settled."""
        say = self.summary.append
        lines = self.outcomes()
        settled = {line["message_id"] for line in lines if line["outcome"] in SETTLED}
        lost = confirmed - settled
        redeliveries = sum(1 for line in lines if line.get("redelivered"))
        work = sum(body.count(".") for body in bodies) * self.args.dot_seconds
        ideal = work / self.args.max
        say("")
        say("summary")
        say(f"  tasks {len(bodies)}, confirmed {len(confirmed)}, settled {len(settled & confirmed)}, lost {len(lost)}")
        say(f"  redeliveries {redeliveries}, workers killed by --chaos {self.record.killed}, "
            f"workers replaced after exiting unasked {self.workers.replaced}")
        say(f"  peak workers {self.record.peak_workers} (max {self.args.max}), now {len(self.workers.running)}")
        if drained_at is not None:
            say(f"  drained in {drained_at - burst_at:.1f}s; {work:.1f}s of work on {self.args.max} workers is "
                f"ideally {ideal:.1f}s plus their start-up")
        else:
            say("  not drained in time")
        return 0 if not lost and drained_at is not None else 1

