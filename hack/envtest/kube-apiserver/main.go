// Command kube-apiserver is the Kubernetes API server of the release pinned
// in this module's go.mod, built from the Go module proxy so that envtest
// needs no binary downloads. It starts exactly like the upstream binary.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones, as in the upstream binary.

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
