// Package e2e runs the whole pipeline on one machine: the operator renders
// both tiers' configurations into a real API server, the gateway
// distribution (or the upstream collector) runs them as the gateways,
// bin/worker as the workers, and the load generator plays Claude Code
// clients. docs/e2e.md describes what is
// verified; `make e2e` builds the binaries and runs it.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

func TestEndToEnd(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end suite")
}

// crdDir holds the generated CRDs the control plane installs.
func crdDir() string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "config", "crd", "bases"))
	Expect(err).NotTo(HaveOccurred())
	return dir
}

// stopAfterAll stops an Ordered container's pipeline after its last spec and
// removes its run directory, which is kept, its path printed, when a spec
// failed.
func stopAfterAll(pipeline **harness.Pipeline, runDir *string) {
	failed := false
	AfterEach(func() {
		if CurrentSpecReport().Failed() {
			failed = true
		}
	})
	AfterAll(func(ctx SpecContext) {
		if *pipeline != nil {
			Expect((*pipeline).Stop(ctx)).To(Succeed())
		}
		if failed {
			fmt.Fprintf(GinkgoWriter, "configurations, logs and state kept in %s\n", *runDir)
			return
		}
		Expect(os.RemoveAll(*runDir)).To(Succeed())
	}, NodeTimeout(3*time.Minute))
}
