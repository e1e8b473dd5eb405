"""AMQP connection parameters shared by every component."""

import os
import socket

import pika


def connection_name() -> str:
    """The pod name in Kubernetes (downward API or host name), else the host name.

    The broker shows it per connection, so an operator can tell workers apart.
    """
    return os.environ.get("POD_NAME") or socket.gethostname()


def connection_parameters(amqp_url: str, component: str, **overrides) -> pika.URLParameters:
    parameters = pika.URLParameters(amqp_url)
    parameters.client_properties = {
        "connection_name": connection_name(),
        "product": f"workfleet-{component}",
    }
    for name, value in overrides.items():
        setattr(parameters, name, value)
    return parameters
