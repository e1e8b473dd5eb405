"""The worker process: sessions one after another, reconnecting with backoff.

The reconnect policy lives here, outside the consumer, and names the errors it
retries: pika's connection errors, its channel errors, and the connector errors
that BlockingConnection raises as they are (a handshake that times out, as when
the network drops packets, is one). Anything else is a bug and ends the process.
"""

import logging
import ssl
import time

import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from workfleet_common.topology import Topology
from workfleet_worker.backoff import Backoff
from workfleet_worker.consumer import ConsumerSession
from workfleet_worker.pool_session import PoolSession
from workfleet_worker.decisions import RetryPolicy
from workfleet_worker.health import HealthState
from workfleet_worker.inflight import InFlight
from workfleet_worker.metrics import WorkerMetrics
from workfleet_worker.prefetch import PrefetchSetting
from workfleet_worker.settling import drop_late
from workfleet_worker.shutdown import StopSignal
from workfleet_worker.task_loading import Task, is_async
from workfleet_worker.task_pool import TaskPool
from workfleet_worker.time_limits import TimeLimits

LOGGER = logging.getLogger(__name__)

WAIT_STEP_S = 0.2

RETRIED_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    AMQPConnectorException,
    ssl.SSLError,  # a TLS handshake cut short (pika raises those as they are): a broker restarting
)


def run_worker(
    parameters,
    topology: Topology,
    prefetch: PrefetchSetting,
    retries: RetryPolicy,
    time_limits: TimeLimits,
    task: Task,
    metrics: WorkerMetrics,
    health: HealthState,
    stop: StopSignal,
    backoff: Backoff | None = None,
    concurrency: int = 1,
) -> int:
    """Consume until stopped; returns the exit status (0 after a clean drain).

    Raises TopologyMismatch when the queue exists with other arguments, and SSLCertVerificationError
    when the broker's certificate does not verify (no reconnect fixes either).
    A plain function at concurrency 1 runs on the main thread (ConsumerSession: the fastest way for
    short tasks); anything else on a TaskPool that outlives each connection (PoolSession).
    """
    backoff = backoff or Backoff()
    inflight = InFlight()
    pool = TaskPool(task, concurrency) if concurrency > 1 or is_async(task) else None
    # Gauges read at scrape time from the state itself, so they cannot drift from it.
    metrics.in_flight.set_function(inflight.count)
    metrics.oldest_in_flight_age.set_function(inflight.oldest_age)
    metrics.tasks_running.set_function(inflight.running)
    metrics.connected.set_function(lambda: 1 if health.ready else 0)
    metrics.concurrency.set(concurrency)
    try:
        while not stop.requested:
            arguments = (parameters, topology, prefetch, retries, time_limits, task, inflight, metrics, health, stop)
            if pool is None:
                session = ConsumerSession(*arguments, on_connected=backoff.reset)
            else:
                session = PoolSession(*arguments, on_connected=backoff.reset, pool=pool)
            try:
                session.run()
            except ssl.SSLCertVerificationError:
                raise  # no reconnect makes the broker's certificate verify: a configuration error (cli.py)
            except RETRIED_ERRORS as error:
                delay = backoff.next_delay()
                metrics.reconnects.inc()
                LOGGER.warning(
                    "broker connection lost; reconnecting",
                    extra={"error": f"{type(error).__name__}: {error}", "retry_in_s": round(delay, 2)},
                )
                _wait_beating(stop, health, delay, pool, inflight, metrics)
    finally:
        if pool is not None:
            pool.close()
    LOGGER.info("stopped")
    return 0


def _wait_beating(stop: StopSignal, health: HealthState, seconds: float, pool: TaskPool | None,
                  inflight: InFlight, metrics: WorkerMetrics) -> None:
    """Sleep `seconds` or until a stop, staying alive for the liveness probe. Tasks that finish
    meanwhile lost their channel with the connection: they are reported as late acks now, not
    only once a connection is back."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.requested:
        health.beat()
        for delivery, _ in pool.completed() if pool is not None else ():
            drop_late(delivery, inflight, metrics)
        stop.wait(min(WAIT_STEP_S, max(deadline - time.monotonic(), 0)))
