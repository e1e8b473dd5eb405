"""The operator against a real control plane and a real RabbitMQ node.

Pods stay Pending (no kubelet); each is stood in for by a real worker process
named after it (tests/support/pod_standins.py). The operator runs as its
ServiceAccount with the chart's Role, so every test also checks its RBAC.
"""

import pytest

from tests.support.broker import publish, queue_depth, wait_until
from workfleet_common.logs import read_delivery_outcomes


def acked_ids(scenario) -> set[str]:
    return {line["message_id"] for worker in scenario.standins.workers.values()
            for line in read_delivery_outcomes(worker.log_path) if line["outcome"] == "acked"}


@pytest.mark.parametrize("amqp", [False, True], ids=["management-api", "amqp-ready-counts"])
def test_a_burst_scales_up_drains_and_scales_back_down(scenario, amqp):
    """60 tasks of 0.2 s: the pool goes to maxReplicas at once, the stand-in workers
    drain the queue, and after the 5 s stabilization window it returns to minReplicas.
    Every change has an Event and the status names its reason. Run with ready counts
    from the management API, and read exactly over AMQP (broker.amqpUrl)."""
    scenario.prepare(replicas=1, dot_seconds=0.1)
    scenario.apply_pool(amqp=amqp, policy={"messagesPerReplica": 5, "scaleDownStabilizationSeconds": 5})
    scenario.start_operator()
    wait_until(lambda: scenario.condition("MetricsAvailable").get("status") == "True", timeout=60,
               message="MetricsAvailable=True")

    ids, confirmed = publish(scenario.broker.amqp_url, scenario.queue, ["task .."] * 60)
    assert confirmed == set(ids)
    scenario.wait_for_replicas(4, timeout=30)
    wait_until(lambda: len(scenario.standins.running) == 4, timeout=30, message="4 stand-in workers")
    wait_until(lambda: acked_ids(scenario) == set(ids), timeout=120, message="all 60 tasks acked")
    scenario.wait_for_replicas(1, timeout=60)
    # The Event and then the status are written after the scale: wait for them rather than race them.
    wait_until(lambda: scenario.status().get("currentReplicas") == 1, timeout=15, message="status after the scale-in")

    reasons = scenario.event_reasons()
    assert reasons.count("ScaledUp") >= 1 and reasons.count("ScaledDown") >= 1, reasons
    up = next(event for event in scenario.events() if event.reason == "ScaledUp")
    assert "-> 4 replicas" in up.message and "backlog" in up.message, up.message
    status = scenario.status()
    assert status["lastDecision"]["to"] == 1
    assert status["currentReplicas"] == 1 and status["desiredReplicas"] == 1
    assert status["observedGeneration"] >= 1
    assert queue_depth(scenario.broker.amqp_url, scenario.queue)[0] == 0
    assert scenario.operator.metric("workfleet_pool_scaling_decisions_total", direction="up", reason="AtMaxReplicas") >= 1
    assert scenario.operator.metric("workfleet_pool_replicas_current", pool="workers") == 1
    probes = scenario.operator.metric("workfleet_operator_ready_probes_total", outcome="ok")
    assert (probes > 0) == amqp


def failed_polls(scenario, kind: str) -> float:
    try:
        return scenario.operator.metric("workfleet_pool_stats_errors_total", kind=kind)
    except KeyError:  # the operator has not listed the pool yet
        return 0.0


def hold_through_failures(scenario, kind: str, replicas: int, polls: int = 3) -> None:
    """MetricsAvailable=False says why, the error metric counts the kind, and replicas stay put."""
    before = failed_polls(scenario, kind)
    wait_until(lambda: failed_polls(scenario, kind) >= before + polls, timeout=60, message=f"{polls} polls failing with {kind}")
    condition = scenario.condition("MetricsAvailable")
    assert (condition["status"], condition["reason"]) == ("False", kind), condition
    assert scenario.condition("ScalingActive")["reason"] == "StatsUnknown"
    assert scenario.replicas() == replicas, f"replicas must be held while stats are unknown ({kind})"


def test_unreadable_stats_hold_replicas_then_resume_then_fall_back(scenario):
    """401 from the real broker, 500 and garbage from the stand-in proxy, a refused
    connection: each holds the replicas and is named in the condition and the error
    metric. Once stats return, scaling resumes; with a fallback set, the fallback
    replicas run after failureThreshold failed polls."""
    from tests.support.management_proxy import ManagementProxy
    from workfleet_operator.local.rabbitmq import free_port

    proxy = ManagementProxy(scenario.broker.management_url)
    try:
        scenario.prepare(replicas=3)
        scenario.write_secret("wf-monitor", "wrong-password")
        pool = {"management_url": proxy.url, "policy": {"scaleDownStabilizationSeconds": 0}}
        scenario.apply_pool(**pool)
        scenario.start_operator()

        hold_through_failures(scenario, "Unauthorized", 3)
        assert "MetricsUnavailable" in scenario.event_reasons()
        scenario.write_secret("wf-monitor", "monitor-secret")  # read again after the 401
        proxy.mode = "error500"
        hold_through_failures(scenario, "ServerError", 3)
        proxy.mode = "garbage"
        hold_through_failures(scenario, "BadResponse", 3)
        scenario.apply_pool(**{**pool, "management_url": f"http://127.0.0.1:{free_port()}"})
        hold_through_failures(scenario, "Unreachable", 3)

        proxy.mode = "pass"
        scenario.apply_pool(**pool)
        scenario.wait_for_replicas(1)  # an empty queue: down to minReplicas once stats are back
        wait_until(lambda: scenario.condition("MetricsAvailable")["status"] == "True", timeout=10, message="MetricsAvailable=True")
        assert "MetricsAvailable" in scenario.event_reasons()

        scenario.apply_pool(**pool, fallback={"failureThreshold": 3, "replicas": 2})
        proxy.mode = "error500"
        scenario.wait_for_replicas(2)
        wait_until(lambda: scenario.status()["lastDecision"]["reason"] == "Fallback", timeout=15, message="status says Fallback")
        decision = scenario.status()["lastDecision"]
        assert decision["reason"] == "Fallback" and "threshold 3" in decision["message"], decision
        assert failed_polls(scenario, "ServerError") >= 3
        fallback_event = next(event for event in scenario.events() if event.reason == "ScaledUp" and "fallback" in event.message)
        assert fallback_event.type == "Warning"
    finally:
        proxy.close()


def test_scale_in_removes_idle_pods_and_keeps_the_busy_one(scenario):
    """Four pods, one running a long task: scale-in to one marks the busy pod with the
    highest deletion cost, and the ReplicaSet removes the three idle pods."""
    scenario.prepare(4, dot_seconds=1.0)
    wait_until(lambda: len(scenario.standins.running) == 4 and queue_depth(scenario.broker.amqp_url, scenario.queue)[1] == 4,
               timeout=60, message="4 consuming stand-in workers")
    ids, _ = publish(scenario.broker.amqp_url, scenario.queue, ["long task " + "." * 20])

    def busy_pod():
        for name, worker in scenario.standins.workers.items():
            try:
                if worker.metric("workfleet_worker_messages_in_flight") == 1:
                    return name
            except (OSError, KeyError):
                pass
        return None

    wait_until(lambda: busy_pod() is not None, timeout=30, message="one worker running the long task")
    busy = busy_pod()
    scenario.apply_pool(policy={"scaleDownStabilizationSeconds": 0})
    scenario.start_operator()
    scenario.wait_for_replicas(1)
    wait_until(lambda: [pod.metadata.name for pod in scenario.pods()] == [busy], timeout=30, message="only the busy pod left")
    remaining = scenario.pods()[0]
    assert remaining.metadata.annotations["controller.kubernetes.io/pod-deletion-cost"] == "1"
    wait_until(lambda: scenario.standins.stopped == set(scenario.standins.workers) - {busy}, timeout=10,
               message="SIGTERM sent to the three idle stand-ins")
    wait_until(lambda: acked_ids(scenario) == set(ids), timeout=60, message="the long task acked by the pod that kept it")
    for name in scenario.standins.stopped:
        assert scenario.standins.workers[name].process.wait(30) == 0, f"{name} did not exit cleanly on SIGTERM"


def test_forgotten_acks_are_flagged_and_cleared(scenario):
    """A consumer takes two messages and never acks them: after the 5 s window
    ForgottenAckSuspected=True, a Warning Event and the metric; once it acks them,
    the condition clears with a Normal Event. (No workers run: the pool is paused
    with zero replicas, so the only consumer is the forgetful one.)"""
    import pika

    scenario.prepare(0)
    parameters = pika.URLParameters(scenario.broker.amqp_url)
    parameters.heartbeat = 0  # the test holds this connection idle on purpose
    with pika.BlockingConnection(parameters) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2)
        taken = []
        channel.basic_consume(scenario.queue, lambda _channel, method, _properties, _body: taken.append(method))
        publish(scenario.broker.amqp_url, scenario.queue, ["held 1", "held 2"])
        while len(taken) < 2:
            connection.process_data_events(time_limit=0.1)
        scenario.apply_pool(minReplicas=0, paused=True, forgottenAck={"windowSeconds": 5})
        scenario.start_operator()
        wait_until(lambda: scenario.condition("ForgottenAckSuspected").get("status") == "True", timeout=60,
                   message="ForgottenAckSuspected=True")
        assert "2 messages unacked" in scenario.condition("ForgottenAckSuspected")["message"]
        warning = next(event for event in scenario.events() if event.reason == "ForgottenAckSuspected")
        assert warning.type == "Warning"
        assert scenario.operator.metric("workfleet_pool_forgotten_ack_suspected") == 1
        for method in taken:
            channel.basic_ack(method.delivery_tag)
        connection.process_data_events(time_limit=0.1)
    wait_until(lambda: scenario.condition("ForgottenAckSuspected").get("status") == "False", timeout=60,
               message="ForgottenAckSuspected=False after the acks")
    assert "AcksResumed" in scenario.event_reasons()
    assert scenario.operator.metric("workfleet_pool_forgotten_ack_suspected") == 0


def test_operator_killed_mid_scale_converges_after_restart(scenario):
    """Scaling one replica per decision, the operator is killed -9 right after its
    first write; a new one carries on from the replicas it finds and reaches the same
    count, never above maxReplicas."""
    scenario.prepare(1, dot_seconds=0.2)
    scenario.apply_pool(policy={"messagesPerReplica": 5, "scaleUpStep": 1, "scaleDownStabilizationSeconds": 600})
    operator = scenario.start_operator()
    publish(scenario.broker.amqp_url, scenario.queue, ["task ...."] * 80)
    wait_until(lambda: scenario.replicas() >= 2, timeout=60, message="the first scale-up")
    operator.kill()
    at_kill = scenario.replicas()
    assert at_kill < 4
    scenario.start_operator()
    scenario.wait_for_replicas(4)
    wait_until(lambda: scenario.status().get("lastDecision", {}).get("to") == 4, timeout=15, message="status after the scale")
    # The killed operator may have died between its write and its Event; the new one
    # starts from the replicas it reads and steps on from there, one at a time.
    ups = {event.message.split(" replicas")[0] for event in scenario.events() if event.reason == "ScaledUp"}
    assert {f"{count} -> {count + 1}" for count in range(at_kill, 4)} <= ups, ups
    assert all(int(change.split(" -> ")[1]) - int(change.split(" -> ")[0]) == 1 for change in ups), ups


def test_a_stale_scale_write_is_refused_with_409_and_retried(controlplane, namespace):
    """The real API server refuses a /scale write carrying an old resourceVersion (409).
    set_replicas reads the scale again: if only something else changed, it writes the
    same absolute count again; if the replicas changed, it leaves them to the newer
    writer and says so, so the count is decided again from what is there."""
    import pytest
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from workfleet_operator.kube_api import KubeApi, ReplicasChanged

    controlplane.kubectl("create", "deployment", "web", "--image=example.invalid/web:1", "--replicas=1", "-n", namespace)
    api_client = config.new_client_from_config(str(controlplane.kubeconfig))
    kube = KubeApi(api_client)

    stale = kube.read_scale(namespace, "Deployment", "web")
    controlplane.kubectl("annotate", "deployment", "web", "touched=yes", "-n", namespace)
    with pytest.raises(ApiException) as refused:
        client.AppsV1Api(api_client).replace_namespaced_deployment_scale("web", namespace, {
            "metadata": {"name": "web", "namespace": namespace, "resourceVersion": stale.resource_version},
            "spec": {"replicas": 3}})
    assert refused.value.status == 409, "the fault is real: the API server refuses the stale write"
    assert kube.set_replicas(namespace, "Deployment", "web", 3, stale).replicas == 3
    assert kube.read_scale(namespace, "Deployment", "web").replicas == 3

    stale = kube.read_scale(namespace, "Deployment", "web")
    controlplane.kubectl("scale", "deployment", "web", "--replicas=2", "-n", namespace)
    with pytest.raises(ReplicasChanged):
        kube.set_replicas(namespace, "Deployment", "web", 5, stale)
    assert kube.read_scale(namespace, "Deployment", "web").replicas == 2


def test_two_pools_on_one_broker_share_one_stats_request_per_poll(scenario):
    """Two pools on one vhost, both polling every second: the management API sees one
    queue-stats request per poll, not one per pool."""
    from tests.support.management_proxy import ManagementProxy

    proxy = ManagementProxy(scenario.broker.management_url)
    try:
        scenario.prepare(1)
        other_queue = scenario.queue + "-b"
        from tests.support.broker import declare
        from workfleet_common.topology import Topology

        declare(scenario.broker.amqp_url, Topology(other_queue))
        scenario.apply_pool(management_url=proxy.url, paused=True)
        scenario.apply_pool(management_url=proxy.url, paused=True, name="other", queue=other_queue)
        scenario.start_operator()
        for name in ("workers", "other"):
            wait_until(lambda: scenario.condition("MetricsAvailable", name).get("status") == "True", timeout=60,
                       message=f"{name} reading stats")

        def polls() -> tuple[float, float]:
            return (scenario.operator.metric("workfleet_pool_polls_total", pool="workers"),
                    scenario.operator.metric("workfleet_pool_polls_total", pool="other"))

        start_polls, start_requests = polls(), proxy.queue_requests()
        wait_until(lambda: min(polls()[0] - start_polls[0], polls()[1] - start_polls[1]) >= 8, timeout=60, message="8 polls each")
        end_polls, end_requests = polls(), proxy.queue_requests()
        pool_polls = (end_polls[0] - start_polls[0]) + (end_polls[1] - start_polls[1])
        requests = end_requests - start_requests
        assert pool_polls >= 16
        assert requests <= pool_polls / 2 + 2, f"{requests} stats requests for {pool_polls} pool polls"
        assert scenario.condition("ScalingActive")["reason"] == "Paused"
    finally:
        proxy.close()


def test_an_operator_scales_only_the_pools_its_selector_picks(scenario):
    """Two releases in one namespace each run an operator with --pool-selector for their own
    release: this one scales pool "workers" (release a), leaves "other" (release b) alone, and lets
    "workers" go when its label changes to b."""
    scenario.prepare(1)
    scenario.apply_pool(paused=True, labels={"app.kubernetes.io/instance": "a"})
    scenario.apply_pool(paused=True, name="other", labels={"app.kubernetes.io/instance": "b"})
    operator = scenario.start_operator("--pool-selector", "app.kubernetes.io/instance=a")
    wait_until(lambda: scenario.condition("MetricsAvailable").get("status") == "True", timeout=60, message="workers reading stats")
    # Both pools came in the same initial listing; three polls of one mean the other was passed over.
    wait_until(lambda: operator.metric("workfleet_pool_polls_total", pool="workers") >= 3, timeout=60, message="3 polls")
    assert operator.metric("workfleet_operator_pools") == 1
    assert scenario.status("other") == {}, "the other release's operator writes that one"
    with pytest.raises(KeyError):
        operator.metric("workfleet_pool_polls_total", pool="other")

    scenario.controlplane.kubectl("label", "workerpool", "workers", "app.kubernetes.io/instance=b", "--overwrite",
                                  "-n", scenario.namespace)
    wait_until(lambda: operator.metric("workfleet_operator_pools") == 0, timeout=30, message="the relabelled pool let go")


@pytest.fixture(scope="module")
def tls_broker():
    """A broker whose management API is served over https, with the monitoring user."""
    from tests.cluster.operator_scenario import MONITOR_PASSWORD, MONITOR_USER
    from tests.support.tls_broker import tls_rabbit_node

    with tls_rabbit_node() as broker:
        broker.node.ctl("add_user", MONITOR_USER, MONITOR_PASSWORD)
        broker.node.ctl("set_user_tags", MONITOR_USER, "monitoring")
        broker.node.ctl("set_permissions", "-p", "/", MONITOR_USER, "^$", "^$", "^$")
        yield broker


def test_the_operator_verifies_an_https_broker_against_the_pools_ca(scenario, tls_broker):
    """Over https the operator checks the broker's certificate: against the system's CAs it fails
    and says why; with broker.tls.caSecretRef it reads the stats; a missing CA Secret is named."""
    from tests.support.broker import declare
    from workfleet_common.topology import Topology

    scenario.prepare(1)
    declare(tls_broker.node.amqp_url, Topology(scenario.queue))
    https = tls_broker.management_url
    scenario.apply_pool(management_url=https, paused=True)
    scenario.start_operator()
    wait_until(lambda: "certificate verify failed" in scenario.condition("MetricsAvailable").get("message", ""),
               timeout=60, message="the verification failure in the MetricsAvailable condition")

    scenario.apply_pool(management_url=https, paused=True, broker_tls={"caSecretRef": {"name": "broker-ca"}})
    wait_until(lambda: "broker-ca" in scenario.condition("MetricsAvailable").get("message", ""), timeout=60,
               message=f"the missing CA Secret named ({scenario.log_hint()})")
    assert scenario.condition("MetricsAvailable")["reason"] == "CASecretMissing"

    scenario.controlplane.kubectl("create", "secret", "generic", "broker-ca", f"--from-file=ca.crt={tls_broker.ca}",
                                  "-n", scenario.namespace)
    wait_until(lambda: scenario.condition("MetricsAvailable").get("status") == "True", timeout=60,
               message="stats read over https once the CA is there")
