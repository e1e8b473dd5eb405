"""The worker's settings: flags and WORKFLEET_* environment variables."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from workfleet_common.retry_ladder import DEFAULT_LADDER, LadderError, RetryLadder
from workfleet_common.settings import AmqpSettings, QueueName
from workfleet_common.topology import QueueType
from workfleet_worker.prefetch import PrefetchSetting
from workfleet_worker.task_loading import TaskLoadError, load_task
from workfleet_worker.time_limits import TimeLimits


class WorkerSettings(AmqpSettings):
    queue: QueueName = Field("tasks", description="work queue to consume")
    task: str = Field(
        "workfleet_worker.tasks:dots",
        description="task to run, as package.module:function, called with (body, headers)",
    )
    concurrency: int = Field(
        1, ge=1, le=1000,
        description="tasks run at once in this process: plain functions on that many threads, async def "
        "ones on one event loop (1 runs plain functions on the main thread)",
    )
    prefetch: int | Literal["auto"] = Field(
        "auto", description="unacked messages the broker may send ahead: a number from 1 to 1000, or auto "
        "(at concurrency 1: 1 for tasks over the budget, more for shorter ones; above 1: the concurrency)",
    )
    prefetch_budget_ms: float = Field(
        50, gt=0, le=10_000, description="with --prefetch auto: most work, in ms, that may wait in the worker's buffer"
    )
    prefetch_max: int = Field(50, ge=1, le=1000, description="with --prefetch auto: the highest prefetch it may use")
    max_attempts: int = Field(5, ge=1, le=1000, description="executions before a failing task is dead-lettered")
    retry_delays: str = Field(
        DEFAULT_LADDER,
        description="waits before each retry, such as 1s,10s,1m (the last one repeats); 0 retries at once",
    )
    task_timeout: float | None = Field(
        None, gt=0, le=7 * 24 * 3600,
        description="seconds a task may run before TaskTimeout is raised inside it (a failed attempt); none by default",
    )
    task_timeout_grace: float = Field(
        10, ge=0, le=3600,
        description="seconds after --task-timeout before a task that has not stopped ends the worker (exit status 3)",
    )
    queue_type: QueueType = Field("quorum", description="quorum or classic (classic is the tutorial's queue)")
    metrics_port: int = Field(9100, ge=0, le=65535, description="port for /metrics, /healthz, /readyz (0: any free port)")
    liveness_timeout: float = Field(
        60, gt=0, le=3600, description="seconds without a turn of the main loop before /healthz fails",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")

    @model_validator(mode="after")
    def _prefetch_covers_concurrency(self):
        if isinstance(self.prefetch, int) and self.prefetch < self.concurrency:
            raise ValueError(f"--prefetch {self.prefetch} is below --concurrency {self.concurrency}: slots would "
                             "stay idle; use --prefetch auto or a number at least the concurrency")
        return self

    @field_validator("prefetch", mode="before")
    @classmethod
    def _prefetch_is_auto_or_a_count(cls, value):
        text = str(value).strip()
        if text == "auto":
            return "auto"
        if not isinstance(value, bool) and text.isdigit() and 1 <= int(text) <= 1000:
            return int(text)
        raise ValueError("expected a number from 1 to 1000, or auto")

    @field_validator("retry_delays")
    @classmethod
    def _retry_delays_is_a_ladder(cls, value: str) -> str:
        try:
            return str(RetryLadder.parse(value))
        except LadderError as error:
            raise ValueError(str(error)) from None

    def retry_ladder(self) -> RetryLadder:
        return RetryLadder.parse(self.retry_delays)

    def time_limits(self) -> TimeLimits:
        return TimeLimits(self.task_timeout, self.task_timeout_grace)

    def prefetch_setting(self) -> PrefetchSetting:
        return PrefetchSetting(fixed=None if self.prefetch == "auto" else self.prefetch,
                               budget_s=self.prefetch_budget_ms / 1000, cap=self.prefetch_max)

    @field_validator("task")
    @classmethod
    def _task_is_importable(cls, value: str) -> str:
        try:
            load_task(value)
        except TaskLoadError as error:
            raise ValueError(str(error)) from None
        return value
