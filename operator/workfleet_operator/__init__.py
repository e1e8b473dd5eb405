"""workfleet operator: scales the worker fleet from queue backlog.

For now this package holds the local fleet (`workfleet demo`, and later
`workfleet up`): a private RabbitMQ node and worker processes on one machine.
"""
