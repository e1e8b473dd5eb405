"""Exact ready counts over AMQP, for pools that give `broker.amqpUrl`.

The management API's numbers are samples about a second old at best (several
seconds with RabbitMQ's defaults): the floor under how fast a burst can be seen.
A passive queue.declare answers with the queue's ready messages and consumers as
they are now, in well under a millisecond, and a user with only the `monitoring`
tag and no permissions may send it. One connection per broker and user; the
declares for every pool of a poll go over it one after another.
"""

import logging
import ssl
import threading

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from workfleet_operator.stats.management import Credentials

LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
FAILURES = (pika.exceptions.AMQPError, AMQPConnectorException, OSError)


class ReadyProbeError(Exception):
    pass


class ReadyProbe:
    def __init__(self, amqp_url: str, vhost: str, credentials: Credentials, ssl_context: ssl.SSLContext | None = None):
        self._parameters = pika.URLParameters(amqp_url)
        if self._parameters.ssl_options is not None and ssl_context is not None:  # amqps://
            self._parameters.ssl_options = pika.SSLOptions(ssl_context, self._parameters.host)
        self._parameters.virtual_host = vhost
        self._parameters.credentials = pika.PlainCredentials(credentials.username, credentials.password)
        # Used once per poll, possibly minutes apart: no heartbeats to miss; a dead
        # connection shows as an error on the next use, and is opened again.
        self._parameters.heartbeat = 0
        self._parameters.connection_attempts = 1
        self._parameters.socket_timeout = CONNECT_TIMEOUT_S
        self._parameters.blocked_connection_timeout = CONNECT_TIMEOUT_S
        self._parameters.client_properties = {"connection_name": "workfleet-operator", "product": "workfleet-operator"}
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._lock = threading.Lock()

    def read(self, queues: list[str]) -> dict[str, tuple[int, int]]:
        """(ready, consumers) of each queue that exists; blocking, so call it from a thread."""
        with self._lock:
            try:
                return self._declare_all(queues)
            except FAILURES as first:
                LOGGER.info("ready probe reconnecting", extra={"error": f"{type(first).__name__}: {first}"})
                self._close()
            try:
                return self._declare_all(queues)
            except FAILURES as error:
                self._close()
                raise ReadyProbeError(f"{type(error).__name__}: {error}") from None

    def _declare_all(self, queues: list[str]) -> dict[str, tuple[int, int]]:
        found = {}
        for queue in queues:
            try:
                method = self._open_channel().queue_declare(queue, passive=True).method
            except pika.exceptions.ChannelClosedByBroker as closed:
                if closed.reply_code != 404:
                    raise
                self._channel = None  # the broker closes the channel on a missing queue
                continue
            found[queue] = (method.message_count, method.consumer_count)
        return found

    def _open_channel(self):
        if self._connection is None or self._connection.is_closed:
            self._connection = pika.BlockingConnection(self._parameters)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = self._connection.channel()
        return self._channel

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except FAILURES:
                pass

    def close(self) -> None:
        with self._lock:
            self._close()
