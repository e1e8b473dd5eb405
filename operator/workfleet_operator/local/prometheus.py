"""`workfleet up --prometheus`: a Prometheus on localhost that scrapes the local fleet as the chart's
monitors scrape a cluster's, with the chart's alert rules loaded.

The jobs and labels are the ones prometheus-operator gives a default install (release "workfleet")
in namespace "local": the operator's job is workfleet-operator, the workers carry namespace and pod,
the broker namespace. So the chart's dashboard and alert expressions work on it unchanged.
"""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from workfleet_operator.local.fleet_metrics import NAMESPACE, RELEASE
from workfleet_operator.local.rabbitmq import free_port

OPERATOR_JOB = f"{RELEASE}-operator"
WORKER_JOB = f"{NAMESPACE}/{RELEASE}-worker"  # a PodMonitor's job is named <namespace>/<monitor>
BROKER_JOB = f"{RELEASE}-rabbitmq"
# The queue the rules are rendered for (scripts/local_alert_rules.py); replaced by the fleet's.
QUEUE_PLACEHOLDER = "__queue__"
RULES_FILE = Path(__file__).with_name("alert_rules.yaml")
# `make tools` puts Debian 13's Prometheus in the checkout's cache; an installed one is the fallback.
CHECKOUT_BINARY = Path(__file__).resolve().parents[3] / ".cache" / "bin" / "prometheus"
SCRAPE_SECONDS = 2
READY_TIMEOUT_S = 60


class PrometheusUnavailable(Exception):
    """No Prometheus to run, or it did not start; the message says what to do."""


def prometheus_binary() -> Path:
    if CHECKOUT_BINARY.exists():
        return CHECKOUT_BINARY
    installed = shutil.which("prometheus")
    if installed:
        return Path(installed)
    raise PrometheusUnavailable("--prometheus needs a prometheus binary: run `make tools` in the checkout, "
                                "or install one on PATH (apt install prometheus)")


def alert_rules(queue: str) -> str:
    """The chart's rules with the fleet's queue in its label matchers (a JSON string is a valid
    PromQL string: both escape as Go does)."""
    return RULES_FILE.read_text().replace(json.dumps(QUEUE_PLACEHOLDER), json.dumps(queue))


def scrape_configs(operator_port: int, worker_targets: Path, broker_port: int | None) -> list[dict]:
    local = {"namespace": NAMESPACE, "release": RELEASE}  # as the chart's monitors label a release
    jobs = [
        # The operator labels its series with the pool's namespace; the chart's ServiceMonitor honours them too.
        {"job_name": OPERATOR_JOB, "honor_labels": True,
         "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"], "labels": local}]},
        {"job_name": WORKER_JOB, "file_sd_configs": [{"files": [str(worker_targets)]}]},
    ]
    if broker_port is not None:
        jobs.append({"job_name": BROKER_JOB, "static_configs": [{"targets": [f"127.0.0.1:{broker_port}"], "labels": local}]})
    return jobs


class LocalPrometheus:
    """Started on enter (ready when entered), stopped on exit; its data and log live in `folder`."""

    def __init__(self, folder: Path, queue: str, operator_port: int, worker_targets: Path, broker_port: int | None):
        self.folder = folder
        self.binary = prometheus_binary()
        self.port = free_port()
        self.log_path = folder / "prometheus.log"
        folder.mkdir(parents=True, exist_ok=True)
        rules_path = folder / "alert_rules.yaml"
        rules = alert_rules(queue)
        rules_path.write_text(rules)
        self.rule_count = sum(len(group["rules"]) for group in yaml.safe_load(rules)["groups"])
        self.config_path = folder / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "rule_files": [str(rules_path)],
            "scrape_configs": scrape_configs(operator_port, worker_targets, broker_port),
        }))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalPrometheus":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), f"--config.file={self.config_path}", f"--storage.tsdb.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # the terminal's signals are for `up`, which stops it
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusUnavailable(f"{self.binary} exited with {self.process.returncode}; "
                                            f"its log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise PrometheusUnavailable(f"{self.binary} not ready after {READY_TIMEOUT_S}s; its log: {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
