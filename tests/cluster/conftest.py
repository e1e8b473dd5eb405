import pytest

from tests.chart.test_render import MONITORING_CRDS
from tests.cluster.operator_scenario import MONITOR_PASSWORD, MONITOR_USER, OperatorScenario
from tests.support.controlplane import ControlPlane
from tests.support.operator import CRD


@pytest.fixture(scope="session")
def controlplane():
    with ControlPlane() as plane:
        yield plane


@pytest.fixture
def namespace(controlplane):
    with controlplane.temporary_namespace("t") as name:
        yield name


@pytest.fixture(scope="session")
def workerpool_crd(controlplane):
    controlplane.kubectl("apply", "-f", str(CRD))
    controlplane.kubectl("wait", "--for=condition=Established", "crd/workerpools.workfleet.dev", "--timeout=60s")


@pytest.fixture(scope="session")
def monitoring_broker(broker):
    """The session broker with the user the operator reads stats as: the `monitoring`
    tag and no permission to publish, consume or configure anything."""
    broker.ctl("add_user", MONITOR_USER, MONITOR_PASSWORD)
    broker.ctl("set_user_tags", MONITOR_USER, "monitoring")
    broker.ctl("set_permissions", "-p", "/", MONITOR_USER, "^$", "^$", "^$")
    return broker


@pytest.fixture
def scenario(controlplane, workerpool_crd, monitoring_broker, namespace, tmp_path):
    world = OperatorScenario(controlplane, monitoring_broker, namespace, tmp_path)
    yield world
    world.close()


@pytest.fixture(scope="session")
def prometheus_operator_crds(controlplane):
    """prometheus-operator's own CRDs (tests/upstream), as kube-prometheus-stack installs them."""
    for path in MONITORING_CRDS:
        # Server-side: these CRDs are too big for the last-applied annotation of a client-side apply.
        controlplane.kubectl("apply", "--server-side", "-f", str(path))
    for name in ("podmonitors", "servicemonitors", "prometheusrules"):
        controlplane.kubectl("wait", "--for=condition=Established", f"crd/{name}.monitoring.coreos.com", "--timeout=60s")
