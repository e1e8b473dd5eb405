import uuid

import pytest

from tests.support.controlplane import ControlPlane


@pytest.fixture(scope="session")
def controlplane():
    with ControlPlane() as plane:
        yield plane


@pytest.fixture
def namespace(controlplane):
    name = f"t-{uuid.uuid4().hex[:8]}"
    controlplane.kubectl("create", "namespace", name)
    yield name
    controlplane.kubectl("delete", "namespace", name, "--wait=false")
