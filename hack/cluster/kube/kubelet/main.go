// Command kubelet is the node agent of the Kubernetes release pinned in this
// module's go.mod, built from the Go module proxy for the single-node cluster
// of the cluster suite (hack/cluster). It starts exactly like the upstream
// binary.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
