"""Turn command-line input into message bodies, refusing oversized ones up front."""

import sys
from pathlib import Path


class InputError(ValueError):
    pass


def read_bodies(arguments: list[str], file: str | None, count: int) -> list[bytes]:
    """Bodies from MESSAGE arguments and from --file (one message per line; `-` is stdin).

    Blank lines in a file are skipped. Each body is repeated `count` times.
    """
    bodies = [argument.encode("utf-8") for argument in arguments]
    if file is not None:
        bodies.extend(_read_lines(file))
    if not bodies:
        raise InputError("nothing to publish: give MESSAGE arguments or --file")
    return [body for body in bodies for _ in range(count)]


def _read_lines(file: str) -> list[bytes]:
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from None
    return [line for line in data.splitlines() if line.strip()]


def check_sizes(bodies: list[bytes], limit: int) -> None:
    too_large = [index for index, body in enumerate(bodies) if len(body) > limit]
    if too_large:
        shown = ", ".join(f"#{index + 1} ({len(bodies[index])} bytes)" for index in too_large[:5])
        more = f" and {len(too_large) - 5} more" if len(too_large) > 5 else ""
        raise InputError(
            f"{len(too_large)} message(s) over the {limit}-byte limit, nothing was sent: {shown}{more}"
        )
