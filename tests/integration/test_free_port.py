"""Ports for private nodes come from outside the kernel's ephemeral range."""

import socket

from workfleet_operator.local.rabbitmq import EPHEMERAL_RANGE_FILE, LISTEN_PORTS_FROM, free_port


def test_free_ports_are_bindable_and_never_ephemeral():
    """Pass: each port can be bound at once and lies below the first ephemeral port, so
    no outgoing connection can take it before the broker binds it."""
    first_ephemeral = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    for _ in range(50):
        port = free_port()
        assert LISTEN_PORTS_FROM <= port < first_ephemeral
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
