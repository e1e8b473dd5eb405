//go:build tools

// Package tools pins CoreDNS, which the one-node test cluster runs on the host to
// answer pods' DNS queries for Service names (the kubernetes plugin).
package tools

import (
	_ "github.com/coredns/coredns"
)
