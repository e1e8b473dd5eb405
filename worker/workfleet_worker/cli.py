"""`workfleet-worker`: consume the work queue and run the task for each message."""

import argparse
import logging
import ssl
import sys

from prometheus_client import REGISTRY

from workfleet_common import logs
from workfleet_common.settings import USAGE_ERROR_EXIT_STATUS, add_setting_flags, settings_from
from workfleet_common.topology import Topology
from workfleet_worker import health
from workfleet_worker.consumer import TopologyMismatch
from workfleet_worker.decisions import RetryPolicy
from workfleet_worker.metrics import WorkerMetrics
from workfleet_worker.service import run_worker
from workfleet_worker.settings import WorkerSettings
from workfleet_worker.shutdown import StopSignal
from workfleet_worker.task_loading import load_task

LOGGER = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workfleet-worker",
        description="Consume a RabbitMQ work queue with fair dispatch and manual acks, "
        "retry failed tasks and dead-letter what cannot succeed.",
    )
    add_setting_flags(parser, WorkerSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    settings = settings_from(WorkerSettings, build_parser().parse_args(argv))
    logs.configure(settings.log_level)
    stop = StopSignal()
    stop.install()
    state = health.HealthState(settings.liveness_timeout)
    metrics = WorkerMetrics(settings.queue, REGISTRY)
    health.serve(settings.metrics_port, state, REGISTRY)
    LOGGER.info(
        "worker starting",
        extra={"queue": settings.queue, "task": settings.task, "queue_type": settings.queue_type,
               "concurrency": settings.concurrency},
    )
    try:
        return run_worker(
            settings.connection_parameters("worker"),
            Topology(settings.queue, settings.queue_type),
            settings.prefetch_setting(),
            RetryPolicy(settings.max_attempts, settings.retry_ladder()),
            settings.time_limits(),
            load_task(settings.task),
            metrics,
            state,
            stop,
            concurrency=settings.concurrency,
        )
    except TopologyMismatch as mismatch:
        # A configuration error, as bad settings are: said plainly, and the process exits.
        LOGGER.error("cannot consume: %s", mismatch)
        print(f"workfleet-worker: {mismatch}", file=sys.stderr)
        return USAGE_ERROR_EXIT_STATUS
    except ssl.SSLCertVerificationError as error:
        message = (f"cannot verify the broker's certificate ({error.verify_message}): give the CA that signed it "
                   "with --amqp-ca-file / WORKFLEET_AMQP_CA_FILE, and connect by a name the certificate holds")
        LOGGER.error("cannot connect: %s", message)
        print(f"workfleet-worker: {message}", file=sys.stderr)
        return USAGE_ERROR_EXIT_STATUS


if __name__ == "__main__":
    raise SystemExit(main())
