"""The baseline: a consumer written like the RabbitMQ tutorial's worker.py.

Prints the wall-clock times of its first and last ack once it has acked N messages.
The optional fourth argument is seconds of work per '.' in the body (the tutorial's 1 s),
or "none" to skip the tutorial's sleep call altogether.
"""

import sys
import time

import pika

amqp_url, queue, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = sys.argv[4] if len(sys.argv) > 4 else "0"
dot_seconds = None if work == "none" else float(work)
connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)
channel.basic_qos(prefetch_count=1)
acked = 0
first = last = 0.0


def callback(ch, method, properties, body):
    global acked, first, last
    if dot_seconds is not None:
        time.sleep(body.decode().count(".") * dot_seconds)  # the tutorial's work
    ch.basic_ack(delivery_tag=method.delivery_tag)
    acked += 1
    last = time.time()
    if acked == 1:
        first = last
    if acked == expected:
        ch.stop_consuming()


channel.basic_consume(queue=queue, on_message_callback=callback)
channel.start_consuming()
print(first, last)
connection.close()
