import json
import logging

from workfleet_common import logs


def test_outcome_lines_round_trip_through_the_json_formatter(tmp_path):
    path = tmp_path / "worker.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("consuming", extra={"queue": "q"})
        logger.info("delivery acked", extra={"event": logs.DELIVERY_EVENT, "message_id": "m1", "outcome": "acked"})
    finally:
        logger.removeHandler(handler)
        handler.close()
    with open(path, "a") as log:
        log.write("not json\n" + json.dumps([1, 2]) + "\n")

    outcomes = logs.read_delivery_outcomes(path)
    assert [(line["message_id"], line["outcome"], line["msg"]) for line in outcomes] == [("m1", "acked", "delivery acked")]


def test_timestamps_are_utc_with_milliseconds_across_second_boundaries():
    formatter = logs.JsonFormatter()
    stamps = []
    for created in (1764621599.75, 1764621600.0, 1764621600.5, 1764621599.25):
        record = logging.LogRecord("x", logging.INFO, "f", 1, "m", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        stamps.append(json.loads(formatter.format(record))["ts"])
    assert stamps == ["2025-12-01T20:39:59.750Z", "2025-12-01T20:40:00.000Z",
                      "2025-12-01T20:40:00.500Z", "2025-12-01T20:39:59.250Z"]
