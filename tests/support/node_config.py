"""The configuration files of the one-node cluster's node components, as pure functions of
its folder and addresses (tests/support/cluster.py writes them). The settings that matter
on this kind of machine are explained where they are set; docs/one-node-cluster.md has
how each was found and the machine they assume."""

import json
from pathlib import Path

# Pods get 198.18.0.0/16 on the bridge; Services 198.19.0.0/16. Both exist only on this machine.
POD_CIDR = "198.18.0.0/16"
GATEWAY = "198.18.0.1"  # the bridge's address: the node IP, and where the API server and DNS listen
SERVICE_CIDR = "198.19.0.0/16"
DNS_SERVICE_IP = "198.19.0.10"
BRIDGE = "wfbr0"
NODE_NAME = "localhost"  # the API server reaches the kubelet at "localhost": 127.0.0.1:10250
PAUSE_IMAGE = "workfleet.local/pause:3.10"


def kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> str:
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "workfleet", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "workfleet", "context": {"cluster": "workfleet", "user": "user"}}],
        "current-context": "workfleet",
    }
    return json.dumps(config, indent=2)


def containerd_config(folder: Path) -> str:
    """containerd 1.6 (config version 2), everything under `folder`."""
    return f"""version = 2
root = "{folder}/root"
state = "{folder}/state"

[grpc]
  address = "{folder}/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Required here: root lacks CAP_SYS_RESOURCE, and without this every container fails to
  # start ("can't get final child's PID from pipe") as runc cannot lower its oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{folder}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{folder}/net.d"
"""


def cni_conflist(ipam_dir: Path) -> str:
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "workfleet",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "hairpinMode": True, "ipMasq": False,
             # Pods reach each other on the bridge and Services through the gateway, where
             # kube-proxy's rules are; no default route, so nothing else is reachable.
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                      "routes": [{"dst": SERVICE_CIDR}], "dataDir": str(ipam_dir)}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2)


def kubelet_config(folder: Path, ca: Path, serving_cert: Path, serving_key: Path) -> str:
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # 1.37 still runs on cgroup v1 when told to
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "oomScoreAdj": 0,
        "address": "127.0.0.1",
        "authentication": {"webhook": {"enabled": True}, "anonymous": {"enabled": False},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": "",  # pods resolve only cluster names: nothing leaks to the host's resolvers
        "podLogsDir": str(folder / "pod-logs"),
        "volumePluginDir": str(folder / "volume-plugins"),
        # Imported images have no registry to come back from: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "serializeImagePulls": False,
    }, indent=2)


def kube_proxy_config(kubeconfig_path: Path, healthz_port: int, metrics_port: int) -> str:
    return json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        # Leave the host alone: no NodePorts on its addresses, no conntrack tuning.
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": [f"{GATEWAY}/32"],
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
    }, indent=2)


def corefile(kubeconfig_path: Path, context: str) -> str:
    """CoreDNS on the host, on the bridge address, answering cluster names only (no forwarding)."""
    return f""".:53 {{
    bind {GATEWAY}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig_path} {context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


def dns_objects() -> list[dict]:
    """kube-dns: a Service without a selector at the clusterDNS address, and an
    EndpointSlice that points it at CoreDNS on the bridge address."""
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system"},
         "spec": {"clusterIP": DNS_SERVICE_IP, "ports": [{**port, "targetPort": 53} for port in ports]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "kube-dns-host", "namespace": "kube-system",
                      "labels": {"kubernetes.io/service-name": "kube-dns",
                                 "endpointslice.kubernetes.io/managed-by": "workfleet-test-cluster"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
         "ports": ports},
    ]


def storage_objects(volume_dirs: list[Path], size: str) -> list[dict]:
    """A default StorageClass for local volumes, and a PersistentVolume per folder."""
    objects = [{
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }]
    for index, path in enumerate(volume_dirs):
        objects.append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"local-{index}"},
            "spec": {
                "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                "local": {"path": str(path)},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}},
            },
        })
    return objects
