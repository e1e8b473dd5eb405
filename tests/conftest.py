"""Fixtures: a private RabbitMQ node per session (and per test for fault tests)."""

import itertools
import uuid

import pytest

from tests.support.processes import WorkerProcess
from workfleet_operator.local.rabbitmq import RabbitNode


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
