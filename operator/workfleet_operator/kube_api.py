"""The operator's calls to the Kubernetes API: the few it needs, each named for what it does.

Synchronous (the official client); the pool loop runs them in threads. Every call
here has a matching rule in charts/workfleet/files/operator-role-rules.yaml.
"""

import base64
import datetime
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

LOGGER = logging.getLogger(__name__)

GROUP = "workfleet.dev"
VERSION = "v1alpha1"
PLURAL = "workerpools"
KIND = "WorkerPool"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
COMPONENT = "workfleet-operator"
SCALE_CONFLICT_RETRIES = 5
SCALE_CONFLICT_BACKOFF_S = 0.05


class TargetNotFound(Exception):
    pass


class ReplicasChanged(Exception):
    """Someone else set the target's replicas since they were read: decide again, do not overwrite."""


@dataclass(frozen=True)
class Scale:
    replicas: int
    selector: str  # label selector of the target's pods, as the /scale subresource gives it
    resource_version: str


class KubeApi:
    def __init__(self, api_client: client.ApiClient):
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    # -- the target's /scale subresource ---------------------------------------------

    def read_scale(self, namespace: str, kind: str, name: str) -> Scale:
        read = self._apps.read_namespaced_deployment_scale if kind == "Deployment" else self._apps.read_namespaced_stateful_set_scale
        try:
            scale = read(name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise TargetNotFound(f"{kind} {namespace}/{name} not found") from None
            raise
        return Scale(scale.spec.replicas or 0, scale.status.selector or "", scale.metadata.resource_version)

    def set_replicas(self, namespace: str, kind: str, name: str, replicas: int, scale: Scale) -> Scale:
        """Set an absolute replica count, guarded by the resourceVersion that was read.

        On a conflict (409: the target changed since it was read) the scale is read
        again. If only something else changed (the Deployment controller writes status
        all the time), the same absolute count is written again; if the replicas
        themselves changed, ReplicasChanged is raised so the count is decided anew from
        what is there now. Absolute values mean a retry or a restart never scales twice.
        """
        replace = (
            self._apps.replace_namespaced_deployment_scale
            if kind == "Deployment"
            else self._apps.replace_namespaced_stateful_set_scale
        )
        for attempt in range(1, SCALE_CONFLICT_RETRIES + 1):
            body = {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": scale.resource_version},
                "spec": {"replicas": replicas},
            }
            try:
                written = replace(name, namespace, body)
                return Scale(written.spec.replicas, scale.selector, written.metadata.resource_version)
            except ApiException as error:
                if error.status != 409 or attempt == SCALE_CONFLICT_RETRIES:
                    raise
                LOGGER.info("scale conflict; reading again", extra={"target": f"{namespace}/{name}", "attempt": attempt})
                fresh = self.read_scale(namespace, kind, name)
                if fresh.replicas != scale.replicas:
                    raise ReplicasChanged(f"{kind} {namespace}/{name} went from {scale.replicas} to {fresh.replicas} replicas meanwhile") from None
                scale = fresh
                time.sleep(SCALE_CONFLICT_BACKOFF_S * attempt)
        raise AssertionError("unreachable")

    # -- pods ------------------------------------------------------------------------

    def pods(self, namespace: str, selector: str) -> list[client.V1Pod]:
        return self._core.list_namespaced_pod(namespace, label_selector=selector).items

    def set_deletion_cost(self, namespace: str, pod: str, cost: int) -> None:
        patch = {"metadata": {"annotations": {DELETION_COST: str(cost)}}}
        self._core.patch_namespaced_pod(pod, namespace, patch)

    # -- the WorkerPool ----------------------------------------------------------------

    def write_status(self, namespace: str, name: str, status: dict) -> None:
        self._custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": status})

    def emit_event(self, pool: dict, event_type: str, reason: str, message: str) -> None:
        meta = pool["metadata"]
        now = datetime.datetime.now(datetime.timezone.utc)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{meta['name']}.{uuid.uuid4().hex[:12]}", namespace=meta["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=event_type,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=os.environ.get("POD_NAME") or socket.gethostname(),
        )
        self._core.create_namespaced_event(meta["namespace"], event)

    # -- the broker's credentials --------------------------------------------------------

    def read_secret_keys(self, namespace: str, name: str, keys: tuple[str, ...]) -> dict[str, str] | None:
        """The decoded values of the keys, or None if the Secret or a key is missing."""
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status in (403, 404):
                return None
            raise
        data = secret.data or {}
        if any(key not in data for key in keys):
            return None
        return {key: base64.b64decode(data[key]).decode() for key in keys}
