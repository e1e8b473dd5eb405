"""`workfleet`: the fleet's command line: `workfleet up`, `workfleet demo`, `workfleet dlq ...`."""

import argparse

from workfleet_operator.dlq import cli as dlq_cli
from workfleet_operator.local import up
from workfleet_operator.local.demo import run_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workfleet", description="Work-queue fleet on RabbitMQ.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run a private broker, workers and a burst of tutorial tasks on this machine"
    )
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    demo.add_argument("--tasks", type=int, default=12, help="tasks in the burst (default 12)")
    demo.add_argument("--dot-seconds", type=float, default=0.25, help="seconds of work per '.' (default 0.25)")
    dlq_cli.add_commands(commands)
    up.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "dlq":
        return dlq_cli.run(args)
    if args.command == "up":
        up.check(args, parser)
        return up.run(args)
    if args.workers < 1 or args.tasks < 1 or args.dot_seconds < 0:
        build_parser().error("--workers and --tasks must be at least 1, --dot-seconds not negative")
    return run_demo(args.workers, args.tasks, args.dot_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
