"""The WorkerPool CRD refuses bad pools at `kubectl apply`, with a message saying what to fix."""

import json

import pytest



def pool(namespace: str, **spec) -> dict:
    base = {
        "scaleTargetRef": {"name": "workers"},
        "queue": {"name": "tasks"},
        "broker": {"managementUrl": "http://rabbitmq:15672", "credentialsSecretRef": {"name": "broker-monitor"}},
        "maxReplicas": 4,
    }
    base.update(spec)
    return {"apiVersion": "workfleet.dev/v1alpha1", "kind": "WorkerPool", "metadata": {"name": "p", "namespace": namespace},
            "spec": {key: value for key, value in base.items() if value is not None}}


def test_a_minimal_pool_is_accepted_with_defaults(controlplane, workerpool_crd, namespace):
    controlplane.kubectl("apply", "-f", "-", input=json.dumps(pool(namespace)))
    stored = json.loads(controlplane.kubectl("get", "wp", "p", "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored["minReplicas"] == 1 and stored["pollSeconds"] == 5 and stored["paused"] is False
    assert stored["policy"] == {"mode": "backlog", "messagesPerReplica": 10, "targetDrainSeconds": 60,
                                "activationBacklog": 0, "scaleDownStabilizationSeconds": 60, "rateWindowSeconds": 30}
    assert stored["queue"]["vhost"] == "/" and stored["scaleTargetRef"]["kind"] == "Deployment"
    columns = controlplane.kubectl("get", "wp", "-n", namespace).stdout.split("\n")[0].split()
    assert columns == ["NAME", "QUEUE", "READY", "UNACKED", "DESIRED", "CURRENT", "REASON", "AGE"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "minReplicas must not be greater than maxReplicas"),
        ({"queue": None}, "spec.queue: Required value"),
        ({"maxReplicas": -1}, "spec.maxReplicas: Invalid value: -1: spec.maxReplicas in body should be greater than or equal to 1"),
        ({"minReplicas": -2}, "spec.minReplicas in body should be greater than or equal to 0"),
        ({"pollSeconds": 0}, "spec.pollSeconds in body should be greater than or equal to 1"),
        ({"replicaz": 3}, 'unknown field "spec.replicaz"'),
        ({"policy": {"mode": "guess"}}, 'supported values: "backlog", "drainTime"'),
        ({"broker": {"managementUrl": "rabbitmq:15672", "credentialsSecretRef": {"name": "s"}}},
         "must be an http:// or https:// URL"),
        ({"broker": {"managementUrl": "http://rabbitmq:15672"}}, "spec.broker.credentialsSecretRef: Required value"),
        ({"broker": {"managementUrl": "https://rabbitmq:15671", "credentialsSecretRef": {"name": "s"},
                     "tls": {"caSecretRef": {"name": "ca"}, "insecureSkipVerify": True}}},
         "give caSecretRef or insecureSkipVerify, not both"),
        ({"broker": {"managementUrl": "http://rabbitmq:15672", "amqpUrl": "amqp://guest:guest@rabbitmq:5672",
                     "credentialsSecretRef": {"name": "s"}}}, "must be an amqp:// or amqps:// URL with a host and no credentials"),
        ({"fallback": {"replicas": 9}}, "fallback.replicas must not be greater than maxReplicas"),
        ({"pollSeconds": 30}, "policy.rateWindowSeconds must span at least two polls"),
        ({"scaleTargetRef": {"name": "w", "kind": "Job"}}, 'supported values: "Deployment", "StatefulSet"'),
    ],
)
def test_invalid_pools_are_refused_with_the_reason(controlplane, workerpool_crd, namespace, spec, message):
    refused = controlplane.kubectl("apply", "-f", "-", input=json.dumps(pool(namespace, **spec)), check=False)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr


def test_operator_role_allows_what_it_uses_and_nothing_else(controlplane, namespace):
    """The chart's Role for the operator, asked through the real RBAC authorizer."""
    from tests.support.operator import SERVICE_ACCOUNT, grant_operator_role

    grant_operator_role(controlplane, namespace)
    subject = f"--as=system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"

    def can(verb: str, resource: str, *extra: str) -> bool:
        result = controlplane.kubectl("auth", "can-i", verb, resource, "-n", namespace, subject, *extra, check=False)
        return result.stdout.strip() == "yes"

    allowed = [
        ("list", "workerpools.workfleet.dev"), ("watch", "workerpools.workfleet.dev"), ("get", "workerpools.workfleet.dev"),
        ("patch", "workerpools.workfleet.dev", "--subresource=status"),
        ("get", "deployments.apps", "--subresource=scale"), ("update", "deployments.apps", "--subresource=scale"),
        ("get", "statefulsets.apps", "--subresource=scale"), ("update", "statefulsets.apps", "--subresource=scale"),
        ("list", "pods"), ("patch", "pods"), ("get", "secrets"), ("create", "events"),
    ]
    refused = [
        ("patch", "workerpools.workfleet.dev"), ("update", "workerpools.workfleet.dev"), ("delete", "workerpools.workfleet.dev"),
        ("create", "workerpools.workfleet.dev"),
        ("get", "deployments.apps"), ("patch", "deployments.apps"), ("update", "deployments.apps"), ("delete", "deployments.apps"),
        ("patch", "deployments.apps", "--subresource=scale"),
        ("delete", "pods"), ("create", "pods"), ("update", "pods"), ("get", "pods", "--subresource=exec"),
        ("list", "secrets"), ("watch", "secrets"), ("update", "secrets"),
        ("delete", "events"), ("create", "configmaps"), ("create", "rolebindings.rbac.authorization.k8s.io"),
    ]
    assert [rule for rule in allowed if not can(*rule)] == []
    assert [rule for rule in refused if can(*rule)] == []
    other = controlplane.kubectl("auth", "can-i", "list", "workerpools.workfleet.dev", "-n", "default", subject, check=False)
    assert other.stdout.strip() == "no", "the Role grants nothing outside its namespace"
