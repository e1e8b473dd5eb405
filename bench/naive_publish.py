"""The baseline publisher: persistent messages, waiting for each confirm (one round trip each)."""

import sys
import uuid

import pika

amqp_url, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)
channel.confirm_delivery()
for _ in range(count):
    channel.basic_publish(
        "",
        queue,
        b"x",
        pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=uuid.uuid4().hex),
        mandatory=True,
    )
connection.close()
