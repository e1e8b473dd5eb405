"""The scrape jobs prometheus-operator generates for PodMonitors and ServiceMonitors, written out
for a plain Prometheus: Kubernetes service discovery against the test cluster's API server,
kept to the monitor's selector and named port, and labelled as the operator labels targets
(namespace, pod, container, endpoint, service, and its job naming). A test that scrapes the
fleet this way checks that the chart's monitors select its pods, not only that they parse.

Only what the chart's monitors use is translated (matchLabels, one port per endpoint, interval,
honorLabels, relabelings that set a label to a fixed value); anything else is refused, so a new field in the chart cannot be ignored silently.
"""

import re

HANDLED_ENDPOINT_KEYS = {"port", "interval", "honorLabels", "relabelings"}


def _label_meta(prefix: str, label: str) -> str:
    """Kubernetes service discovery's meta label for an object label, sanitized as Prometheus does."""
    return f"__meta_kubernetes_{prefix}_label_{re.sub(r'[^a-zA-Z0-9_]', '_', label)}"


def _keep(source: str, value: str) -> dict:
    return {"source_labels": [source], "regex": re.escape(value), "action": "keep"}


def _copy(source: str, target: str) -> dict:
    return {"source_labels": [source], "target_label": target}


def scrape_configs(monitors: list[dict], api_server: str, tls_config: dict) -> list[dict]:
    """One scrape config per endpoint of each PodMonitor or ServiceMonitor in `monitors`."""
    configs = []
    for monitor in monitors:
        kind, spec = monitor["kind"], monitor["spec"]
        namespace, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
        if set(spec["selector"]) != {"matchLabels"} or "namespaceSelector" in spec or "jobLabel" in spec:
            raise ValueError(f"{kind} {name}: only selector.matchLabels is translated")
        endpoints = spec["podMetricsEndpoints"] if kind == "PodMonitor" else spec["endpoints"]
        for index, endpoint in enumerate(endpoints):
            if set(endpoint) - HANDLED_ENDPOINT_KEYS:
                raise ValueError(f"{kind} {name}: endpoint fields {set(endpoint) - HANDLED_ENDPOINT_KEYS} not translated")
            configs.append(_scrape_config(kind, namespace, name, index, spec["selector"]["matchLabels"], endpoint,
                                          api_server, tls_config))
    return configs


def _scrape_config(kind, namespace, name, index, match_labels, endpoint, api_server, tls_config) -> dict:
    pod_monitor = kind == "PodMonitor"
    owner = "pod" if pod_monitor else "service"
    relabel = [_keep(_label_meta(owner, label), value) for label, value in sorted(match_labels.items())]
    if pod_monitor:
        relabel.append(_keep("__meta_kubernetes_pod_container_port_name", endpoint["port"]))
        # prometheus-operator names a PodMonitor's job after the monitor.
        job = {"target_label": "job", "replacement": f"{namespace}/{name}"}
    else:
        relabel.append(_keep("__meta_kubernetes_endpoint_port_name", endpoint["port"]))
        relabel.append(_copy("__meta_kubernetes_service_name", "service"))
        job = _copy("__meta_kubernetes_service_name", "job")  # a ServiceMonitor's job is the Service's name
    relabel += [
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)", "action": "drop"},
        _copy("__meta_kubernetes_namespace", "namespace"),
        _copy("__meta_kubernetes_pod_name", "pod"),
        _copy("__meta_kubernetes_pod_container_name", "container"),
        {"target_label": "endpoint", "replacement": endpoint["port"]},
        job,
    ]
    # The monitor's own relabelings come after the generated ones, as prometheus-operator puts them.
    for rule in endpoint.get("relabelings", []):
        if set(rule) != {"targetLabel", "replacement"}:
            raise ValueError(f"{kind} {name}: only relabelings that set a fixed value are translated, not {rule}")
        relabel.append({"target_label": rule["targetLabel"], "replacement": rule["replacement"]})
    return {
        "job_name": f"{'podMonitor' if pod_monitor else 'serviceMonitor'}/{namespace}/{name}/{index}",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        **({"scrape_interval": endpoint["interval"]} if "interval" in endpoint else {}),
        "kubernetes_sd_configs": [{
            "role": "pod" if pod_monitor else "endpoints",
            "api_server": api_server,
            "tls_config": tls_config,
            "namespaces": {"names": [namespace]},
        }],
        "relabel_configs": relabel,
    }
