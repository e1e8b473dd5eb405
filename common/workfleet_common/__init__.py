"""Shared by every workfleet component: settings loading, topology, envelope, AMQP, logs.

This package never imports a component package (worker, producer, operator).
"""
