#!/usr/bin/env bash
# debian-rootfs.sh DEST VARIANT PACKAGE...
# A Debian 13 (trixie) root filesystem in the folder DEST, made with mmdebstrap from the mirror
# apt already uses, for what Debian 12 packages too old: RabbitMQ 4 and a Prometheus built with
# Kubernetes service discovery. VARIANT is mmdebstrap's (minbase to run programs inside it with
# chroot, extract to copy files out). Rebuilt only when the suite, variant or packages change;
# built beside DEST and renamed into place, so a run killed halfway leaves no half tree.
set -euo pipefail
dest=$1 variant=$2
shift 2
suite=trixie
want="$suite $variant $*"
if [ -f "$dest/.workfleet-rootfs" ] && [ "$(cat "$dest/.workfleet-rootfs")" = "$want" ]; then
    exit 0
fi
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
echo "debian-rootfs: building $dest ($want) from $mirror" >&2
staging="$dest.building"
rm -rf "$staging"
mkdir -p "$(dirname "$dest")"
mmdebstrap --quiet --variant="$variant" --include="$(IFS=,; echo "$*")" \
    "$suite" "$staging" "deb $mirror $suite main"
echo "$want" > "$staging/.workfleet-rootfs"
rm -rf "$dest"
mv "$staging" "$dest"
