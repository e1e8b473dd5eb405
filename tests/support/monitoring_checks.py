"""Whether the chart's Grafana dashboard and alert rules work on a running Prometheus: every query
returns series, every alert is evaluated over metrics that exist. Used wherever a real fleet is
scraped: operator scenarios, the one-node cluster and `workfleet up --prometheus`."""

import json
import re
import time
from pathlib import Path

from tests.support.prometheus import PrometheusAPI

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "workfleet" / "files" / "dashboards" / "workfleet.json"
METRIC_NAME = re.compile(r"\b(workfleet_[a-z_]+|rabbitmq_[a-z_]+|up)\b")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_queries(board: dict) -> dict[str, str]:
    """"panel title / refId" -> expr, for every target of every panel."""
    return {f"{panel['title']} / {target['refId']}": target["expr"]
            for panel in board["panels"] for target in panel.get("targets", [])}


def filled_in(expr: str, namespace: str, release: str) -> str:
    """What Grafana sends with this namespace and release chosen and "All" pools and queues."""
    for variable, value in (("$__rate_interval", "5m"), ("$namespace", namespace), ("$release", release),
                            ("$pool", ".*"), ("$queue", ".*")):
        expr = expr.replace(variable, value)
    return expr


def assert_dashboard_and_alerts_read_series(prometheus: PrometheusAPI, rules: dict, namespace: str, release: str,
                                            each_try=lambda: None, hint: str = "") -> None:
    """Every dashboard query returns series (waiting up to two minutes, calling each_try every
    second), every variable has values, and every alert is evaluated without error over
    metrics that exist."""
    board = dashboard()
    missing = panel_queries(board)
    deadline = time.monotonic() + 120
    while missing and time.monotonic() < deadline:
        each_try()
        missing = {name: expr for name, expr in missing.items() if not prometheus.query(filled_in(expr, namespace, release))}
        time.sleep(1)
    assert not missing, f"dashboard queries with no series: {missing} {hint}"

    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]).groups()
            assert prometheus.label_values(label, filled_in(selector, namespace, release)), variable["name"]

    alerts = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    evaluated = {rule["name"]: rule for rule in prometheus.rules()}
    assert set(evaluated) == set(alerts)
    for name, expr in alerts.items():
        assert evaluated[name]["health"] == "ok", (name, evaluated[name].get("lastError"))
        for metric in set(METRIC_NAME.findall(expr)):
            assert prometheus.query(f'count({{__name__="{metric}",namespace="{namespace}",release="{release}"}})'), (name, metric)
