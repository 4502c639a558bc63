package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The manager's release has its own name and namespace, so its cluster-wide
// objects never meet the other tests' dry runs of the default release.
const (
	managerRelease    = "installed"
	managerNamespace  = "dpl-operator-system"
	pipelineNamespace = "pipelines"
	reconcileTimeout  = 2 * time.Minute
)

// remappedFlags are the only manager flags the test changes: they bind ports,
// which must be free ones on a shared machine.
var remappedFlags = []string{"--health-probe-bind-address", "--metrics-bind-address"}

// TestManagerRunsAsTheChartDeploysIt installs the chart for real, then runs
// bin/manager with the rendered Deployment's arguments and environment and
// the chart ServiceAccount's identity, so the chart's RBAC is what the API
// server enforces. The manager must become ready, take the leader Lease,
// serve authorized metrics, and turn a DeltaPipeline into its two tiers
// running the images the chart passes it. Then the release is upgraded as
// docs/install.md says, and the new manager moves the pipeline to the new
// worker image.
func TestManagerRunsAsTheChartDeploysIt(t *testing.T) {
	helm(t, "install", managerRelease, chartDir, "--namespace", managerNamespace, "--create-namespace")
	t.Cleanup(func() {
		if _, err := tryCommand(nil, helmBinary, "uninstall", managerRelease, "--namespace", managerNamespace, "--kubeconfig", kubeconfigPath); err != nil {
			t.Logf("uninstalling the release: %v", err)
		}
	})

	manager := startReleasedManager(t, managerRelease, managerNamespace)
	eventually(t, manager.process, "the manager holds the leader Lease in its namespace", func() error {
		return expectLeaseHeld(managerNamespace)
	})
	if slices.Contains(manager.chartArgs, "--metrics-secure=true") {
		assertMetricsNeedTheReaderRole(t, manager.process, manager.metricsPort, manager.fullname+"-metrics-reader")
	}

	ensureNamespace(t, pipelineNamespace)
	pipelineName, pipeline := samplePipeline(t, pipelineNamespace)
	kubectl(t, pipeline, "apply", "--server-side", "--field-manager=chart-test", "-f", "-")

	wantGatewayImage := flagValue(t, manager.chartArgs, "--gateway-image")
	eventually(t, manager.process, "the gateway Deployment runs the chart's gateway image", func() error {
		return expectImage("deployment", pipelineName+"-gateway", wantGatewayImage)
	})
	wantWorkerImage := flagValue(t, manager.chartArgs, "--worker-image")
	eventually(t, manager.process, "the worker StatefulSet runs the chart's worker image", func() error {
		return expectImage("statefulset", pipelineName+"-worker", wantWorkerImage)
	})
	manager.stop(t)

	// The upgrade procedure of docs/install.md: CRDs first, then the release.
	kubectl(t, nil, "apply", "--server-side", "-f", filepath.Join(chartDir, "crds"))
	helm(t, "upgrade", managerRelease, chartDir, "--namespace", managerNamespace, "--set", "workerImage.tag=v99.0.0-upgrade")
	upgraded := startReleasedManager(t, managerRelease, managerNamespace)
	wantWorkerImage = flagValue(t, upgraded.chartArgs, "--worker-image")
	if !strings.HasSuffix(wantWorkerImage, ":v99.0.0-upgrade") {
		t.Fatalf("upgraded release passes --worker-image=%s, want the tag set at upgrade", wantWorkerImage)
	}
	eventually(t, upgraded.process, "the worker StatefulSet runs the upgraded release's worker image", func() error {
		return expectImage("statefulset", pipelineName+"-worker", wantWorkerImage)
	})
	upgraded.stop(t)
}

// releasedManager is bin/manager started from the installed release's
// Deployment.
type releasedManager struct {
	process     *managerProcess
	fullname    string
	chartArgs   []string
	metricsPort int
	gracePeriod time.Duration
}

// startReleasedManager reads the release's Deployment from the cluster and
// runs bin/manager with its arguments, environment and ServiceAccount, and
// waits until it is ready.
func startReleasedManager(t *testing.T, release, namespace string) *releasedManager {
	t.Helper()
	manifest := helm(t, "get", "manifest", release, "--namespace", namespace)
	fullname := release + "-" + filepath.Base(chartDir)
	deployment := findObject(t, decodeObjects(t, manifest), "Deployment", fullname+"-manager")
	container := managerContainer(t, deployment)
	chartArgs := stringSlice(t, container, "args")
	serviceAccount := nestedString(t, deployment.Object, "spec", "template", "spec", "serviceAccountName")
	gracePeriod, found, err := unstructured.NestedInt64(deployment.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
	if err != nil || !found {
		t.Fatalf("the chart's Deployment sets no terminationGracePeriodSeconds (%v)", err)
	}

	probePort, metricsPort := freePort(t), freePort(t)
	args := remapPorts(t, chartArgs, map[string]int{
		"--health-probe-bind-address": probePort,
		"--metrics-bind-address":      metricsPort,
	})
	env := append(containerEnv(t, container, namespace),
		"KUBECONFIG="+serviceAccountKubeconfig(t, namespace, serviceAccount),
		"HOME="+t.TempDir(),
		"PATH="+os.Getenv("PATH"),
	)
	process := startManager(t, args, env)

	probe := fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)
	eventually(t, process, "the manager answers /readyz with 200", func() error {
		return expectStatus(http.DefaultClient, probe, "", http.StatusOK)
	})
	assertReportsStampedVersion(t, process)
	return &releasedManager{
		process:     process,
		fullname:    fullname,
		chartArgs:   chartArgs,
		metricsPort: metricsPort,
		gracePeriod: time.Duration(gracePeriod) * time.Second,
	}
}

func (m *releasedManager) stop(t *testing.T) {
	t.Helper()
	m.process.stop(t, m.gracePeriod)
}

// assertReportsStampedVersion checks that the version `make build-manager`
// links in (MANAGER_VERSION) reaches the program, which derives its default
// worker image from it: a wrong -X symbol path would leave it at "dev"
// without any error.
func assertReportsStampedVersion(t *testing.T, manager *managerProcess) {
	t.Helper()
	want := `"version":"` + managerVersion + `"`
	if output := manager.output.String(); !strings.Contains(output, want) {
		t.Errorf("manager log does not report %s:\n%s", want, output)
	}
}

// remapPorts replaces the address of each port flag with 127.0.0.1:<port>
// and fails when the chart passes a port flag the test does not know, or
// lacks one it expects.
func remapPorts(t *testing.T, args []string, ports map[string]int) []string {
	t.Helper()
	out := make([]string, 0, len(args))
	remapped := map[string]bool{}
	for _, arg := range args {
		name, _, hasValue := strings.Cut(arg, "=")
		port, isPortFlag := ports[name]
		if !isPortFlag {
			out = append(out, arg)
			continue
		}
		if !hasValue {
			t.Fatalf("chart passes %s without =address", name)
		}
		out = append(out, fmt.Sprintf("%s=127.0.0.1:%d", name, port))
		remapped[name] = true
	}
	for _, name := range remappedFlags {
		if !remapped[name] {
			t.Fatalf("chart args %v lack %s", args, name)
		}
	}
	return out
}

// containerEnv resolves the container's env entries the way the kubelet
// would for a pod in namespace: literal values, the pod's namespace, and
// resource limits in bytes or cores.
func containerEnv(t *testing.T, container map[string]any, namespace string) []string {
	t.Helper()
	entries, _, err := unstructured.NestedSlice(container, "env")
	if err != nil {
		t.Fatalf("reading the container env: %v", err)
	}
	var env []string
	for _, e := range entries {
		entry := e.(map[string]any)
		name := entry["name"].(string)
		if value, ok := entry["value"].(string); ok {
			env = append(env, name+"="+value)
			continue
		}
		if fieldPath, found, _ := unstructured.NestedString(entry, "valueFrom", "fieldRef", "fieldPath"); found {
			if fieldPath != "metadata.namespace" {
				t.Fatalf("env %s reads field %s, which the test cannot resolve", name, fieldPath)
			}
			env = append(env, name+"="+namespace)
			continue
		}
		if resourceName, found, _ := unstructured.NestedString(entry, "valueFrom", "resourceFieldRef", "resource"); found {
			env = append(env, name+"="+resourceValue(t, container, resourceName))
			continue
		}
		t.Fatalf("env %s has a source the test cannot resolve: %v", name, entry)
	}
	return env
}

// resourceValue is what the kubelet puts into an env var for a
// resourceFieldRef with the default divisor: memory in bytes, CPU in whole
// cores rounded up.
func resourceValue(t *testing.T, container map[string]any, name string) string {
	t.Helper()
	section, key, ok := strings.Cut(name, ".")
	if !ok {
		t.Fatalf("resourceFieldRef %s is not <limits|requests>.<resource>", name)
	}
	text := nestedString(t, container, "resources", section, key)
	quantity, err := resource.ParseQuantity(text)
	if err != nil {
		t.Fatalf("parsing %s %q: %v", name, text, err)
	}
	if key == "cpu" {
		return strconv.FormatInt(quantity.ScaledValue(resource.Milli)/1000+boolToInt(quantity.ScaledValue(resource.Milli)%1000 != 0), 10)
	}
	return strconv.FormatInt(quantity.Value(), 10)
}

func boolToInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount with a token from the TokenRequest API.
func serviceAccountKubeconfig(t *testing.T, namespace, serviceAccount string) string {
	t.Helper()
	token := strings.TrimSpace(string(kubectl(t, nil, "create", "token", serviceAccount, "-n", namespace, "--duration=1h")))
	admin, err := clientcmd.LoadFromFile(kubeconfigPath)
	if err != nil {
		t.Fatalf("reading the envtest kubeconfig: %v", err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	config := clientcmdapi.NewConfig()
	config.Clusters["envtest"] = cluster
	config.AuthInfos[serviceAccount] = &clientcmdapi.AuthInfo{Token: token}
	config.Contexts["manager"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: serviceAccount, Namespace: namespace}
	config.CurrentContext = "manager"
	path := filepath.Join(t.TempDir(), "manager-kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatalf("writing the ServiceAccount kubeconfig: %v", err)
	}
	return path
}

// assertMetricsNeedTheReaderRole checks the secure metrics endpoint: a
// caller without credentials is refused, and a ServiceAccount bound to the
// chart's metrics-reader ClusterRole reads the manager's metrics.
func assertMetricsNeedTheReaderRole(t *testing.T, manager *managerProcess, port int, readerRole string) {
	t.Helper()
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
	// The manager serves a self-signed certificate, as it does in the cluster.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}

	const scraper = "scraper"
	kubectl(t, nil, "create", "serviceaccount", scraper, "-n", managerNamespace)
	kubectl(t, nil, "create", "clusterrolebinding", "chart-test-scraper",
		"--clusterrole="+readerRole, "--serviceaccount="+managerNamespace+":"+scraper)
	token := strings.TrimSpace(string(kubectl(t, nil, "create", "token", scraper, "-n", managerNamespace)))

	eventually(t, manager, "metrics refuse a caller without a token", func() error {
		return expectStatus(client, url, "", http.StatusUnauthorized)
	})
	eventually(t, manager, "metrics serve the metrics-reader ServiceAccount", func() error {
		return expectStatus(client, url, token, http.StatusOK)
	})
}

func expectStatus(client *http.Client, url, token string, want int) error {
	request, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		request.Header.Set("Authorization", "Bearer "+token)
	}
	response, err := client.Do(request)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	if response.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, want %d", url, response.StatusCode, want)
	}
	return nil
}

func expectLeaseHeld(namespace string) error {
	out, err := tryCommand(nil, kubectlBinary, "--kubeconfig", kubeconfigPath, "get", "leases", "-n", namespace,
		"-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{\"\\n\"}{end}")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, holder, _ := strings.Cut(line, "="); name != "" && holder != "" {
			return nil
		}
	}
	return fmt.Errorf("no Lease with a holder in %s: %q", namespace, out)
}

func expectImage(kind, name, want string) error {
	out, err := tryCommand(nil, kubectlBinary, "--kubeconfig", kubeconfigPath, "get", kind, name, "-n", pipelineNamespace,
		"-o", "jsonpath={.spec.template.spec.containers[*].image}")
	if err != nil {
		return err
	}
	images := strings.Fields(string(out))
	if !slices.Contains(images, want) {
		return fmt.Errorf("%s %s runs %v, want %s", kind, name, images, want)
	}
	return nil
}

// samplePipeline is the first DeltaPipeline among the repository's samples
// in config/samples, placed in namespace; its name is returned with it.
func samplePipeline(t *testing.T, namespace string) (string, []byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatalf("listing the samples: %v", err)
	}
	slices.Sort(files)
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("reading sample %s: %v", file, err)
		}
		for _, object := range decodeObjects(t, content) {
			if object.GetKind() != "DeltaPipeline" {
				continue
			}
			object.SetNamespace(namespace)
			out, err := object.MarshalJSON()
			if err != nil {
				t.Fatalf("encoding sample %s: %v", file, err)
			}
			return object.GetName(), out
		}
	}
	t.Fatalf("config/samples holds no DeltaPipeline")
	return "", nil
}

func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, arg := range args {
		if value, ok := strings.CutPrefix(arg, name+"="); ok {
			return value
		}
	}
	t.Fatalf("chart args %v lack %s", args, name)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	return runCommand(t, nil, helmBinary, append(args, "--kubeconfig", kubeconfigPath)...)
}

// managerProcess is bin/manager running in the background, its output kept
// for failure messages.
type managerProcess struct {
	cmd    *exec.Cmd
	output *lockedBuffer
	exited chan struct{}
	err    error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startManager(t *testing.T, args, env []string) *managerProcess {
	t.Helper()
	output := &lockedBuffer{}
	cmd := exec.Command(managerBinary, args...)
	cmd.Env = env
	cmd.Stdout = output
	cmd.Stderr = output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %v: %v", managerBinary, args, err)
	}
	manager := &managerProcess{cmd: cmd, output: output, exited: make(chan struct{})}
	go func() {
		manager.err = cmd.Wait()
		close(manager.exited)
	}()
	t.Cleanup(func() {
		if manager.running() {
			_ = cmd.Process.Kill()
			<-manager.exited
		}
		if t.Failed() {
			t.Logf("manager %v output:\n%s", args, output.String())
		}
	})
	return manager
}

func (m *managerProcess) running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, as the kubelet does, and expects a clean exit within
// the chart's termination grace period.
func (m *managerProcess) stop(t *testing.T, gracePeriod time.Duration) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling the manager: %v", err)
	}
	select {
	case <-m.exited:
		if m.err != nil {
			t.Errorf("manager exited with %v after SIGTERM", m.err)
		}
	case <-time.After(gracePeriod):
		t.Errorf("manager still running %s after SIGTERM, when the kubelet would kill it", gracePeriod)
	}
}

// eventually polls check until it succeeds, failing the test at the
// deadline or as soon as the manager exits.
func eventually(t *testing.T, manager *managerProcess, what string, check func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
	defer cancel()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-manager.exited:
			t.Fatalf("waiting until %s: the manager exited (%v); last check: %v", what, manager.err, err)
		case <-ctx.Done():
			t.Fatalf("waiting until %s: gave up after %s: %v", what, reconcileTimeout, err)
		case <-ticker.C:
		}
	}
}
