"""workfleet worker: consumes the work queue, runs the user's task, acks after the work."""

from workfleet_worker.delivery_context import DeliveryContext, current_delivery
from workfleet_worker.errors import Reject
from workfleet_worker.time_limits import TaskTimeout

__all__ = ["DeliveryContext", "Reject", "TaskTimeout", "current_delivery"]
