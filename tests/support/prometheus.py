"""A private Prometheus server (Debian 13's package, from `make tools`) scraping every second, and
the HTTP API the tests read any Prometheus through.

Targets come from file_sd files the test rewrites as workers come and go (Prometheus
re-reads them on change), or from scrape configs of the test's own, such as Kubernetes
service discovery. Rule files given at start are evaluated every second, so a
rule that cannot be evaluated shows up in /api/v1/rules with its error.
"""

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.support.broker import wait_until
from tests.support.controlplane import BIN
from workfleet_operator.local.rabbitmq import free_port


class PrometheusAPI:
    def __init__(self, url: str):
        self.url = url

    def _get(self, path: str, **params) -> object:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result: a list of {metric, value}."""
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def label_values(self, label: str, match: str) -> list[str]:
        return self._get(f"/api/v1/label/{label}/values", **{"match[]": match})

    def rules(self) -> list[dict]:
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def targets_up(self, job: str) -> int:
        return sum(1 for target in self._get("/api/v1/targets")["activeTargets"]
                   if target["labels"]["job"] == job and target["health"] == "up")


class PrometheusServer(PrometheusAPI):
    def __init__(self, workdir: Path, jobs: dict[str, dict], rule_files: tuple[Path, ...] = (),
                 scrape_configs: tuple[dict, ...] = ()):
        """jobs: job name -> extra scrape settings (for example honor_labels); each job's
        targets are set with set_targets(). scrape_configs are added as they are."""
        self.workdir = workdir
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self._jobs = jobs
        self._scrape_configs = list(scrape_configs)
        self._rule_files = rule_files
        self.process: subprocess.Popen | None = None

    def _targets_file(self, job: str) -> Path:
        return self.workdir / f"targets-{job}.json"

    def set_targets(self, job: str, targets: dict[str, dict[str, str]]) -> None:
        """targets: "host:port" -> labels for that target."""
        groups = [{"targets": [address], "labels": labels} for address, labels in sorted(targets.items())]
        path = self._targets_file(job)
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(groups))
        staged.replace(path)  # atomic: Prometheus never reads half a file

    def start(self) -> "PrometheusServer":
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self._rule_files],
            "scrape_configs": [
                {"job_name": job, **settings, "file_sd_configs": [{"files": [str(self._targets_file(job))]}]}
                for job, settings in self._jobs.items()
            ] + self._scrape_configs,
        }
        for job in self._jobs:
            if not self._targets_file(job).exists():
                self.set_targets(job, {})
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.workdir / "prometheus.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "prometheus"), f"--config.file={config_path}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout=60, message=f"Prometheus ready (log {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited: {self.log_path.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
