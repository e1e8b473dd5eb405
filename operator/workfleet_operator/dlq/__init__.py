"""`workfleet dlq`: inspect, requeue and purge a work queue's dead-letter queue."""
