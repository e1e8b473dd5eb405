#!/usr/bin/env bash
# Install what the demo and the tests need on Debian 12: Debian's RabbitMQ,
# Prometheus and container packages and a Python virtualenv with workfleet and its
# test dependencies. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# RabbitMQ: the demo and the tests run private nodes of it. The rest is the one-node test
# cluster's node (tests/support/cluster.py) and its image builds.
packages=""
for package in rabbitmq-server containerd runc containernetworking-plugins iptables conntrack \
        buildah mmdebstrap busybox-static gcc; do
    dpkg -s "$package" >/dev/null 2>&1 || packages="$packages $package"
done
if [ -n "$packages" ]; then
    echo "setup: installing$packages" >&2
    as_root apt-get update -qq
    # The tests start private nodes and servers of their own: keep the packages' services from
    # starting (a policy-rc.d that says no, unless the machine has one already).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

# RabbitMQ 4, which the demo and the tests run by default (Debian 12's package is 3.10): Debian 13's
# package in a tree of its own, run with chroot (workfleet_operator/local/rabbitmq_install.py).
scripts/debian-rootfs.sh .cache/debian/rabbitmq-4 minbase rabbitmq-server

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Reinstall only when the dependencies change.
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing workfleet into .venv" >&2
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi
