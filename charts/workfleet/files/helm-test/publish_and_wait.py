"""`helm test`: publish one task to the workers' queue and wait until a worker acks it.

Runs in the worker image, which carries pika and workfleet's producer. The ack is read from
the queue's counter in the management API, as the read-only monitoring user: with other
traffic on the queue, any ack after the publish counts, which is enough to show that the
broker takes tasks and the workers finish them. Exit 0 on an ack, 1 with the reason otherwise.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from workfleet_common.amqp import connection_parameters
from workfleet_producer import ConfirmedPublisher, OutgoingMessage, Outcome


def queue_stats(management_url: str, queue: str, user: str, password: str) -> dict:
    url = f"{management_url}/api/queues/%2F/{urllib.parse.quote(queue, safe='')}"
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def acks(stats: dict) -> int:
    message_stats = stats.get("message_stats")  # an empty list, not a map, before the first message
    return message_stats.get("ack", 0) if isinstance(message_stats, dict) else 0


def main() -> int:
    env = os.environ
    queue, management_url = env["WORKFLEET_QUEUE"], env["WORKFLEET_MANAGEMENT_URL"].rstrip("/")
    monitor = (env["WORKFLEET_MONITOR_USERNAME"], env["WORKFLEET_MONITOR_PASSWORD"])
    timeout = float(env.get("WORKFLEET_TEST_TIMEOUT_SECONDS", "300"))

    deadline = time.monotonic() + timeout
    while True:  # the workers declare the queue when they start
        try:
            before = acks(queue_stats(management_url, queue, *monitor))
            break
        except urllib.error.HTTPError as error:
            if error.code != 404 or time.monotonic() > deadline:
                raise
            print(f"queue {queue!r} is not declared yet: no worker has started; waiting", flush=True)
            time.sleep(2)
    publisher = ConfirmedPublisher(connection_parameters(env["WORKFLEET_AMQP_URL"], "helm-test"), "", queue)
    [result] = publisher.publish([OutgoingMessage(env.get("WORKFLEET_TEST_BODY", "workfleet helm test").encode())])
    if result.outcome is not Outcome.CONFIRMED:
        print(f"publish to {queue!r} not confirmed: {result.outcome.value} {result.detail}")
        return 1
    print(f"published {result.message_id} to {queue!r}; waiting up to {timeout:.0f} s for a worker to ack it", flush=True)

    stats = {}
    while time.monotonic() < deadline:
        stats = queue_stats(management_url, queue, *monitor)
        if acks(stats) > before:
            print(f"acked: the queue's ack count went from {before} to {acks(stats)}")
            return 0
        time.sleep(2)
    print(f"no ack within {timeout:.0f} s: the queue has {stats.get('consumers', 0)} consumers and "
          f"{stats.get('messages', 0)} messages. Are the worker pods running (kubectl get pods)?")
    return 1


if __name__ == "__main__":
    sys.exit(main())
