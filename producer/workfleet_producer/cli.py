"""`workfleet-produce`: publish messages to the work queue and report each one's fate."""

import argparse
import collections
import json
import logging
import sys

import pika.exceptions

from workfleet_common import logs
from workfleet_common.settings import USAGE_ERROR_EXIT_STATUS, add_setting_flags, settings_from
from workfleet_common.topology import Topology
from workfleet_producer.inputs import InputError, check_sizes, read_bodies
from workfleet_producer.publisher import ConfirmedPublisher, OutgoingMessage, Outcome
from workfleet_producer.settings import ProducerSettings

LOGGER = logging.getLogger(__name__)

PROGRESS_FROM_MESSAGES = 1000
FAILURE_EXIT_STATUS = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workfleet-produce",
        description="Publish persistent messages with publisher confirms. Exits 0 only when "
        "every message was confirmed by the broker.",
    )
    parser.add_argument("messages", nargs="*", metavar="MESSAGE", help="message bodies")
    parser.add_argument("--file", help="read messages from PATH, one per line (- for stdin)")
    parser.add_argument("--count", type=int, default=1, help="publish each message N times (default 1)")
    parser.add_argument("--content-type", default="text/plain", help="content type (default text/plain)")
    parser.add_argument("--ledger", help="write one JSON line per message (id, outcome) to PATH")
    add_setting_flags(parser, ProducerSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from(ProducerSettings, args)
    logs.configure(settings.log_level)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        bodies = read_bodies(args.messages, args.file, args.count)
        check_sizes(bodies, settings.max_message_bytes)
    except InputError as error:
        print(f"workfleet-produce: {error}", file=sys.stderr)
        return USAGE_ERROR_EXIT_STATUS

    parameters = settings.connection_parameters("producer")
    topology = Topology(settings.queue, settings.queue_type)
    try:
        _declare(parameters, topology)
    except (pika.exceptions.AMQPError, OSError) as error:  # OSError: a TLS handshake that failed (ssl.SSLError)
        print(f"workfleet-produce: cannot set up queue {settings.queue!r}: {error!r}; nothing was sent", file=sys.stderr)
        return FAILURE_EXIT_STATUS

    messages = [OutgoingMessage(body, content_type=args.content_type) for body in bodies]
    publisher = ConfirmedPublisher(parameters, "", topology.queue, settings.window, settings.confirm_timeout)
    progress = _print_progress if len(messages) >= PROGRESS_FROM_MESSAGES else None
    results = publisher.publish(messages, progress)

    if args.ledger:
        with open(args.ledger, "w") as ledger:
            for result in results:
                ledger.write(json.dumps({"message_id": result.message_id, "outcome": result.outcome.value}) + "\n")
    counts = collections.Counter(result.outcome for result in results)
    summary = ", ".join(f"{counts[outcome]} {outcome.value}" for outcome in Outcome)
    print(f"published {len(results)} to {settings.queue}: {summary}")
    failures = {result.detail for result in results if result.outcome is not Outcome.CONFIRMED}
    for detail in sorted(failures):
        print(f"workfleet-produce: {detail}", file=sys.stderr)
    return 0 if counts[Outcome.CONFIRMED] == len(results) else FAILURE_EXIT_STATUS


def _declare(parameters, topology: Topology) -> None:
    connection = pika.BlockingConnection(parameters)
    try:
        topology.declare(connection.channel())
    finally:
        if connection.is_open:
            connection.close()


def _print_progress(resolved: int, total: int) -> None:
    print(f"confirmed or refused {resolved}/{total}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
