"""A real one-node Kubernetes cluster on this machine: the control plane of
tests/support/controlplane.py plus containerd, the kubelet, kube-scheduler, kube-proxy
(iptables) and CoreDNS, with pods on a bridge in 198.18.0.0/16 and Services in
198.19.0.0/16, a default StorageClass of local volumes, and images imported from OCI
archives (there is no registry).

Everything lives in one folder (FOLDER) and what it changes on the host is recorded there
(tests/support/host_state.py), so stopping puts the host back, and a run that died is
cleaned up by the next start. One cluster per machine: two kube-proxies would fight.
Needs root.

By hand (`make cluster`): starts one, prints the kubeconfig and waits for Ctrl-C or
SIGTERM, then stops everything it started.
"""

import fcntl
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.support import host_state, node_config
from tests.support.broker import wait_until
from tests.support.certificates import write_client_certificate, write_serving_certificate
from tests.support.controlplane import ADMIN_CONTEXT, BIN, ControlPlane, ControlPlaneError, serve_until_stopped
from tests.support.oci_images import import_image, single_binary_image
from workfleet_operator.local.rabbitmq import free_port

FOLDER = Path("/var/tmp/workfleet-cluster")
LOCK = Path("/var/tmp/workfleet-cluster.lock")
PAUSE_SOURCE = "build/pause/linux/pause.c"  # in the k8s.io/kubernetes module
BUSYBOX_IMAGE = "workfleet.local/busybox:latest"
VOLUMES = 6
VOLUME_SIZE = "10Gi"
NODE_TOOLS = ("kubelet", "kube-scheduler", "kube-proxy", "coredns", "pause")


class NodeCluster(ControlPlane):
    def __init__(self):
        if os.geteuid() != 0:
            raise ControlPlaneError("a node cluster needs root (containerd, the kubelet, iptables)")
        missing = [tool for tool in NODE_TOOLS if not (BIN / tool).exists()]
        if missing:
            raise ControlPlaneError(f"{', '.join(missing)} not built: run `make tools`")
        # One cluster per machine: the lock is held while one runs and dies with its process.
        self._lock = open(LOCK, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ControlPlaneError(f"another one-node cluster is running on this machine (lock {LOCK})") from None
        clean_up_after_dead_run()
        FOLDER.mkdir(parents=True)
        super().__init__(FOLDER / "control-plane")
        self.dir.mkdir()
        self.host = node_config.GATEWAY
        self.containerd_dir = FOLDER / "containerd"
        self.containerd_socket = self.containerd_dir / "containerd.sock"

    # -- starting ------------------------------------------------------------------------

    def start(self) -> None:
        try:
            host_state.record(FOLDER)
            self._make_bridge()
            super().start()  # PKI, etcd, API server on the bridge address, controller manager
            self._start_containerd()
            self._start_node()
            self._apply(node_config.dns_objects() + node_config.storage_objects(self._volume_dirs(), VOLUME_SIZE))
            self._wait_node_ready()
        except BaseException:
            self.stop()  # the folder stays, with the logs; the next start removes it
            self._lock.close()
            raise

    def _spawn(self, name: str, args: list[str], binary: str | None = None) -> subprocess.Popen:
        process = super()._spawn(name, args, binary)
        host_state.add_pid(FOLDER, name, process.pid)
        return process

    def _make_bridge(self) -> None:
        """Made here, before the CNI plugin would make it, so that the API server and CoreDNS
        can listen on its address; the plugin takes it over for the pods."""
        for command in (["ip", "link", "add", node_config.BRIDGE, "type", "bridge"],
                        ["ip", "addr", "add", f"{node_config.GATEWAY}/16", "dev", node_config.BRIDGE],
                        ["ip", "link", "set", node_config.BRIDGE, "up"]):
            subprocess.run(command, check=True, capture_output=True)
        # Pod-to-Service traffic crosses the bridge; kube-proxy's rules must see it.
        Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def _apiserver_args(self) -> list[str]:
        replaced = ("--endpoint-reconciler-type", "--authorization-mode")
        client_cert, client_key = write_client_certificate(self.pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
        return [arg for arg in super()._apiserver_args() if not arg.startswith(replaced)] + [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={client_cert}",
            f"--kubelet-client-key={client_key}",
            f"--kubelet-certificate-authority={self.pki['ca_cert']}",
            "--kubelet-preferred-address-types=Hostname,InternalIP",
        ]

    def _component_kubeconfig(self, name: str, common_name: str, organization: str | None = None) -> Path:
        cert, key = write_client_certificate(self.pki, name, common_name, organization)
        path = FOLDER / f"{name}.kubeconfig"
        path.write_text(node_config.kubeconfig(self.server, self.pki["ca_cert"], cert, key))
        return path

    def _start_containerd(self) -> None:
        (self.containerd_dir / "net.d").mkdir(parents=True)
        (self.containerd_dir / "net.d" / "10-workfleet.conflist").write_text(node_config.cni_conflist(FOLDER / "ipam"))
        config = self.containerd_dir / "config.toml"
        config.write_text(node_config.containerd_config(self.containerd_dir))
        self._spawn("containerd", ["--config", str(config)], binary=shutil.which("containerd"))
        wait_until(lambda: _accepts(self.containerd_socket), timeout=60, message="containerd's socket")
        pause = single_binary_image(node_config.PAUSE_IMAGE, BIN / "pause", ["/pause"])
        busybox = single_binary_image(BUSYBOX_IMAGE, Path(shutil.which("busybox")), ["/bin/busybox"])
        for archive in (pause, busybox):
            import_image(self.containerd_socket, archive)

    def _start_node(self) -> None:
        kubelet_dir = FOLDER / "kubelet"
        kubelet_dir.mkdir()
        serving_cert, serving_key = write_serving_certificate(
            self.pki, "kubelet-serving", [node_config.NODE_NAME], ["127.0.0.1", node_config.GATEWAY])
        config = FOLDER / "kubelet.yaml"
        config.write_text(node_config.kubelet_config(kubelet_dir, self.pki["ca_cert"], serving_cert, serving_key))
        self._spawn("kubelet", [
            f"--config={config}",
            f"--kubeconfig={self._component_kubeconfig('kubelet', 'system:node:' + node_config.NODE_NAME, 'system:nodes')}",
            f"--container-runtime-endpoint=unix://{self.containerd_socket}",
            f"--root-dir={kubelet_dir}",
            f"--hostname-override={node_config.NODE_NAME}",
            f"--node-ip={node_config.GATEWAY}",
        ])
        self._spawn("kube-scheduler", [
            f"--kubeconfig={self._component_kubeconfig('scheduler', 'system:kube-scheduler')}",
            "--leader-elect=false", "--secure-port=0",
        ])
        proxy_config = FOLDER / "kube-proxy.yaml"
        proxy_config.write_text(node_config.kube_proxy_config(
            self._component_kubeconfig("kube-proxy", "system:kube-proxy"), free_port(), free_port()))
        self._spawn("kube-proxy", [f"--config={proxy_config}"])
        corefile = FOLDER / "Corefile"
        # CoreDNS reads Services and EndpointSlices as the admin: a test cluster's shortcut.
        corefile.write_text(node_config.corefile(self.kubeconfig, ADMIN_CONTEXT))
        self._spawn("coredns", ["-conf", str(corefile)])

    def _volume_dirs(self) -> list[Path]:
        dirs = [FOLDER / "volumes" / f"local-{index}" for index in range(VOLUMES)]
        for path in dirs:
            path.mkdir(parents=True)
        return dirs

    def _apply(self, objects: list[dict]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def _wait_node_ready(self) -> None:
        def ready() -> bool:
            self._check_processes()
            node = self.kubectl("get", "node", node_config.NODE_NAME, "-o", "json", check=False)
            if node.returncode != 0:
                return False
            conditions = json.loads(node.stdout)["status"].get("conditions", [])
            return any(item["type"] == "Ready" and item["status"] == "True" for item in conditions)

        wait_until(ready, timeout=120, interval=0.2, message=f"node Ready (logs in {self.dir} and {FOLDER})")

    def _check_processes(self) -> None:
        for name, process in self._processes:
            if process.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {process.returncode}; see {self.dir / (name + '.log')}")

    def import_images(self, archives: list[Path]) -> None:
        for archive in archives:
            import_image(self.containerd_socket, archive)

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Every process, then the host. Containers' shims outlive containerd; restore() kills
        them and whatever still runs in the pods' cgroups."""
        super().stop()
        problems = host_state.restore(FOLDER, self.containerd_socket, node_config.BRIDGE, BIN / "kube-proxy")
        if problems:
            print("cluster: could not undo: " + "; ".join(problems))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(FOLDER, ignore_errors=True)
        self._lock.close()  # releases it


def running_containerd() -> Path | None:
    """The socket of the one-node cluster's containerd, if one is running on this machine."""
    socket_path = FOLDER / "containerd" / "containerd.sock"
    return socket_path if _accepts(socket_path) else None


def clean_up_after_dead_run() -> None:
    if FOLDER.exists():
        host_state.restore(FOLDER, FOLDER / "containerd" / "containerd.sock", node_config.BRIDGE, BIN / "kube-proxy")
        shutil.rmtree(FOLDER)


def _accepts(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as client:
        try:
            client.connect(str(path))
            return True
        except OSError:
            return False


def main() -> int:
    return serve_until_stopped(NodeCluster, "one-node cluster",
                               "stopped; every process it started has exited and the host is as it was")


if __name__ == "__main__":
    raise SystemExit(main())
