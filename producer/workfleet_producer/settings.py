"""The producer's settings: flags and WORKFLEET_* environment variables."""

from typing import Literal

from pydantic import Field

from workfleet_common.settings import AmqpSettings, QueueName
from workfleet_common.topology import QueueType

# RabbitMQ 4's own default max_message_size; a work item bigger than this belongs
# in object storage, with a reference in the message.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class ProducerSettings(AmqpSettings):
    queue: QueueName = Field("tasks", description="work queue to publish to")
    queue_type: QueueType = Field("quorum", description="quorum or classic, as the workers declare it")
    window: int = Field(1000, ge=1, le=65535, description="publisher confirms kept outstanding")
    confirm_timeout: float = Field(30.0, gt=0, le=3600, description="seconds without a confirm before giving up")
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES, ge=1, le=512 * 1024 * 1024, description="largest body accepted"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("WARNING", description="log level")
