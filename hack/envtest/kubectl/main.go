// Command kubectl is the kubectl of the release pinned in this module's
// go.mod, built from the Go module proxy so that the tests and
// `make build-installer` do not depend on whatever kubectl the machine has.
package main

import (
	"os"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // exec and OIDC credential plugins, as upstream.
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	// Verbosity is applied before the command is built because building it
	// already logs (plugin discovery, .kuberc parsing).
	_, _ = logs.GlogSetter(cmd.GetLogVerbosity(os.Args))
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
