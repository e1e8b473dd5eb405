"""`workfleet-operator`: scale WorkerPools from their queues' backlog (kopf)."""

import argparse
import logging
import os
import socket

import kopf
from prometheus_client import start_http_server

from workfleet_common import logs
from workfleet_common.settings import add_setting_flags, settings_from
from workfleet_operator import handlers  # noqa: F401  (registers the kopf handlers)
from workfleet_operator.settings import OperatorSettings

LOGGER = logging.getLogger(__name__)

# kopf logs every handled watch event at INFO, and the operator's own status
# writes are watch events; aiohttp logs every liveness probe. Both drown the decisions.
QUIETER_LOGGERS = ("kopf.objects", "aiohttp.access")


class DropKopfSettings(logging.Filter):
    """kopf attaches its whole settings object to each object-bound record; a log line needs none of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("settings", None)
        return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workfleet-operator",
        description="Scale worker Deployments from RabbitMQ queue backlog, as WorkerPool resources say. "
        "Runs in a pod with its service account, or anywhere with a kubeconfig (KUBECONFIG).",
    )
    add_setting_flags(parser, OperatorSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    settings = settings_from(OperatorSettings, build_parser().parse_args(argv))
    logs.configure(settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(DropKopfSettings())
    for name in QUIETER_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    start_http_server(settings.metrics_port)
    LOGGER.info(
        "operator starting",
        extra={"namespaces": settings.namespace_list or "all", "pool_selector": settings.pool_selector or "none",
               "metrics_port": settings.metrics_port},
    )
    # kopf stops on SIGTERM and SIGINT: handlers finish, cleanup runs, the process exits 0.
    kopf.run(
        clusterwide=settings.all_namespaces,
        namespaces=settings.namespace_list,
        standalone=True,
        # kopf would otherwise name itself after the user from the password database, which
        # images running as a bare numeric user (USER 10001) do not have: it crashes at start.
        identity=os.environ.get("POD_NAME") or socket.gethostname(),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        memo=kopf.Memo(pool_labels=settings.pool_labels),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
