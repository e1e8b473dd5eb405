"""Container images without a registry: built with buildah (vfs storage, no daemon) into OCI
archives under .cache/images, cached by a hash of their inputs, and imported into the
cluster's containerd with ctr."""

import hashlib
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
ARCHIVES = CACHE / "images"


def buildah(*args: str) -> str:
    command = ["buildah", "--root", str(CACHE / "buildah" / "root"), "--runroot", str(CACHE / "buildah" / "run"),
               "--storage-driver", "vfs", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def digest_of(*inputs: Path | str) -> str:
    sha = hashlib.sha256()
    for item in inputs:
        sha.update(item.read_bytes() if isinstance(item, Path) else item.encode())
    return sha.hexdigest()[:16]


def single_binary_image(reference: str, binary: Path, entrypoint: list[str]) -> Path:
    """An image holding one static binary (the pause program, busybox), from scratch."""
    archive = ARCHIVES / f"{_file_name(reference)}-{digest_of(binary, reference, *entrypoint)}.tar"
    if archive.exists():
        return archive
    ARCHIVES.mkdir(parents=True, exist_ok=True)
    container = buildah("from", "scratch")
    try:
        buildah("copy", container, str(binary), entrypoint[0])
        buildah("config", "--entrypoint", str(entrypoint).replace("'", '"'), container)
        buildah("commit", "--quiet", container, reference)
    finally:
        buildah("rm", container)
    return _push(reference, archive)


def import_image(containerd_address: Path, archive: Path) -> None:
    result = subprocess.run(["ctr", "--address", str(containerd_address), "-n", "k8s.io", "images", "import", str(archive)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ctr import {archive.name} failed: {result.stderr.strip()}")


APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


def debian_image(reference: str, packages: list[str], config: tuple[str, ...] = (), suite: str = "bookworm") -> Path:
    """A Debian image made with mmdebstrap: bookworm from the machine's apt sources, or
    another suite from the same mirror; `config` is passed to `buildah config` (entrypoint,
    environment)."""
    archive = ARCHIVES / f"{_file_name(reference)}-{digest_of(reference, suite, *packages, *config, APT_SOURCES)}.tar"
    if archive.exists():
        return archive
    ARCHIVES.mkdir(parents=True, exist_ok=True)
    rootfs = archive.with_suffix(".rootfs.tar")
    source = str(APT_SOURCES) if suite == "bookworm" else f"deb {debian_mirror()} {suite} main"
    result = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(packages)}",
                             suite, str(rootfs), source], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed: {result.stderr.strip()}")
    container = buildah("from", "scratch")
    try:
        buildah("add", container, str(rootfs), "/")
        if config:
            buildah("config", *config, container)
        buildah("commit", "--quiet", container, reference)
    finally:
        buildah("rm", container)
        rootfs.unlink()
    return _push(reference, archive)


def debian_mirror() -> str:
    """The Debian mirror apt uses here (scripts/debian-rootfs.sh reads it the same way)."""
    uris = re.search(r"^URIs: *(\S*debian)/? *$", APT_SOURCES.read_text(), re.MULTILINE)
    return uris.group(1) if uris else "http://deb.debian.org/debian"


def dockerfile_image(reference: str, target: str, base: str, context: Path, inputs: list[Path]) -> Path:
    """A target of the project's Dockerfile, built on `base` (its PYTHON_IMAGE argument)."""
    files = sorted(path for item in inputs for path in ([item] if item.is_file() else item.rglob("*"))
                   if path.is_file() and "__pycache__" not in path.parts)
    archive = ARCHIVES / f"{_file_name(reference)}-{digest_of(reference, target, base, *files)}.tar"
    if archive.exists():
        return archive
    ARCHIVES.mkdir(parents=True, exist_ok=True)
    # pip inside the build trusts what this machine trusts (which may include a TLS-intercepting
    # proxy's CA): the host's certificates and a pip.conf naming them are mounted for the RUN
    # steps only, and are not in the image.
    pip_conf = ARCHIVES / "build-pip.conf"
    pip_conf.write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    buildah("bud", "--quiet", "--isolation", "chroot", "--pull=never", "--layers=false",
            "--volume", "/etc/ssl/certs:/etc/ssl/certs:ro", "--volume", f"{pip_conf}:/etc/pip.conf:ro",
            "--build-arg", f"PYTHON_IMAGE={base}", "--target", target, "-t", reference,
            "-f", str(context / "Dockerfile"), str(context))
    return _push(reference, archive)


def _file_name(reference: str) -> str:
    return reference.replace("/", "_").replace(":", "_")


def normalized(reference: str) -> str:
    """The name containerd's CRI looks images up by: "workfleet/worker:1" is "docker.io/workfleet/worker:1"."""
    first = reference.split("/", 1)[0]
    if "/" in reference and ("." in first or ":" in first or first == "localhost"):
        return reference
    return f"docker.io/{reference}" if "/" in reference else f"docker.io/library/{reference}"


def _push(reference: str, archive: Path) -> Path:
    staged = archive.with_suffix(".partial")
    buildah("push", "--quiet", reference, f"oci-archive:{staged}:{normalized(reference)}")
    for older in ARCHIVES.glob(f"{_file_name(reference)}-*.tar"):  # builds from inputs that changed since
        older.unlink()
    staged.rename(archive)
    return archive


PYTHON_BASE = "workfleet.local/python:3.11-bookworm"
RABBITMQ_IMAGE = "workfleet.local/rabbitmq:4.0-debian"
# What the project's Dockerfile copies: a change to any of it rebuilds the images.
DOCKERFILE_INPUTS = ("Dockerfile", "pyproject.toml", "README.md", "common", "worker", "producer", "operator")


def chart_images(version: str) -> list[Path]:
    """The chart's images for a cluster without a registry: worker and operator from the
    project's Dockerfile on a Debian base with python3, and a RabbitMQ 4 from Debian 13's
    rabbitmq-server package (the major version the chart deploys by default) that reads the configuration the chart mounts, as the official
    image does (the chart points at each file with RABBITMQ_*_FILE variables)."""
    debian_image(PYTHON_BASE, ["python3", "python3-venv", "python-is-python3", "ca-certificates"])
    inputs = [ROOT / name for name in DOCKERFILE_INPUTS]
    return [
        dockerfile_image(f"workfleet/worker:{version}", "worker", PYTHON_BASE, ROOT, inputs),
        dockerfile_image(f"workfleet/operator:{version}", "operator", PYTHON_BASE, ROOT, inputs),
        # Debian's scripts in /usr/lib/rabbitmq/bin run as any user; the ones in /usr/sbin insist
        # on root or "rabbitmq", and the chart runs the broker as 999.
        debian_image(RABBITMQ_IMAGE, ["rabbitmq-server"],
                     ("--env", "PATH=/usr/lib/rabbitmq/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--cmd", '["rabbitmq-server"]'),
                     suite="trixie"),
    ]


def main() -> int:
    """`make images`: build the chart's images, and import them into the one-node cluster if one runs."""
    from tests.support.cluster import FOLDER, running_containerd  # here: the cluster imports this module

    version = yaml.safe_load((ROOT / "charts" / "workfleet" / "Chart.yaml").read_text())["appVersion"]
    archives = chart_images(version)
    for archive in archives:
        print(f"built {archive.relative_to(ROOT)}")
    socket = running_containerd()
    if socket:
        for archive in archives:
            import_image(socket, archive)
        print(f"imported into the cluster running in {FOLDER}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
