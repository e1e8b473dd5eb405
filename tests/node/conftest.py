import pytest

from tests.support.cluster import NodeCluster


@pytest.fixture(scope="module")
def node_cluster():
    """A one-node cluster for the module (one per machine, so never two modules at once)."""
    with NodeCluster() as cluster:
        yield cluster
