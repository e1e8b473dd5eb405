"""The chart's alerts pass promtool: the rules are valid, and each alert fires in a case
where it should and stays quiet in one where it should not (tests/chart/alerts)."""

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.chart.test_render import CHART, MONITORING_API, ROOT, render
from tests.support.controlplane import BIN

ALERT_TESTS = Path(__file__).parent / "alerts" / "workfleet_test.yaml"
BROKER_ALERTS = {"WorkfleetBrokerNodeDown", "WorkfleetBrokerMemoryAlarm", "WorkfleetBrokerDiskAlarm",
                 "WorkfleetBrokerFileDescriptorsNearLimit"}


def rendered_rules(*args: str) -> dict:
    """The PrometheusRule's groups, as a Prometheus rule file."""
    docs = render("helm", "--set", "worker.task=a.b:c", "--set", "monitoring.enabled=true", MONITORING_API, *args)
    [rule] = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    return {"groups": rule["spec"]["groups"]}


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "promtool"), *args], capture_output=True, text=True, timeout=120)


def alert_names(rules: dict) -> set[str]:
    return {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


def test_rules_pass_promtool_check(tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rendered_rules()))
    checked = promtool("check", "rules", str(rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "13 rules found" in checked.stdout, checked.stdout


def test_every_alert_fires_when_it_should_and_only_then(tmp_path):
    rules = rendered_rules("--set", "rabbitmq.replicas=3")  # three nodes: the quorum alert too
    # promtool compares annotations too; the cases are about when alerts fire, so the
    # descriptions (checked by promtool check rules above) are left out of this copy.
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    tested = promtool("test", "rules", str(tmp_path / ALERT_TESTS.name))
    assert tested.returncode == 0, tested.stdout + tested.stderr

    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    fires = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert alert_names(rules) == fires == quiet


def test_alerts_can_be_disabled_and_labelled():
    rules = rendered_rules("--set", "monitoring.rules.disabled={WorkfleetOperatorDown}",
                           "--set", "monitoring.rules.labels.severity=critical", "--set", "monitoring.rules.labels.team=pay")
    assert "WorkfleetOperatorDown" not in alert_names(rules) and len(alert_names(rules)) == 12
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"] == {"severity": "critical", "team": "pay"}


def test_without_the_operator_only_worker_alerts_remain():
    assert alert_names(rendered_rules("--set", "autoscaling.enabled=false")) == {
        "WorkfleetDeadLettering", "WorkfleetTaskOverLongestTask", *BROKER_ALERTS}


def test_broker_alerts_page_and_link_their_runbook():
    rules = {rule["alert"]: rule for group in rendered_rules("--set", "rabbitmq.replicas=3")["groups"] for rule in group["rules"]}
    runbook = (ROOT / "docs" / "runbooks.md").read_text()
    for name in (*BROKER_ALERTS, "WorkfleetBrokerQuorumLost"):
        url = rules[name]["annotations"]["runbook_url"]
        assert url.startswith("https://github.com/workfleet/workfleet/blob/main/docs/runbooks.md#")
        assert f"## {name}" in runbook and url.endswith("#" + name.lower()), name
    assert rules["WorkfleetBrokerNodeDown"]["labels"]["severity"] == "warning", "one node of three: the queues still work"
    one_node = {rule["alert"]: rule for group in rendered_rules()["groups"] for rule in group["rules"]}
    assert one_node["WorkfleetBrokerNodeDown"]["labels"]["severity"] == "critical"
    assert "WorkfleetBrokerQuorumLost" not in one_node, "one node down is the node-down alert"


def test_nothing_is_rendered_for_prometheus_operator_where_its_api_is_missing():
    docs = render("helm", "-f", str(CHART / "ci" / "monitoring-values.yaml"))
    assert not [doc for doc in docs if doc["apiVersion"].startswith("monitoring.coreos.com/")]
