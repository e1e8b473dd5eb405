"""The kopf handlers: thin. They keep the fleet in step with the WorkerPools that exist.

Pools are followed with a watching handler (`on.event`), not with daemons or
change handlers: those put a finalizer on every WorkerPool, so uninstalling the
operator before its pools would leave them undeletable. A scaler has nothing to
clean up when a pool goes (the Deployment keeps its last replica count, as after
deleting an HPA), so nothing here writes to the WorkerPool except its status.
"""

import copy
import logging

import kopf
from kubernetes import client, config
from prometheus_client import REGISTRY

from workfleet_operator.fleet import Fleet
from workfleet_operator.kube_api import GROUP, PLURAL, VERSION, KubeApi
from workfleet_operator.metrics import OperatorMetrics


def kubernetes_client() -> client.ApiClient:
    """In a pod, the service account; elsewhere the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    # One replica at a time (the chart's Deployment is Recreate), so no peering objects.
    settings.peering.standalone = True
    # Watch only WorkerPools in the namespaces given: no cluster-wide CRD or namespace scans.
    settings.scanning.disabled = True
    # kopf posts its own handler errors as Events; the pools' decisions are posted by the fleet.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "workfleet-operator"
    memo.fleet = Fleet(KubeApi(kubernetes_client()), OperatorMetrics(REGISTRY))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_) -> None:
    await memo.fleet.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def follow_pool(type: str | None, body: kopf.Body, name: str, namespace: str, labels: kopf.Labels,
                      memo: kopf.Memo, **_) -> None:
    # Filtered here, not by kopf's labels= filter: a pool whose labels stop matching must be let go.
    if type == "DELETED" or not selected(labels, memo.pool_labels):
        await memo.fleet.remove(namespace, name)
    else:  # None: seen in the initial listing; ADDED, MODIFIED
        memo.fleet.upsert(copy.deepcopy(dict(body)))


def selected(labels: kopf.Labels, wanted: dict[str, str]) -> bool:
    """Whether a pool carries every label of --pool-selector (none given: every pool)."""
    return all(labels.get(key) == value for key, value in wanted.items())
