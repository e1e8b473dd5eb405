"""A private RabbitMQ node that also serves AMQP and the management API over TLS, with
certificates from a CA of its own; its AMQP listener requires a client certificate."""

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.support.certificates import write_ca, write_client_certificate, write_serving_certificate
from workfleet_operator.local.rabbitmq import RabbitNode, free_port


@dataclass
class TlsBroker:
    node: RabbitNode
    url: str  # amqps://guest:guest@localhost:<port>/%2F
    management_url: str  # https://localhost:<port>
    ca: Path
    cert: Path  # a client certificate the AMQP listener accepts, and its key
    key: Path

    def flags(self, *, ca: bool = True, client: bool = True) -> list[str]:
        """The workfleet command-line flags that reach it."""
        flags = ["--amqp-url", self.url]
        if ca:
            flags += ["--amqp-ca-file", str(self.ca)]
        if client:
            flags += ["--amqp-cert-file", str(self.cert), "--amqp-key-file", str(self.key)]
        return flags


@contextlib.contextmanager
def tls_rabbit_node() -> Iterator[TlsBroker]:
    # In the node's own folder: the broker may run in a root file system of its own, which sees that
    # folder and nothing else of the host's (operator/workfleet_operator/local/rabbitmq_install.py).
    node_dir = Path(tempfile.mkdtemp(prefix="workfleet-rabbitmq-"))
    try:
        pki = write_ca(node_dir / "tls")
        server_cert, server_key = write_serving_certificate(pki, "broker", ["localhost"], ["127.0.0.1"])
        client_cert, client_key = write_client_certificate(pki, "client", "workfleet-worker")
        amqps_port, https_port = free_port(), free_port()
        conf = "\n".join([
            f"listeners.ssl.default = {amqps_port}",
            f"ssl_options.cacertfile = {pki['ca_cert']}",
            f"ssl_options.certfile = {server_cert}",
            f"ssl_options.keyfile = {server_key}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
            f"management.ssl.port = {https_port}",
            f"management.ssl.cacertfile = {pki['ca_cert']}",
            f"management.ssl.certfile = {server_cert}",
            f"management.ssl.keyfile = {server_key}",
        ])
        with RabbitNode(rabbitmq_conf=conf, base_dir=node_dir) as node:
            yield TlsBroker(node, f"amqps://guest:guest@localhost:{amqps_port}/%2F", f"https://localhost:{https_port}",
                            pki["ca_cert"], client_cert, client_key)
    finally:
        shutil.rmtree(node_dir, ignore_errors=True)
