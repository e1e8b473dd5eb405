"""JSON log lines, one object per line. Only entry points call `configure`."""

import functools
import json
import logging
import sys
import time
from pathlib import Path

# Attributes every LogRecord has; anything else passed with `extra=` is a field.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Made once: json.dumps with options builds an encoder per call, and a worker of short tasks writes
# thousands of lines a second.
_encode = json.JSONEncoder(default=str).encode


@functools.lru_cache(maxsize=2)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": f"{_utc_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs every connection hiccup at WARNING and ERROR with tracebacks; the
    # reconnect loop already reports those once, in its own words.
    logging.getLogger("pika").setLevel(logging.CRITICAL)


# The worker writes one line per delivery outcome with this event name; the local
# fleet and the tests read them back (a ledger of what happened to each message).
DELIVERY_EVENT = "delivery"


def read_delivery_outcomes(log_path: Path) -> list[dict]:
    """The delivery-outcome lines of a worker's JSON log, in order; other lines are skipped."""
    outcomes = []
    for raw in Path(log_path).read_text().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and line.get("event") == DELIVERY_EVENT:
            outcomes.append(line)
    return outcomes
