"""Every query of the chart's Grafana dashboard and every alert of its PrometheusRule runs on a
real Prometheus that scrapes the real operator (scaling a pool on the control plane), real
workers and the real broker, and reads series that exist: a metric renamed in code fails here.

Prometheus scrapes loopback addresses, so the labels prometheus-operator would add in a cluster
(namespace, pod, and the release the chart's monitors add) are set on the targets, and the
operator's job is named as its Service would be.
"""

import yaml

from tests.chart.test_render import MONITORING_API, render
from tests.support.broker import publish, wait_until
from tests.support.monitoring_checks import assert_dashboard_and_alerts_read_series
from tests.support.prometheus import PrometheusServer

POISON_TASK = "tests.support.tasks:poison_or_dots"
# Release "wf" with fullnameOverride "wf": the pool is "wf-worker", the operator's Service "wf-operator",
# the broker's "wf-rabbitmq".
POOL = "wf-worker"
OPERATOR_JOB = "wf-operator"
BROKER_JOB = "wf-rabbitmq"
RELEASE = "wf"


def chart_rules(namespace: str, *args: str) -> dict:
    """The chart's alert rules as a Prometheus rule file, rendered for a release "wf" in `namespace`."""
    docs = render("helm", "--namespace", namespace, "--set", "worker.task=a.b:c", "--set", "monitoring.enabled=true",
                  MONITORING_API, *args)
    [rule] = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    return {"groups": rule["spec"]["groups"]}


def test_every_dashboard_query_and_alert_reads_real_series(scenario, tmp_path):
    namespace = scenario.namespace
    scenario.prepare(1, "--task", POISON_TASK, "--max-attempts", "2", dot_seconds=0.1)
    operator = scenario.start_operator()
    rules = chart_rules(namespace, "--set", "fullnameOverride=wf", "--set", f"worker.queue={scenario.queue}")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(tmp_path / "prometheus", {
        # The operator's namespace label is the pool's; the chart's ServiceMonitor honours it too.
        OPERATOR_JOB: {"honor_labels": True}, "workers": {}, BROKER_JOB: {},
    }, rule_files=(rules_file,)).start()
    try:
        release = {"namespace": namespace, "release": RELEASE}
        prometheus.set_targets(OPERATOR_JOB, {f"127.0.0.1:{operator.metrics_port}": release})
        prometheus.set_targets(BROKER_JOB, {f"127.0.0.1:{scenario.broker.prometheus_port}": release})
        # Scraping before the pool exists, so the scale-up below is seen as a counter going up.
        wait_until(lambda: prometheus.targets_up(OPERATOR_JOB) == 1, message="operator scraped")
        scenario.apply_pool(name=POOL, maxReplicas=3, policy={"messagesPerReplica": 5})

        def follow_workers() -> None:
            prometheus.set_targets("workers", {
                f"127.0.0.1:{worker.metrics_port}": {**release, "pod": name}
                for name, worker in scenario.standins.workers.items() if name in scenario.standins.running})

        # A backlog the operator scales up for, a poison task that is retried and dead-lettered.
        publish(scenario.broker.amqp_url, scenario.queue, ["poison pill"] + ["...."] * 40)

        assert_dashboard_and_alerts_read_series(prometheus, rules, namespace, RELEASE, follow_workers,
                                                f"(operator log {scenario.log_hint()})")
    finally:
        prometheus.close()
