//go:build tools

// Package tools pins the etcd server built by scripts/tools.sh. v3.7.0 is the
// etcd release that k8s.io/kubernetes v1.37.2's own go.mod requires.
package tools

import _ "go.etcd.io/etcd/server/v3"
