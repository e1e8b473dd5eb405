"""workfleet operator: scales the worker fleet from queue backlog.

It also holds the `workfleet` command line, the dead-letter tool (dlq/) and the local fleet
(local/, `workfleet up`): a private RabbitMQ node and autoscaled worker processes on one machine.
"""
