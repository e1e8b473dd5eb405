"""Fixtures: a private RabbitMQ node per session (and per test for fault tests).

`--rabbitmq` chooses the broker every node of the run is: 4 (the default, what the chart
deploys) or host (this machine's package, 3.10 on Debian 12, run for compatibility)."""

import itertools
import os
import uuid

import pytest

from tests.support.processes import WorkerProcess
from workfleet_operator.local.rabbitmq import RabbitNode
from workfleet_operator.local.rabbitmq_install import CHOICES, DEFAULT_CHOICE, describe, rabbitmq_install


def pytest_addoption(parser):
    parser.addoption("--rabbitmq", choices=CHOICES, default=os.environ.get("WORKFLEET_RABBITMQ") or DEFAULT_CHOICE,
                     help="the RabbitMQ the private nodes run: 4 (Debian 13's, from make setup) or host")


def pytest_configure(config):
    # Through the environment, so that RabbitNode and every process the tests start agree.
    os.environ["WORKFLEET_RABBITMQ"] = config.getoption("--rabbitmq")


def pytest_report_header(config):
    return f"rabbitmq: {describe(rabbitmq_install())}"


@pytest.fixture(scope="session")
def broker():
    """One private node shared by the tests that do not disturb it."""
    with RabbitNode() as node:
        yield node


@pytest.fixture
def own_broker():
    """A node of the test's own, for tests that stop, kill or restart it."""
    with RabbitNode() as node:
        yield node


@pytest.fixture
def queue_name():
    return f"q-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def workers(tmp_path):
    """Start workers with `workers(amqp_url, *args)`; all are killed at the end of the test."""
    started: list[WorkerProcess] = []
    numbers = itertools.count(1)

    def start(amqp_url: str, *args: str, **options) -> WorkerProcess:
        worker = WorkerProcess(amqp_url, tmp_path / f"worker-{next(numbers)}.log", *args, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()
