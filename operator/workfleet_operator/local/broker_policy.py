"""`workfleet up` owns the topology of its fleet, so it applies the work queue's policy, as the
Helm chart's definitions do in a cluster: on a quorum queue it makes the broker's delivery-limit
dead-lettering at least once (Topology.work_queue_policy)."""

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

from workfleet_common.topology import Topology
from workfleet_operator.local.autoscaler import Broker


class PolicyRefused(Exception):
    pass


def apply_work_queue_policy(broker: Broker, topology: Topology) -> dict:
    """Write the policy through the management API (no consumer timeout: `up` knows nothing of
    the tasks' length, and RabbitMQ before 3.12 refuses it); returns the policy written."""
    policy = topology.work_queue_policy(longest_task_seconds=None)
    body = {key: policy[key] for key in ("pattern", "apply-to", "priority", "definition")}
    path = f"/api/policies/{urllib.parse.quote(broker.vhost, safe='')}/{urllib.parse.quote(policy['name'], safe='')}"
    token = base64.b64encode(f"{broker.credentials.username}:{broker.credentials.password}".encode()).decode()
    request = urllib.request.Request(broker.management_url.rstrip("/") + path, data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=broker.timeout_seconds):
            return policy
    except urllib.error.HTTPError as error:
        raise PolicyRefused(f"the broker refused policy {policy['name']!r} ({error.code} {error.reason}); "
                            f"its user needs the policymaker tag") from None
    except (OSError, urllib.error.URLError) as error:
        raise PolicyRefused(f"the management API at {broker.management_url} did not answer: {error}") from None
