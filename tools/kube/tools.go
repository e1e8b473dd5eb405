//go:build tools

// Package tools pins the Kubernetes commands built by scripts/tools.sh: the control
// plane, and the node (kubelet, scheduler, kube-proxy) of the one-node test cluster.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
