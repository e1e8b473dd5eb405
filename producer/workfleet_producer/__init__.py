"""workfleet producer: publish persistent messages with pipelined publisher confirms."""

from workfleet_producer.publisher import ConfirmedPublisher, OutgoingMessage, Outcome, PublishResult

__all__ = ["ConfirmedPublisher", "OutgoingMessage", "Outcome", "PublishResult"]
