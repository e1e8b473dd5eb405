# The two commands the README promises, plus what they share.
.PHONY: setup tools demo test controlplane cluster images

setup:
	@scripts/setup.sh

# etcd, kube-apiserver, kube-controller-manager, Helm 4 and 3, kubectl into .cache/bin
tools:
	@scripts/tools.sh

demo: setup
	.venv/bin/workfleet up --demo

# The whole suite on RabbitMQ 4, then the fault matrix, the tutorial's interop and adaptive prefetch on the host's
# RabbitMQ (3.10 on Debian 12), which users of older brokers still run.
COMPAT_TESTS = tests/integration/test_faults.py tests/integration/test_work_queue.py tests/integration/test_adaptive_prefetch.py tests/integration/test_broker_version.py tests/integration/test_retry_ladder.py tests/integration/test_work_queue_policy.py
# The chart's images first: built from nothing they take minutes, which belong to no test's timeout.
test: setup tools images
	.venv/bin/pytest
	.venv/bin/pytest --rabbitmq=host $(COMPAT_TESTS)

# A control plane for development: prints its kubeconfig; Ctrl-C stops it.
controlplane: setup tools
	.venv/bin/python -m tests.support.controlplane

# A one-node cluster (kubelet, containerd, CoreDNS; needs root): prints its kubeconfig; Ctrl-C
# stops it and puts the host back as it was.
cluster: setup tools
	.venv/bin/python -m tests.support.cluster

# The chart's images (worker, operator, a Debian RabbitMQ) as OCI archives in .cache/images,
# rebuilt only when their inputs change; imported into the one-node cluster if one runs.
images: setup
	.venv/bin/python -m tests.support.oci_images
