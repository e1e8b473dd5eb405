"""workfleet worker: consumes the work queue, runs the user's task, acks after the work."""

from workfleet_worker.errors import Reject

__all__ = ["Reject"]
