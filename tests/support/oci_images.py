"""Container images without a registry: built with buildah (vfs storage, no daemon) into OCI
archives under .cache/images, cached by a hash of their inputs, and imported into the
cluster's containerd with ctr."""

import hashlib
import subprocess
from pathlib import Path

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
    archive = ARCHIVES / f"{reference.replace('/', '_').replace(':', '_')}-{digest_of(binary, reference, *entrypoint)}.tar"
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
    staged = archive.with_suffix(".partial")
    buildah("push", "--quiet", reference, f"oci-archive:{staged}:{reference}")
    staged.rename(archive)
    return archive


def import_image(containerd_address: Path, archive: Path) -> None:
    result = subprocess.run(["ctr", "--address", str(containerd_address), "-n", "k8s.io", "images", "import", str(archive)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ctr import {archive.name} failed: {result.stderr.strip()}")
