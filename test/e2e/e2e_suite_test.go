// Package e2e runs the whole pipeline on one machine: the operator renders
// both tiers' configurations into a real API server, the real upstream
// collector runs them as the gateways, bin/worker as the workers, and the
// load generator plays Claude Code clients. docs/e2e.md describes what is
// verified; `make e2e` builds the binaries and runs it.
package e2e

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestEndToEnd(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end suite")
}
