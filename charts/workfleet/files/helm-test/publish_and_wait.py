"""`helm test`: start a worker on a queue of its own, publish one task to it and wait until the
worker acks it; the production queue and its workers are never touched.

Runs in the release's worker image, which carries pika, workfleet's producer and its worker: so
the test shows that the image starts, that the worker and producer users can declare, publish,
consume and ack, and that the broker takes persistent messages with confirms. The worker runs
the built-in no-op task (the user's task may refuse a test body, and would retry it into the
dead-letter queue and its alert). Its queue is "<queue>.helm-test", declared as the work queue is
(the users' permissions cover "<queue>.*"), and is empty after each run. The ack is read from the
queue's counter in the management API, as the read-only monitoring user. Exit 0 on an ack, 1
with the reason otherwise.
"""

import base64
import json
import os
import signal
import ssl
import subprocess
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
    # With tls.enabled, https verified against the broker's CA (WORKFLEET_AMQP_CA_FILE).
    context = ssl.create_default_context(cafile=os.environ.get("WORKFLEET_AMQP_CA_FILE") or None)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.load(response)


def acks(stats: dict) -> int:
    message_stats = stats.get("message_stats")  # an empty list, not a map, before the first message
    return message_stats.get("ack", 0) if isinstance(message_stats, dict) else 0


def main() -> int:
    env = os.environ
    queue, management_url = f"{env['WORKFLEET_QUEUE']}.helm-test", env["WORKFLEET_MANAGEMENT_URL"].rstrip("/")
    monitor = (env["WORKFLEET_MONITOR_USERNAME"], env["WORKFLEET_MONITOR_PASSWORD"])
    timeout = float(env.get("WORKFLEET_TEST_TIMEOUT_SECONDS", "300"))
    deadline = time.monotonic() + timeout
    worker = start_worker(queue)
    try:
        return publish_and_wait(queue, management_url, monitor, deadline, timeout, worker)
    finally:
        worker.send_signal(signal.SIGTERM)  # it finishes what it holds, then exits
        worker.wait(timeout=60)


def start_worker(queue: str) -> subprocess.Popen:
    """The release's worker image, as the worker user, on the test queue, with a built-in task.
    Only what the worker reads is passed: the pod's other settings are the test's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("WORKFLEET_")}
    env["WORKFLEET_AMQP_URL"] = os.environ["WORKFLEET_WORKER_AMQP_URL"]
    if os.environ.get("WORKFLEET_AMQP_CA_FILE"):
        env["WORKFLEET_AMQP_CA_FILE"] = os.environ["WORKFLEET_AMQP_CA_FILE"]
    return subprocess.Popen([sys.executable, "-m", "workfleet_worker", "--queue", queue,
                             "--queue-type", os.environ.get("WORKFLEET_QUEUE_TYPE", "quorum"),
                             "--task", "workfleet_worker.tasks:noop", "--metrics-port", "0"], env=env)


def publish_and_wait(queue: str, management_url: str, monitor: tuple[str, str], deadline: float, timeout: float,
                     worker: subprocess.Popen) -> int:
    while True:  # the worker declares the queue when it starts
        if worker.poll() is not None:
            print(f"the worker exited with {worker.returncode} before declaring {queue!r}: its log is above")
            return 1
        try:
            before = acks(queue_stats(management_url, queue, *monitor))
            break
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        if time.monotonic() > deadline:
            print(f"the worker did not declare {queue!r} within {timeout:.0f} s: its log is above "
                  "(can it reach the broker, as the worker user?)")
            return 1
        print(f"queue {queue!r} is not declared yet; waiting for the worker", flush=True)
        time.sleep(2)
    parameters = connection_parameters(os.environ["WORKFLEET_AMQP_URL"], "helm-test",
                                       ca_file=os.environ.get("WORKFLEET_AMQP_CA_FILE", ""))
    publisher = ConfirmedPublisher(parameters, "", queue)
    [result] = publisher.publish([OutgoingMessage(os.environ.get("WORKFLEET_TEST_BODY", "workfleet helm test").encode())])
    if result.outcome is not Outcome.CONFIRMED:
        print(f"publish to {queue!r} not confirmed: {result.outcome.value} {result.detail}")
        return 1
    print(f"published {result.message_id} to {queue!r}; waiting up to {timeout:.0f} s for the worker to ack it", flush=True)

    stats = {}
    while time.monotonic() < deadline:
        stats = queue_stats(management_url, queue, *monitor)
        if acks(stats) > before:
            print(f"acked: the queue's ack count went from {before} to {acks(stats)}")
            return 0
        time.sleep(2)
    print(f"no ack within {timeout:.0f} s: the queue has {stats.get('consumers', 0)} consumers and "
          f"{stats.get('messages', 0)} messages. The worker's log is above.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
