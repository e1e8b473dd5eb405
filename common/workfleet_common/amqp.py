"""AMQP connection parameters shared by every component."""

import os
import socket
import ssl

import pika


def connection_name() -> str:
    """The pod name in Kubernetes (downward API or host name), else the host name.

    The broker shows it per connection, so an operator can tell workers apart.
    """
    return os.environ.get("POD_NAME") or socket.gethostname()


def connection_parameters(amqp_url: str, component: str, ca_file: str = "", cert_file: str = "", key_file: str = "",
                          **overrides) -> pika.URLParameters:
    """For amqps://, the broker's certificate is verified, host name included, against `ca_file`
    (else the system's CAs), and `cert_file` and `key_file` are the client's, if given."""
    parameters = pika.URLParameters(amqp_url)
    parameters.client_properties = {
        "connection_name": connection_name(),
        "product": f"workfleet-{component}",
    }
    if parameters.ssl_options is not None:
        context = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
        parameters.ssl_options = pika.SSLOptions(context, parameters.host)
    for name, value in overrides.items():
        setattr(parameters, name, value)
    return parameters


def persistent_copy(original: pika.BasicProperties, headers: dict) -> pika.BasicProperties:
    """The properties for a republished copy of a message: the same message, new headers.

    Used for retry and dead-letter copies and for requeues out of the dead-letter
    queue, so a message keeps its id, type and timestamp wherever it travels.
    """
    return pika.BasicProperties(
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        headers=headers,
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        message_id=original.message_id,
        timestamp=original.timestamp,
        type=original.type,
        app_id=original.app_id,
    )
