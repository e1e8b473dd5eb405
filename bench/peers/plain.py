"""A plain pika consumer, as the RabbitMQ tutorial writes one, at a given prefetch.

    python -m bench.peers.plain AMQP_URL QUEUE COUNT PREFETCH

Consumes COUNT messages, running bench/peers/task.py's task for each and acking after it. The
queue is declared beforehand (passively here: it may be a quorum queue with its own arguments).
"""

import sys

import pika

from bench.peers.task import handle

amqp_url, queue, expected, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
channel = connection.channel()
channel.queue_declare(queue=queue, passive=True)
channel.basic_qos(prefetch_count=prefetch)
acked = 0


def callback(ch, method, properties, body):
    global acked
    handle(body)
    ch.basic_ack(delivery_tag=method.delivery_tag)
    acked += 1
    if acked == expected:
        ch.stop_consuming()


channel.basic_consume(queue=queue, on_message_callback=callback)
channel.start_consuming()
connection.close()
