"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Built by `make tools` into .cache/bin. Certificates and the service-account key are
made for each run; authorization is RBAC; the admin credential is a client
certificate in the group system:masters. Every default controller runs, so a
Deployment gets a ReplicaSet and Pods and a StatefulSet its Pods and volume claims;
with no scheduler or kubelet, Pods stay Pending.

By hand (`make controlplane`): starts one, prints the kubeconfig and waits for
Ctrl-C or SIGTERM, then stops every process it started.
"""

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from tests.support.certificates import write_control_plane_pki
from workfleet_operator.local.rabbitmq import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".cache" / "bin"
KUBERNETES_VERSION = "v1.37.2"
START_TIMEOUT_S = 120.0
# Every controller that is on by default (StatefulSets, volume binding, disruption budgets, ...).
CONTROLLERS = "*"
ADMIN_CONTEXT = "workfleet-test"


class ControlPlaneError(RuntimeError):
    pass


class ControlPlane:
    def __init__(self, base_dir: Path | None = None):
        missing = [tool for tool in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl") if not (BIN / tool).exists()]
        if missing:
            raise ControlPlaneError(f"{', '.join(missing)} not built: run `make tools`")
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix="workfleet-controlplane-"))
        self.api_port = free_port()
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.kubeconfig = self.dir / "kubeconfig"
        self.host = "127.0.0.1"  # where the API server listens
        self._processes: list[tuple[str, subprocess.Popen]] = []
        self.pki: dict[str, Path] = {}

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.api_port}"

    def start(self) -> None:
        try:
            self.pki = write_control_plane_pki(self.dir / "pki")
            self._write_kubeconfig()
            self._spawn("etcd", self._etcd_args())
            self._spawn("kube-apiserver", self._apiserver_args())
            self._wait_ready()
            self._spawn("kube-controller-manager", self._controller_manager_args())
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str], binary: str | None = None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        process = subprocess.Popen([binary or str(BIN / name), *args], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        log.close()
        self._processes.append((name, process))
        return process

    def _etcd_args(self) -> list[str]:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            "--name=default",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--log-level=warn",
            # A test cluster lives for minutes; fsync would only slow the tests down.
            "--unsafe-no-fsync",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            # The "kubernetes" Service endpoints may not point at loopback; nothing needs them here.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={pki['server_cert']}",
            f"--tls-private-key-file={pki['server_key']}",
            f"--client-ca-file={pki['ca_cert']}",
            f"--service-account-key-file={pki['sa_pub']}",
            f"--service-account-signing-key-file={pki['sa_key']}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=198.19.0.0/16",  # only this machine's test ranges, never 10/8
            f"--cert-dir={self.dir / 'apiserver-certs'}",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={self.pki['sa_key']}",
            f"--root-ca-file={self.pki['ca_cert']}",
            "--leader-elect=false",
            "--secure-port=0",
        ]

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "workfleet-test", "cluster": {"server": self.server, "certificate-authority": str(self.pki["ca_cert"])}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(self.pki["admin_cert"]), "client-key": str(self.pki["admin_key"])}}],
            "contexts": [{"name": ADMIN_CONTEXT, "context": {"cluster": "workfleet-test", "user": "admin"}}],
            "current-context": ADMIN_CONTEXT,
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is valid YAML

    def get(self, path: str) -> dict:
        """GET an API path as the admin."""
        context = ssl.create_default_context(cafile=str(self.pki["ca_cert"]))
        context.load_cert_chain(str(self.pki["admin_cert"]), str(self.pki["admin_key"]))
        with urllib.request.urlopen(self.server + path, context=context, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body.startswith(b"{") else {"text": body.decode()}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise ControlPlaneError(f"{name} exited with {process.returncode}; see {self.dir / (name + '.log')}")
            try:
                if self.get("/readyz").get("text", "").strip() == "ok":
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise ControlPlaneError(f"kube-apiserver not ready in {START_TIMEOUT_S:.0f}s; see {self.dir}")

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    @contextlib.contextmanager
    def temporary_namespace(self, prefix: str, *labels: str):
        """A fresh namespace (with `labels`, as "key=value"), deleted afterwards without waiting."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        if labels:
            self.kubectl("label", "namespace", name, *labels)
        try:
            yield name
        finally:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def stop(self) -> None:
        """Stop every process this control plane started, newest first, by PID."""
        for _name, process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._processes.clear()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "ControlPlane":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def serve_until_stopped(make_cluster, what: str, stopped: str) -> int:
    """Start a cluster, print how to reach and stop it, and wait for Ctrl-C or SIGTERM."""
    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.append(True))
    with make_cluster() as cluster:
        print(f"{what} {KUBERNETES_VERSION} at {cluster.server}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"kubectl: {BIN / 'kubectl'}; stop with Ctrl-C or: kill {os.getpid()}", flush=True)
        while not stop:
            time.sleep(0.5)
    print(stopped)
    return 0


def main() -> int:
    return serve_until_stopped(ControlPlane, "control plane", "stopped; every process it started has exited")


if __name__ == "__main__":
    sys.exit(main())
