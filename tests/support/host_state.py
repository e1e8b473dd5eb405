"""What a one-node cluster changes on the host, recorded in its folder so that the host can be
put back as it was: by the run itself when it stops, or by the next run when this one died.

Changed: sysctls (the kubelet and the bridge set them), a few fixed paths the kubelet writes
whatever it is told, the bridge, kube-proxy's iptables rules, network namespaces, mounts under
the cluster's folder, and the kubelet's cgroups.
"""

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "net.ipv4.ip_forward",
           "net.bridge.bridge-nf-call-iptables")
# Written by the kubelet and containerd's shims whatever their configuration says.
FIXED_PATHS = (Path("/var/lib/kubelet"), Path("/var/log/containers"), Path("/var/log/pods"), Path("/run/containerd"),
               Path("/run/netns"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
IPTABLES_SAVE = ("iptables-save", "ip6tables-save")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def record(folder: Path) -> None:
    """Before changing anything: the sysctls' values, which fixed paths exist, and the
    packet filter rules (the kubelet and kube-proxy add chains to both families)."""
    for save in IPTABLES_SAVE:
        (folder / f"{save}.rules").write_text(subprocess.run([save], capture_output=True, text=True, check=True).stdout)
    state = {
        "sysctls": {name: _sysctl_path(name).read_text().strip() for name in SYSCTLS if _sysctl_path(name).exists()},
        "absent_paths": [str(path) for path in FIXED_PATHS if not path.exists()],
    }
    (folder / "host-state.json").write_text(json.dumps(state, indent=2))


def add_pid(folder: Path, name: str, pid: int) -> None:
    with open(folder / "pids", "a") as pids:
        pids.write(f"{pid} {name}\n")


def restore(folder: Path, socket: Path, bridge: str, kube_proxy: Path) -> list[str]:
    """Undo everything, as far as it can be undone; returns what could not be."""
    problems = []
    _kill_recorded(folder)
    _kill_shims(socket)
    _kill_pod_processes()
    _unmount_under(folder)
    _delete_idle_cni_netns()
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
    if kube_proxy.exists():
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, timeout=60)
    _remove_kube_chains()
    for save in IPTABLES_SAVE:
        rules = folder / f"{save}.rules"
        if rules.exists():
            restored = subprocess.run([save.replace("-save", "-restore")], input=rules.read_text(),
                                      capture_output=True, text=True)
            if restored.returncode != 0:
                problems.append(f"{save.replace('-save', '-restore')}: {restored.stderr.strip()}")
    problems += _remove_kubepods_cgroups()
    state_file = folder / "host-state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        for name, value in state["sysctls"].items():
            try:
                _sysctl_path(name).write_text(value)
            except OSError as error:
                problems.append(f"sysctl {name}: {error}")
        for path in state["absent_paths"]:
            subprocess.run(["rm", "-rf", path], capture_output=True)
    return problems


def _pids_with(predicate) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if predicate(entry.joinpath("cmdline").read_bytes().split(b"\0")):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _kill_and_wait(pids: list[int], timeout: float = 20) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)


def _kill_recorded(folder: Path) -> None:
    """The processes a dead run started, if they still run the same program."""
    pids_file = folder / "pids"
    if not pids_file.exists():
        return
    alive = []
    for line in pids_file.read_text().splitlines():
        pid, name = line.split(" ", 1)
        try:
            if name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                alive.append(int(pid))
        except OSError:
            pass
    _kill_and_wait(alive)


def _kill_shims(socket: Path) -> None:
    """containerd's shims outlive containerd; ours name its socket on their command line."""
    address = str(socket).encode()
    _kill_and_wait(_pids_with(lambda argv: argv and b"containerd-shim" in argv[0] and address in argv))


def _remove_kube_chains() -> None:
    """The kubelet's and kube-proxy's KUBE-* chains and the rules that jump to them, in every
    table of both families. (Restoring the saved rules alone would miss tables that did not
    exist before: a machine that never ran iptables has none.)"""
    for command in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            listed = subprocess.run([command, "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines()
            chains = [line.split()[1] for line in listed if line.startswith("-N KUBE-")]
            for line in listed:
                if line.startswith("-A ") and " -j KUBE-" in line and line.split()[1] not in chains:
                    subprocess.run([command, "-t", table, "-D", *shlex.split(line)[1:]], capture_output=True)
            for action in ("-F", "-X"):
                for chain in chains:
                    subprocess.run([command, "-t", table, action, chain], capture_output=True)


def _kill_pod_processes() -> None:
    """Whatever still runs in the pods' cgroups: orphans of killed shims."""
    pids = set()
    for procs in CGROUP_ROOT.glob("*/kubepods/**/cgroup.procs"):
        try:
            pids.update(int(pid) for pid in procs.read_text().split())
        except OSError:
            pass
    _kill_and_wait(sorted(pids))


def _unmount_under(folder: Path) -> None:
    prefix = str(folder.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _delete_idle_cni_netns() -> None:
    """Pod network namespaces (containerd 1.6 names them cni-*) that no process is in any more."""
    netns_dir = Path("/run/netns")
    if not netns_dir.exists():
        return
    for netns in netns_dir.glob("cni-*"):
        pids = subprocess.run(["ip", "netns", "pids", netns.name], capture_output=True, text=True).stdout.strip()
        if not pids:
            subprocess.run(["ip", "netns", "delete", netns.name], capture_output=True)


def _remove_kubepods_cgroups() -> list[str]:
    """The kubelet's cgroup trees (cgroupfs driver: kubepods under every v1 controller)."""
    problems = []
    for tree in sorted(CGROUP_ROOT.glob("*/kubepods")):
        for directory in sorted((path for path in tree.rglob("*") if path.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except OSError:
                pass
        try:
            tree.rmdir()
        except OSError as error:
            problems.append(f"cgroup {tree}: {error}")
    return problems


def leftovers(folder: Path, bridge: str) -> list[str]:
    """What of a cluster is still on the host (empty when it was put back)."""
    found = []
    if folder.exists():
        found.append(f"folder {folder}")
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0:
        found.append(f"bridge {bridge}")
    for command in ("iptables-save", "ip6tables-save"):
        chains = [line for line in subprocess.run([command], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith(":KUBE-")]
        found += [f"{command}: {line}" for line in chains]
    found += [f"cgroup {tree}" for tree in CGROUP_ROOT.glob("*/kubepods")]
    found += [f"process {pid}" for pid in _pids_with(lambda argv: argv and b"containerd-shim" in argv[0])]
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(folder) in line.split()[4]]
    return found
