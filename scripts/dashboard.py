"""Write the chart's Grafana dashboard from code, with Grafana's own SDK (grafana-foundation-sdk).

    .venv/bin/python scripts/dashboard.py [--check]

The JSON goes to charts/workfleet/files/dashboards/workfleet.json, which the chart ships as a
ConfigMap for Grafana's dashboard sidecar. With --check, exit 1 if that file is not what this
would write (the test suite runs it). Every query here is run against a real Prometheus by
tests/cluster/test_dashboard_queries.py, so a metric renamed in code breaks a test, not a panel.
"""

import itertools
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle, StackingMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "charts" / "workfleet" / "files" / "dashboards" / "workfleet.json"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Series selectors for the chosen namespace and release (the label the chart's monitors add): the
# operator's per-pool series, the workers' per-queue ones, the broker's.
RELEASE = 'namespace="$namespace",release="$release"'
POOL = RELEASE + ',pool=~"$pool"'
WORKERS = RELEASE + ',queue=~"$queue"'
BROKER = RELEASE
# A metric both the operator and every worker export, so the namespace list works with autoscaling off.
ANY_WORKFLEET = '{__name__=~"workfleet_pool_messages_ready|workfleet_worker_connected"'


def query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)


def rate(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def graph(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .height(8).span(8).fill_opacity(10))
    for ref_id, target in zip("ABCDEFGH", queries):
        panel.with_target(target.ref_id(ref_id))
    return panel


def variables() -> list:
    def label_values(name: str, label: str, selector: str) -> dashboard.QueryVariable:
        return (dashboard.QueryVariable(name).label(label).datasource(DATASOURCE)
                .query(f"label_values({selector}, {name})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(VariableSort.ALPHABETICAL_ASC))

    return [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_values("namespace", "Namespace", ANY_WORKFLEET + "}"),
        label_values("release", "Release", ANY_WORKFLEET + ',namespace="$namespace"}'),
        label_values("pool", "WorkerPool", f"workfleet_pool_messages_ready{{{RELEASE}}}")
        .multi(True).include_all(True).all_value(".*"),
        label_values("queue", "Queue", ANY_WORKFLEET + f",{RELEASE}}}")
        .multi(True).include_all(True).all_value(".*"),
    ]


def rows() -> list[tuple[str, list]]:
    per_second = "Per second, over Grafana's rate interval."
    return [
        ("Backlog", [
            graph("Backlog", "Messages waiting for a worker (ready) and delivered but not yet acked (unacked), "
                  "as the operator last read them; and failed messages waiting out their retry delay, by "
                  "delay (not backlog: the operator does not scale for them).", "short",
                  query(f"sum by (pool) (workfleet_pool_messages_ready{{{POOL}}})", "{{pool}} ready"),
                  query(f"sum by (pool) (workfleet_pool_messages_unacked{{{POOL}}})", "{{pool}} unacked"),
                  query(f"sum by (pool, delay) (workfleet_pool_messages_waiting_retry{{{POOL}}})",
                        "{{pool}} waiting to retry {{delay}}")),
            graph("Consumers", "Consumers connected to the queue: one per worker.", "short",
                  query(f"sum by (pool) (workfleet_pool_consumers{{{POOL}}})", "{{pool}}")),
            stat.Panel().title("Forgotten ack suspected").datasource(DATASOURCE).height(8).span(8)
            .description("1 while messages stay unacked with consumers connected and no ack arrives "
                         "for the pool's forgottenAck window.")
            .with_target(query(f"max by (pool) (workfleet_pool_forgotten_ack_suspected{{{POOL}}})", "{{pool}}")
                         .ref_id("A")),
        ]),
        ("Throughput", [
            graph("Messages", f"The queue's publishes, deliveries, acks and redeliveries, from the broker's counters. {per_second}",
                  "ops",
                  query(rate("workfleet_pool_messages_published_total", POOL, "pool"), "{{pool}} published"),
                  query(rate("workfleet_pool_messages_delivered_total", POOL, "pool"), "{{pool}} delivered"),
                  query(rate("workfleet_pool_messages_acked_total", POOL, "pool"), "{{pool}} acked"),
                  query(rate("workfleet_pool_messages_redelivered_total", POOL, "pool"), "{{pool}} redelivered")),
            graph("Redelivery ratio", "Redeliveries per delivery: workers dying or stopped while holding messages.",
                  "percentunit",
                  query(f"{rate('workfleet_pool_messages_redelivered_total', POOL, 'pool')}"
                        f" / {rate('workfleet_pool_messages_delivered_total', POOL, 'pool')}", "{{pool}}")),
            graph("Dead-lettered", f"Messages the workers sent to the dead-letter queue, by reason. {per_second}", "ops",
                  query(rate("workfleet_worker_messages_dead_lettered_total", WORKERS, "queue, reason"),
                        "{{queue}} {{reason}}")),
        ]),
        ("Tasks", [
            graph("Task duration", "Time in the task, 50th and 95th percentile, by what became of the message "
                  "(ack, retry, dead_letter, requeue).", "s",
                  *(query(f"histogram_quantile({q}, sum by (outcome, le) (rate("
                          f"workfleet_worker_task_duration_seconds_bucket{{{WORKERS}}}[$__rate_interval])))",
                          f"p{round(q * 100)} {{{{outcome}}}}") for q in (0.5, 0.95))),
            graph("Tasks by outcome", f"Tasks finished, by what became of the message. {per_second}", "ops",
                  query(rate("workfleet_worker_task_duration_seconds_count", WORKERS, "outcome"), "{{outcome}}")),
            graph("Oldest in-flight message", "Per worker, how long the oldest unacked delivery has been held; "
                  "near rabbitmq.longestTaskSeconds the broker's consumer timeout is close.", "s",
                  query(f"max by (pod) (workfleet_worker_oldest_in_flight_age_seconds{{{WORKERS}}})", "{{pod}}")),
        ]),
        ("Scaling", [
            graph("Replicas", "What the operator asked for (desired), what the workers' Deployment had (current), "
                  "and the pool's bounds.", "short",
                  query(f"sum by (pool) (workfleet_pool_replicas_desired{{{POOL}}})", "{{pool}} desired"),
                  query(f"sum by (pool) (workfleet_pool_replicas_current{{{POOL}}})", "{{pool}} current"),
                  query(f"sum by (pool) (workfleet_pool_replicas_min{{{POOL}}})", "{{pool}} min"),
                  query(f"sum by (pool) (workfleet_pool_replicas_max{{{POOL}}})", "{{pool}} max")),
            graph("Scaling decisions", "Replica changes made, by direction and the reason the operator gave.", "short",
                  query(f"sum by (pool, direction, reason) (increase(workfleet_pool_scaling_decisions_total{{{POOL}}}"
                        f"[$__rate_interval])) > 0", "{{pool}} {{direction}} {{reason}}"))
            .draw_style(GraphDrawStyle.BARS).stacking(StackingConfig().mode(StackingMode.NORMAL)),
            graph("Stats errors", f"Polls that could not read the queue's stats, by kind; the pool then holds "
                  f"its count or its fallback. {per_second}", "ops",
                  query(rate("workfleet_pool_stats_errors_total", POOL, "pool, kind"), "{{pool}} {{kind}}")),
        ]),
        ("Broker", [
            graph("Broker memory", "Each node's resident memory and the high watermark at which it blocks publishers.",
                  "bytes",
                  query(f"sum by (instance) (rabbitmq_process_resident_memory_bytes{{{BROKER}}})", "{{instance}} used"),
                  query(f"sum by (instance) (rabbitmq_resident_memory_limit_bytes{{{BROKER}}})", "{{instance}} limit")),
            graph("Broker disk free", "Each node's free disk and the limit below which it blocks publishers.", "bytes",
                  query(f"sum by (instance) (rabbitmq_disk_space_available_bytes{{{BROKER}}})", "{{instance}} free"),
                  query(f"sum by (instance) (rabbitmq_disk_space_available_limit_bytes{{{BROKER}}})",
                        "{{instance}} limit")),
            graph("Broker connections", "AMQP connections per node: workers, producers and the operator.", "short",
                  query(f"sum by (instance) (rabbitmq_connections{{{BROKER}}})", "{{instance}}")),
        ]),
    ]


def build() -> dict:
    board = (dashboard.Dashboard("workfleet").uid("workfleet").tags(["workfleet", "rabbitmq"])
             .description("Backlog, throughput, tasks and scaling of workfleet's workers, and their broker.")
             .time("now-1h", "now").refresh("30s").timezone("browser").editable()
             .variables(variables()))
    ids = itertools.count(1)
    for title, panels in rows():
        board.with_row(dashboard.Row(title).id(next(ids)))
        for panel in panels:
            board.with_panel(panel.id(next(ids)))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not DASHBOARD.exists() or DASHBOARD.read_text() != text:
            print(f"{DASHBOARD.relative_to(ROOT)} is out of date: run scripts/dashboard.py", file=sys.stderr)
            return 1
        return 0
    DASHBOARD.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
