// Package cluster runs DeltaPipeline as users run it: the operator installed
// with `helm install` from charts/ on a real single-node Kubernetes cluster
// (hack/cluster: kubelet, containerd, runc, CoreDNS, kube-proxy), its images
// built by `make images`, the gateways and workers as pods in namespaces
// that enforce the restricted Pod Security Standard, the workers' state on
// PersistentVolumes, and a real Prometheus pod as the remote write receiver.
// `make test-cluster` builds everything, brings the cluster up, runs this
// suite inside the cluster's network namespace and tears the cluster down.
package cluster

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestCluster(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Cluster suite")
}
