"""The broker users and topology the chart defines, on a real node loaded with the chart's own
definitions: the topology is workfleet_common.topology's exactly; the producer, started before
any worker, declares (checks) it and publishes; the worker consumes and acks; the operator's
monitoring user reads queue stats; the producer cannot consume and the operator cannot publish."""

import base64
import json
import subprocess
import sys
import urllib.request

import pika
import pytest

from tests.chart.test_render import render
from tests.support.broker import queue_depth, wait_until
from workfleet_common.topology import Topology

PASSWORDS = {"ADMIN": "admin-secret", "WORKER": "worker-secret", "PRODUCER": "producer-secret", "OPERATOR": "operator-secret"}


def chart_definitions(queue: str, *args: str) -> str:
    """The chart's definitions, with the passwords filled in as its setup container does."""
    docs = render("helm", "--set", "worker.task=a.b:c", "--set", f"worker.queue={queue}", *args)
    [configmap] = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "wf-workfleet-rabbitmq"]
    text = configmap["data"]["definitions.template.json"]
    for user, password in PASSWORDS.items():
        text = text.replace(f"@{user}_PASSWORD@", password)
    return text


def amqp_url(broker, user: str, password: str) -> str:
    return f"amqp://{user}:{password}@127.0.0.1:{broker.amqp_port}/%2F"


def management(broker, path: str, user: str, password: str, body: bytes | None = None) -> dict:
    request = urllib.request.Request(f"{broker.management_url}{path}", data=body,
                                     headers={"Content-Type": "application/json"})
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else {}


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_chart_topology_is_the_one_every_component_declares(queue_type):
    definitions = json.loads(chart_definitions("jobs", "--set", f"worker.queueType={queue_type}"))
    topology = Topology("jobs", queue_type)
    queues = {queue["name"]: queue["arguments"] for queue in definitions["queues"]}
    assert queues == {topology.queue: topology.work_queue_arguments(),
                      topology.dead_letter_queue: topology.dead_letter_queue_arguments()}
    [binding] = definitions["bindings"]
    assert (binding["source"], binding["destination"], binding["routing_key"]) == (
        topology.dead_letter_exchange, topology.dead_letter_queue, topology.dead_letter_routing_key)


def test_chart_gives_the_work_queue_its_policy():
    """The policy is Topology.work_queue_policy's, from rabbitmq.longestTaskSeconds and
    rabbitmq.deliveryLimit, with the queue name escaped the same way in Go and Python."""
    definitions = json.loads(chart_definitions("jobs.v2", "--set", "rabbitmq.longestTaskSeconds=600",
                                               "--set", "rabbitmq.deliveryLimit=7"))
    assert definitions["policies"] == [{"vhost": "/", **Topology("jobs.v2").work_queue_policy(600, delivery_limit=7)}]
    assert definitions["policies"][0]["definition"] == {
        "consumer-timeout": 660_000, "delivery-limit": 7, "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}
    classic = json.loads(chart_definitions("jobs", "--set", "worker.queueType=classic"))
    assert classic["policies"] == [{"vhost": "/", **Topology("jobs", "classic").work_queue_policy(1800)}]


def test_each_user_can_do_its_job_and_no_more(own_broker, queue_name, workers):
    # Loaded as the broker loads them at boot (load_definitions), here through the management API.
    management(own_broker, "/api/definitions", "guest", "guest", chart_definitions(queue_name).encode())

    producer = amqp_url(own_broker, "workfleet-producer", PASSWORDS["PRODUCER"])
    # The producer CLI declares the queue and its dead-letter exchange and queue, then publishes.
    produced = subprocess.run([sys.executable, "-m", "workfleet_producer", "--amqp-url", producer, "--queue", queue_name,
                               ".", ".", "."], capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    assert "3 confirmed" in produced.stdout

    worker = workers(amqp_url(own_broker, "workfleet-worker", PASSWORDS["WORKER"]), "--queue", queue_name)
    worker.wait_for_metric("workfleet_worker_messages_acked_total", lambda value: value == 3)

    wait_until(lambda: management(own_broker, f"/api/queues/%2F/{queue_name}", "workfleet-operator",
                                  PASSWORDS["OPERATOR"]).get("consumers") == 1,
               message="the monitoring user reads the queue's stats")

    with pika.BlockingConnection(pika.URLParameters(producer)) as connection:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
            connection.channel().basic_get(queue_name)
    with pika.BlockingConnection(pika.URLParameters(amqp_url(own_broker, "workfleet-operator", PASSWORDS["OPERATOR"]))) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
            channel.basic_publish("", queue_name, b".")
    assert queue_depth(own_broker.amqp_url, queue_name)[0] == 0
    # The broker accepted the policy and applies it to the work queue only.
    queues = {queue["name"]: queue for queue in management(own_broker, "/api/queues/%2F", "guest", "guest")}
    assert queues[queue_name]["effective_policy_definition"] == {
        "consumer-timeout": 1_860_000, "delivery-limit": 20, "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish"}
    assert not queues[f"{queue_name}.dlq"].get("effective_policy_definition")
    # The workers declared their retry queues, which the policy leaves alone.
    assert queues[f"{queue_name}.retry.100ms"]["arguments"]["x-dead-letter-strategy"] == "at-least-once"
    assert not queues[f"{queue_name}.retry.100ms"].get("effective_policy_definition")
