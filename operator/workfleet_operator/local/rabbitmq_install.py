"""Which RabbitMQ a private node runs, and how its programs are started.

Two installs are known:
- "4" (the default): RabbitMQ 4 from Debian 13, in a root filesystem that `make setup` builds
  under .cache/debian/rabbitmq-4. Its Erlang needs Debian 13's libraries, so its programs run
  inside that tree with chroot, in a mount namespace of their own: /proc, /dev and the node's
  folder are mounted there and vanish with the last process, so nothing is left to clean up.
  chroot needs root.
- "host": the rabbitmq-server package installed on this machine (3.10 on Debian 12).

WORKFLEET_RABBITMQ chooses between them; WORKFLEET_RABBITMQ_ROOTFS points at another tree.
"""

import os
from dataclasses import dataclass
from pathlib import Path

CHOICES = ("4", "host")
DEFAULT_CHOICE = "4"
PROGRAMS = Path("/usr/lib/rabbitmq/bin")
SERVICE_USER = "rabbitmq"
# The checkout's cache when workfleet is installed from it (pip install -e), as `make setup` does.
DEFAULT_ROOTFS = Path(__file__).resolve().parents[3] / ".cache" / "debian" / "rabbitmq-4"

# Runs in the new mount namespace: mount what the programs need, then become the service user
# inside the tree. The node folder is mounted at its own path, so every path in the
# node's environment means the same inside and out.
_ENTER_ROOTFS = (
    'root=$1 node_dir=$2 user=$3; shift 3; '
    'mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && mount -t tmpfs tmpfs "$root/tmp" '
    '&& mkdir -p "$root$node_dir" && mount --bind "$node_dir" "$root$node_dir" '
    '&& exec chroot --userspec="$user" "$root" "$@"'
)


class RabbitMQInstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class RabbitMQInstall:
    choice: str
    rootfs: Path | None  # None: the host's package

    def command(self, program: str, node_dir: Path, *args: str) -> list[str]:
        """argv that runs one of RabbitMQ's programs (rabbitmq-server, rabbitmqctl) as the
        service user, for the node whose folder is node_dir."""
        path = str(PROGRAMS / program)
        if self.rootfs is None:
            return [path, *args]
        uid, gid = self.service_ids()
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER_ROOTFS, "sh",
                str(self.rootfs), str(node_dir), f"{uid}:{gid}", path, *args]

    def service_ids(self) -> tuple[int, int]:
        """The rabbitmq user's uid and gid, as the install's own /etc/passwd says."""
        passwd = (self.rootfs or Path("/")) / "etc" / "passwd"
        for line in passwd.read_text().splitlines():
            fields = line.split(":")
            if fields[0] == SERVICE_USER:
                return int(fields[2]), int(fields[3])
        raise RabbitMQInstallError(f"no {SERVICE_USER} user in {passwd}")

    def runs_as_service_user_itself(self) -> bool:
        """The host's programs are started as the service user by Popen; the tree's by chroot."""
        return self.rootfs is None

    def version(self) -> str:
        """The installed RabbitMQ's version, from its application folder's name."""
        lib = (self.rootfs or Path("/")) / "usr" / "lib" / "rabbitmq" / "lib"
        names = sorted(path.name for path in lib.glob("rabbitmq_server-*"))
        return names[-1].removeprefix("rabbitmq_server-") if names else "unknown"


def rabbitmq_install(choice: str | None = None) -> RabbitMQInstall:
    """The install named by `choice`, or by WORKFLEET_RABBITMQ, or the default; checked, so a
    missing one fails here with what to do about it."""
    choice = choice or os.environ.get("WORKFLEET_RABBITMQ") or DEFAULT_CHOICE
    if choice not in CHOICES:
        raise RabbitMQInstallError(f"WORKFLEET_RABBITMQ={choice!r}: choose one of {', '.join(CHOICES)}")
    if choice == "host":
        if not (PROGRAMS / "rabbitmq-server").exists():
            raise RabbitMQInstallError("RabbitMQ is not installed on this machine: run `make setup` "
                                       "(it installs Debian's rabbitmq-server)")
        return RabbitMQInstall(choice, None)
    rootfs = Path(os.environ.get("WORKFLEET_RABBITMQ_ROOTFS") or DEFAULT_ROOTFS)
    if not (rootfs / PROGRAMS.relative_to("/") / "rabbitmq-server").exists():
        raise RabbitMQInstallError(
            f"no RabbitMQ 4 root filesystem at {rootfs}: run `make setup` in the workfleet checkout, point "
            "WORKFLEET_RABBITMQ_ROOTFS at one, or set WORKFLEET_RABBITMQ=host for this machine's package")
    if os.geteuid() != 0:
        raise RabbitMQInstallError("RabbitMQ 4 runs from its root filesystem with chroot, which needs root: "
                                   "run as root, or set WORKFLEET_RABBITMQ=host for this machine's package")
    return RabbitMQInstall(choice, rootfs)


def describe(install: RabbitMQInstall) -> str:
    where = f"root filesystem {install.rootfs}" if install.rootfs else "this machine's package"
    return f"RabbitMQ {install.version()} ({where})"

