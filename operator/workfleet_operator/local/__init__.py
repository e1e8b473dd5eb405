"""Run a workfleet on one machine: a private RabbitMQ node and local worker processes."""
