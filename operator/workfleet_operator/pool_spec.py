"""A WorkerPool's spec, read into plain values.

The CRD's schema has already refused bad pools and filled in every default; the
defaults repeated here only cover objects stored before a default was added.
"""

from dataclasses import dataclass

from workfleet_operator.scaling.policy import Mode, Policy


@dataclass(frozen=True)
class PoolSpec:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    queue: str
    vhost: str
    management_url: str
    amqp_url: str | None
    secret_name: str
    username_key: str
    password_key: str
    ca_secret_name: str | None  # broker.tls.caSecretRef: verify the broker against its CA
    ca_key: str
    insecure_skip_verify: bool
    timeout_seconds: float
    poll_seconds: float
    rate_window_seconds: float
    forgotten_ack_seconds: float
    policy: Policy

    @property
    def broker_key(self) -> tuple[str, str]:
        return (self.management_url, self.amqp_url, self.vhost)


def read_spec(namespace: str, name: str, spec: dict) -> PoolSpec:
    target = spec["scaleTargetRef"]
    queue = spec["queue"]
    broker = spec["broker"]
    secret = broker["credentialsSecretRef"]
    tls = broker.get("tls") or {}
    ca_secret = tls.get("caSecretRef") or {}
    policy = spec.get("policy") or {}
    fallback = spec.get("fallback") or {}
    return PoolSpec(
        namespace=namespace,
        name=name,
        target_kind=target.get("kind", "Deployment"),
        target_name=target["name"],
        queue=queue["name"],
        vhost=queue.get("vhost", "/"),
        management_url=broker["managementUrl"].rstrip("/"),
        amqp_url=broker.get("amqpUrl"),
        secret_name=secret["name"],
        username_key=secret.get("usernameKey", "username"),
        password_key=secret.get("passwordKey", "password"),
        ca_secret_name=ca_secret.get("name"),
        ca_key=ca_secret.get("key", "ca.crt"),
        insecure_skip_verify=bool(tls.get("insecureSkipVerify", False)),
        timeout_seconds=float(broker.get("timeoutSeconds", 5)),
        poll_seconds=float(spec.get("pollSeconds", 5)),
        rate_window_seconds=float(policy.get("rateWindowSeconds", 30)),
        forgotten_ack_seconds=float((spec.get("forgottenAck") or {}).get("windowSeconds", 900)),
        policy=Policy(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            mode=Mode(policy.get("mode", "backlog")),
            messages_per_replica=int(policy.get("messagesPerReplica", 10)),
            target_drain_seconds=float(policy.get("targetDrainSeconds", 60)),
            activation_backlog=int(policy.get("activationBacklog", 0)),
            scale_up_step=policy.get("scaleUpStep"),
            stabilization_seconds=float(policy.get("scaleDownStabilizationSeconds", 60)),
            failure_threshold=int(fallback.get("failureThreshold", 3)),
            fallback_replicas=fallback.get("replicas"),
            paused=bool(spec.get("paused", False)),
        ),
    )
