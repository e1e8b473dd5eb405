"""`workfleet`: the fleet's command line: `workfleet up`, `workfleet dlq ...`."""

import argparse

from workfleet_operator.dlq import cli as dlq_cli
from workfleet_operator.local import up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workfleet", description="Work-queue fleet on RabbitMQ.")
    commands = parser.add_subparsers(dest="command", required=True)
    dlq_cli.add_commands(commands)
    up.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "dlq":
        return dlq_cli.run(args)
    up.check(args, parser)
    return up.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
