"""The worker's settings: flags and WORKFLEET_* environment variables."""

from typing import Literal

from pydantic import Field, field_validator

from workfleet_common.settings import DEFAULT_AMQP_URL, AmqpUrl, QueueName, WorkfleetSettings
from workfleet_common.topology import QueueType
from workfleet_worker.task_loading import TaskLoadError, load_task


class WorkerSettings(WorkfleetSettings):
    amqp_url: AmqpUrl = Field(DEFAULT_AMQP_URL, description="broker URL (amqp:// or amqps://)")
    queue: QueueName = Field("tasks", description="work queue to consume")
    task: str = Field(
        "workfleet_worker.tasks:dots",
        description="task to run, as package.module:function, called with (body, headers)",
    )
    prefetch: int = Field(1, ge=1, le=1000, description="unacked messages the broker may send ahead")
    max_attempts: int = Field(5, ge=1, le=1000, description="executions before a failing task is dead-lettered")
    queue_type: QueueType = Field("quorum", description="quorum or classic (classic is the tutorial's queue)")
    metrics_port: int = Field(9100, ge=0, le=65535, description="port for /metrics, /healthz, /readyz (0: any free port)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")

    @field_validator("task")
    @classmethod
    def _task_is_importable(cls, value: str) -> str:
        try:
            load_task(value)
        except TaskLoadError as error:
            raise ValueError(str(error)) from None
        return value
