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
