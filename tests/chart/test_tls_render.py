"""tls.enabled: the broker listens for TLS only, every client of the release is pointed at
amqps:// and https:// and verifies the broker against its CA; the certificate comes from the
chart, from a Secret of yours, or from cert-manager. Rendered with Helm 3 and Helm 4."""

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.chart.test_render import CHART, HELMS, helm, render

TLS = ("-f", str(CHART / "ci" / "tls-values.yaml"))


def by_kind(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def env_of(container: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container["env"]}


@pytest.mark.parametrize("binary", HELMS)
def test_every_client_uses_tls_and_verifies_the_broker(binary):
    docs = by_kind(render(binary, *TLS))
    config = docs[("ConfigMap", "wf-workfleet-rabbitmq")]["data"]["rabbitmq.conf"]
    assert "listeners.tcp = none" in config and "listeners.ssl.default = 5671" in config
    assert "management.ssl.port = 15671" in config and "management.tcp.port" not in config

    [worker] = docs[("Deployment", "wf-workfleet-worker")]["spec"]["template"]["spec"]["containers"]
    env = env_of(worker)
    assert env["WORKFLEET_AMQP_URL"].startswith("amqps://workfleet-worker:") and ":5671/" in env["WORKFLEET_AMQP_URL"]
    assert env["WORKFLEET_AMQP_CA_FILE"] == "/etc/workfleet-ca/ca.crt"
    assert {"name": "broker-ca", "mountPath": "/etc/workfleet-ca", "readOnly": True} in worker["volumeMounts"]

    broker = docs[("WorkerPool", "wf-workfleet-worker")]["spec"]["broker"]
    assert broker["managementUrl"] == "https://wf-workfleet-rabbitmq:15671"
    assert broker["amqpUrl"] == "amqps://wf-workfleet-rabbitmq:5671"
    assert broker["tls"] == {"caSecretRef": {"name": "wf-workfleet-tls", "key": "ca.crt"}}
    [secrets_rule] = [rule for rule in docs[("Role", "wf-workfleet-operator")]["rules"] if "secrets" in rule["resources"]]
    assert secrets_rule["resourceNames"] == ["wf-workfleet-credentials", "wf-workfleet-tls"]

    [test_pod] = [doc for doc in docs.values() if doc["kind"] == "Pod"]
    test_env = env_of(test_pod["spec"]["containers"][0])
    assert test_env["WORKFLEET_MANAGEMENT_URL"].startswith("https://")
    assert test_env["WORKFLEET_WORKER_AMQP_URL"].startswith("amqps://")
    assert test_env["WORKFLEET_AMQP_CA_FILE"] == "/etc/workfleet-ca/ca.crt"


@pytest.mark.parametrize("binary", HELMS)
def test_the_generated_certificate_names_the_service_and_each_node_and_chains_to_the_ca(binary):
    docs = by_kind(render(binary, *TLS, "--set", "rabbitmq.replicas=3"))
    secret = docs[("Secret", "wf-workfleet-tls")]
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    ca, certificate = (x509.load_pem_x509_certificate(base64.b64decode(secret["data"][key])) for key in ("ca.crt", "tls.crt"))
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {"wf-workfleet-rabbitmq", "wf-workfleet-rabbitmq.fleet.svc", "*.wf-workfleet-rabbitmq-nodes.fleet.svc"} <= set(names)
    assert certificate.issuer == ca.subject
    public_key = ca.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):  # Helm's genCA makes RSA keys; either verifies
        public_key.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(certificate.signature_hash_algorithm))
    else:
        from cryptography.hazmat.primitives.asymmetric import padding
        public_key.verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(),
                          certificate.signature_hash_algorithm)


@pytest.mark.parametrize("binary", HELMS)
def test_an_existing_secret_is_used_as_it_is(binary):
    docs = by_kind(render(binary, *TLS, "--set", "tls.existingSecret=broker-tls"))
    assert not [key for key in docs if key[0] == "Secret" and "tls" in key[1]]
    volumes = docs[("StatefulSet", "wf-workfleet-rabbitmq")]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "broker-tls", "defaultMode": 0o440,
                                      "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"},
                                                {"key": "ca.crt", "path": "ca.crt"}]}} in volumes
    assert docs[("WorkerPool", "wf-workfleet-worker")]["spec"]["broker"]["tls"]["caSecretRef"]["name"] == "broker-tls"


@pytest.mark.parametrize("binary", HELMS)
def test_cert_manager_makes_the_certificate_where_it_is_served(binary):
    issuer = ("--set", "tls.certManager.issuerRef.name=internal-ca", "--set", "tls.certManager.issuerRef.kind=ClusterIssuer")
    docs = by_kind(render(binary, *TLS, *issuer, "--api-versions=cert-manager.io/v1"))
    certificate = docs[("Certificate", "wf-workfleet-tls")]
    assert certificate["spec"]["secretName"] == "wf-workfleet-tls"
    assert certificate["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer"}
    assert "wf-workfleet-rabbitmq.fleet.svc" in certificate["spec"]["dnsNames"]
    assert ("Secret", "wf-workfleet-tls") not in docs

    refused = helm(binary, "template", "wf", str(CHART), *TLS, *issuer)
    assert refused.returncode != 0
    assert "does not serve cert-manager.io/v1: install cert-manager" in refused.stderr
