"""Queue statistics: the management API client and the batching of its requests."""
