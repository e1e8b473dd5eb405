"""The `workfleet dlq` subcommands: list, show, requeue, purge."""

import argparse
import sys
from datetime import datetime
from urllib.parse import urlsplit

import pika.exceptions
from pydantic import Field

from workfleet_common.settings import AmqpSettings, QueueName, add_setting_flags, settings_from
from workfleet_operator.dlq.dead_letter_queue import DeadLetterQueue, DeadLetterQueueMissing
from workfleet_operator.dlq.entry import DeadLetter

ERROR_COLUMN_WIDTH = 60
BODY_PREVIEW_BYTES = 4096


class DlqSettings(AmqpSettings):
    queue: QueueName = Field("tasks", description="the work queue whose <queue>.dlq to use")


def add_commands(commands: argparse._SubParsersAction) -> None:
    dlq = commands.add_parser("dlq", help="inspect, requeue and purge the dead-letter queue")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = actions.add_parser("list", help="count and a table of the dead letters")
    listing.add_argument("--limit", type=int, default=1000, help="rows to show at most (default 1000)")

    show = actions.add_parser("show", help="one dead letter's properties, headers and body")
    show.add_argument("message_id", metavar="ID", help="message id (or sha256:... fingerprint)")
    show.add_argument("--full", action="store_true", help=f"the whole body, not its first {BODY_PREVIEW_BYTES} bytes")

    requeue = actions.add_parser(
        "requeue", help="move dead letters back to the work queue with their attempt count reset"
    )
    selection = requeue.add_mutually_exclusive_group(required=True)
    selection.add_argument("--all", action="store_true", help="every dead letter")
    selection.add_argument("--id", dest="ids", action="append", metavar="ID", help="this message (repeatable)")
    selection.add_argument("--reason", help="those dead-lettered for this reason (max_attempts, malformed, rejected)")

    purge = actions.add_parser("purge", help="delete every dead letter")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    for parser in (listing, show, requeue, purge):
        add_setting_flags(parser, DlqSettings)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(DlqSettings, args)
    dlq = DeadLetterQueue(settings.connection_parameters("dlq"), settings.queue)
    command = {"list": _list, "show": _show, "requeue": _requeue, "purge": _purge}[args.dlq_command]
    try:
        return command(dlq, args)
    except DeadLetterQueueMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except pika.exceptions.AMQPConnectionError as error:
        where = urlsplit(settings.amqp_url)
        print(f"error: cannot reach the broker at {where.hostname}:{where.port or 5672}: {error!r}", file=sys.stderr)
        return 1


def _list(dlq: DeadLetterQueue, args) -> int:
    total, entries = dlq.peek(args.limit)
    print(f"{total} message(s) in {dlq.name}" + (f", first {len(entries)} shown" if len(entries) < total else ""))
    if entries:
        print(format_table(entries))
    return 0


def format_table(entries: list[DeadLetter]) -> str:
    rows = [("ID", "REASON", "ATTEMPTS", "FIRST FAILED", "LAST FAILED", "ERROR")]
    for entry in entries:
        rows.append((
            entry.message_id,
            entry.reason,
            "-" if entry.attempts is None else str(entry.attempts),
            _when(entry.first_failed_at),
            _when(entry.last_failed_at),
            _one_line(entry.error, ERROR_COLUMN_WIDTH),
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows
    )


def _show(dlq: DeadLetterQueue, args) -> int:
    held = dlq.find(args.message_id)
    if held is None:
        print(f"error: no message {args.message_id!r} in {dlq.name}", file=sys.stderr)
        return 1
    properties = held.properties
    for name in ("message_id", "content_type", "content_encoding", "type", "correlation_id", "app_id", "timestamp"):
        value = getattr(properties, name)
        if value is not None:
            print(f"{name}: {value}")
    print("headers:")
    for name, value in sorted((properties.headers or {}).items()):
        print(f"  {name}: {value}")
    body = held.body if args.full else held.body[:BODY_PREVIEW_BYTES]
    cut = "" if len(body) == len(held.body) else f" (first {len(body)} of {len(held.body)} bytes; --full for all)"
    print(f"body{cut}:")
    try:
        print(body.decode("utf-8"))
    except UnicodeDecodeError:
        print(repr(body))
    return 0


def _requeue(dlq: DeadLetterQueue, args) -> int:
    ids = set(args.ids) if args.ids else None
    try:
        requeued, seen = dlq.requeue(ids, args.reason)
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
        print(
            f"error: the broker refused a copy for {dlq.topology.queue!r} (does the work queue exist?); "
            "that message is still in the dead-letter queue",
            file=sys.stderr,
        )
        return 1
    print(f"requeued {requeued} of {seen} message(s) from {dlq.name} to {dlq.topology.queue}")
    if ids is not None and requeued < len(ids):
        print(f"error: {len(ids) - requeued} of the given ids were not in {dlq.name}", file=sys.stderr)
        return 1
    return 0


def _purge(dlq: DeadLetterQueue, args) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: purge deletes messages for good; pass --yes to confirm without a terminal", file=sys.stderr)
            return 1
        answer = input(f"delete all {dlq.count()} message(s) in {dlq.name}? type 'yes': ")
        if answer.strip() != "yes":
            print("nothing purged")
            return 1
    print(f"purged {dlq.purge()} message(s) from {dlq.name}")
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _one_line(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
