package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Paths and the shared control plane, set up once by TestMain.
var (
	repoRoot          string
	chartDir          string
	helmBinary        string
	kubectlBinary     string
	managerBinary     string
	managerVersion    string
	installerYAML     string
	serviceMonitorCRD string
	prometheusRuleCRD string
	kubeconfigPath    string
	// kubeVersion is the envtest release, e.g. v1.37.2, read from the
	// KUBEBUILDER_ASSETS directory name (<version>-linux-amd64). helm
	// template checks the chart's kubeVersion against it; a helm built with
	// go install would otherwise assume Kubernetes v1.20.
	kubeVersion string
	restConfig  *rest.Config
)

// requiredInputs are the environment variables `make chart-test` sets; the
// tests refuse to run, rather than skip, without them.
var requiredInputs = []string{"HELM", "KUBECTL", "MANAGER_BINARY", "MANAGER_VERSION", "INSTALLER_YAML", "SERVICEMONITOR_CRD", "PROMETHEUSRULE_CRD", "KUBEBUILDER_ASSETS"}

func TestMain(m *testing.M) {
	os.Exit(runWithControlPlane(m))
}

func runWithControlPlane(m *testing.M) int {
	for _, name := range requiredInputs {
		if os.Getenv(name) == "" {
			fmt.Fprintf(os.Stderr, "%s is not set: run these tests with `make chart-test`, which builds and passes %v\n", name, requiredInputs)
			return 1
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "finding the test directory: %v\n", err)
		return 1
	}
	repoRoot = filepath.Join(wd, "..", "..")
	chartDir = filepath.Join(repoRoot, "charts", "deltapipeline-operator")
	helmBinary = os.Getenv("HELM")
	kubectlBinary = os.Getenv("KUBECTL")
	managerBinary = os.Getenv("MANAGER_BINARY")
	managerVersion = os.Getenv("MANAGER_VERSION")
	installerYAML = os.Getenv("INSTALLER_YAML")
	serviceMonitorCRD = os.Getenv("SERVICEMONITOR_CRD")
	prometheusRuleCRD = os.Getenv("PROMETHEUSRULE_CRD")
	kubeVersion = "v" + strings.TrimSuffix(filepath.Base(os.Getenv("KUBEBUILDER_ASSETS")), "-linux-amd64")

	env := &envtest.Environment{
		// The shared build machines are slow to start kube-apiserver.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		CRDDirectoryPaths:        []string{serviceMonitorCRD, prometheusRuleCRD},
		ErrorIfCRDPathMissing:    true,
	}
	restConfig, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest from %s: %v\n", os.Getenv("KUBEBUILDER_ASSETS"), err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()

	kubeconfigDir, err := os.MkdirTemp("", "chart-test-kubeconfig-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating the kubeconfig directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(kubeconfigDir)
	kubeconfigPath = filepath.Join(kubeconfigDir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, env.KubeConfig, 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "writing the envtest kubeconfig: %v\n", err)
		return 1
	}
	return m.Run()
}
