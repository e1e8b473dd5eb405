"""The operator's settings: flags and WORKFLEET_* environment variables."""

from typing import Literal

from pydantic import Field, model_validator

from workfleet_common.settings import WorkfleetSettings


class OperatorSettings(WorkfleetSettings):
    namespaces: str = Field("", description="comma-separated namespaces whose WorkerPools to scale")
    all_namespaces: bool = Field(False, description="scale WorkerPools in every namespace (needs a ClusterRole)")
    pool_selector: str = Field(
        "", pattern=r"^$|^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*)*$",
        description="scale only the WorkerPools with these labels, as key=value[,key=value] "
        "(the chart gives its release's, so two releases in one namespace never scale each other's)")
    metrics_port: int = Field(9200, ge=0, le=65535, description="port for /metrics")
    health_port: int = Field(8080, ge=1, le=65535, description="port for the /healthz liveness endpoint")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")

    @property
    def namespace_list(self) -> list[str]:
        return [name.strip() for name in self.namespaces.split(",") if name.strip()]

    @property
    def pool_labels(self) -> dict[str, str]:
        return dict(term.split("=", 1) for term in self.pool_selector.split(",") if term)

    @model_validator(mode="after")
    def _one_scope(self) -> "OperatorSettings":
        if bool(self.namespace_list) == self.all_namespaces:
            raise ValueError("give --namespaces NS[,NS...] or --all-namespaces, exactly one of them")
        return self
