package chart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"
)

func TestControlPlaneRunsTheRequestedKubernetesRelease(t *testing.T) {
	client, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		t.Fatalf("creating a discovery client: %v", err)
	}
	info, err := client.ServerVersion()
	if err != nil {
		t.Fatalf("asking the envtest API server for its version: %v", err)
	}
	if info.GitVersion != kubeVersion {
		t.Errorf("API server reports %s, want %s (the release named by KUBEBUILDER_ASSETS %s)", info.GitVersion, kubeVersion, os.Getenv("KUBEBUILDER_ASSETS"))
	}
}

func TestChartDefaultsRunARestrictedManager(t *testing.T) {
	objects := decodeObjects(t, renderChart(t))
	chart := readChartMetadata(t)

	deployment := findObject(t, objects, "Deployment", releaseName+"-manager")
	container := managerContainer(t, deployment)
	args := stringSlice(t, container, "args")
	wantArgs := []string{
		"--leader-elect",
		"--leader-election-namespace=" + releaseNamespace,
		"--health-probe-bind-address=:8081",
		"--metrics-bind-address=:8443",
		"--metrics-secure=true",
		"--worker-image=ghcr.io/deltapipeline/deltapipeline-worker:" + chart.AppVersion,
		"--gateway-image=ghcr.io/deltapipeline/deltapipeline-gateway:" + chart.AppVersion,
		"--upstream-gateway-image=otel/opentelemetry-collector-contrib:0.161.0",
	}
	for _, arg := range wantArgs {
		if !slices.Contains(args, arg) {
			t.Errorf("manager args %v lack %s", args, arg)
		}
	}
	if image := nestedString(t, container, "image"); image != "ghcr.io/deltapipeline/deltapipeline-operator:"+chart.AppVersion {
		t.Errorf("manager image %s, want the operator image tagged with appVersion %s", image, chart.AppVersion)
	}

	wantContainerSecurity := map[string]any{
		"runAsNonRoot":             true,
		"readOnlyRootFilesystem":   true,
		"allowPrivilegeEscalation": false,
		"capabilities":             map[string]any{"drop": []any{"ALL"}},
	}
	if got := nestedMap(t, container, "securityContext"); !reflect.DeepEqual(got, wantContainerSecurity) {
		t.Errorf("container securityContext %v, want %v", got, wantContainerSecurity)
	}
	podSpec := nestedMap(t, deployment.Object, "spec", "template", "spec")
	if got := nestedString(t, podSpec, "securityContext", "seccompProfile", "type"); got != "RuntimeDefault" {
		t.Errorf("pod seccompProfile %q, want RuntimeDefault", got)
	}

	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := nestedString(t, container, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
		if got := nestedString(t, container, probe, "httpGet", "port"); got != "health" {
			t.Errorf("%s port %q, want the named port health", probe, got)
		}
	}
	if port := containerPort(t, container, "health"); port != 8081 {
		t.Errorf("health port %d, want 8081", port)
	}
	if _, found, _ := unstructured.NestedMap(container, "resources", "limits"); !found {
		t.Error("manager has no resource limits")
	}

	findObject(t, objects, "ServiceAccount", releaseName)
	findObject(t, objects, "ClusterRole", releaseName+"-manager")
	findObject(t, objects, "ClusterRoleBinding", releaseName+"-manager")
	findObject(t, objects, "Role", releaseName+"-leader-election")
	findObject(t, objects, "RoleBinding", releaseName+"-leader-election")
	findObject(t, objects, "ClusterRole", releaseName+"-metrics-auth")
	findObject(t, objects, "ClusterRole", releaseName+"-metrics-reader")
	service := findObject(t, objects, "Service", releaseName+"-metrics")
	if got := nestedString(t, service.Object, "spec", "ports", "0", "name"); got != "https" {
		t.Errorf("metrics Service port name %q, want https for secure metrics", got)
	}
	if monitors := objectsOfKind(objects, "ServiceMonitor"); len(monitors) != 0 {
		t.Errorf("ServiceMonitor rendered by default; it needs the prometheus-operator CRDs and must be opt-in")
	}
}

func TestChartCustomValuesReachTheManifests(t *testing.T) {
	objects := decodeObjects(t, renderChart(t, withValuesFile(customValuesFile())))

	deployment := findObject(t, objects, "Deployment", "dpl-operator-manager")
	if replicas, _, _ := unstructured.NestedInt64(deployment.Object, "spec", "replicas"); replicas != 2 {
		t.Errorf("replicas %d, want 2", replicas)
	}
	podSpec := nestedMap(t, deployment.Object, "spec", "template", "spec")
	if got := nestedString(t, podSpec, "imagePullSecrets", "0", "name"); got != "regcred" {
		t.Errorf("imagePullSecrets[0].name %q, want regcred", got)
	}
	if got := nestedString(t, podSpec, "nodeSelector", "kubernetes.io/os"); got != "linux" {
		t.Errorf("nodeSelector kubernetes.io/os %q, want linux", got)
	}
	if got := nestedString(t, podSpec, "tolerations", "0", "value"); got != "observability" {
		t.Errorf("tolerations[0].value %q, want observability", got)
	}
	if _, found, _ := unstructured.NestedMap(podSpec, "affinity", "podAntiAffinity"); !found {
		t.Error("affinity.podAntiAffinity missing")
	}
	if got := nestedString(t, podSpec, "priorityClassName"); got != "system-cluster-critical" {
		t.Errorf("priorityClassName %q, want system-cluster-critical", got)
	}
	if got := nestedString(t, podSpec, "serviceAccountName"); got != "dpl-operator-manager" {
		t.Errorf("serviceAccountName %q, want dpl-operator-manager", got)
	}
	annotations := nestedMap(t, deployment.Object, "spec", "template", "metadata", "annotations")
	if annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] != "true" {
		t.Errorf("pod annotations %v lack podAnnotations", annotations)
	}
	labels := nestedMap(t, deployment.Object, "spec", "template", "metadata", "labels")
	if labels["team"] != "observability" {
		t.Errorf("pod labels %v lack podLabels", labels)
	}

	container := managerContainer(t, deployment)
	args := stringSlice(t, container, "args")
	for _, arg := range []string{
		"--health-probe-bind-address=:9081",
		"--metrics-bind-address=:9443",
		"--metrics-secure=false",
		"--worker-image=registry.example.com/platform/deltapipeline-worker:v9.9.9",
		"--gateway-image=registry.example.com/platform/deltapipeline-gateway:v9.9.9",
		"--upstream-gateway-image=registry.example.com/mirror/opentelemetry-collector-contrib:0.161.0",
		"--zap-log-level=debug",
		"--zap-stacktrace-level=panic",
	} {
		if !slices.Contains(args, arg) {
			t.Errorf("manager args %v lack %s", args, arg)
		}
	}
	if image := nestedString(t, container, "image"); image != "registry.example.com/platform/deltapipeline-operator:v9.9.9" {
		t.Errorf("manager image %s, want the image.repository:image.tag from values", image)
	}

	serviceAccount := findObject(t, objects, "ServiceAccount", "dpl-operator-manager")
	if got := serviceAccount.GetAnnotations()["eks.amazonaws.com/role-arn"]; got == "" {
		t.Error("ServiceAccount lacks the serviceAccount.annotations")
	}
	if got := objectsOfKind(objects, "ClusterRole"); len(got) != 1 {
		t.Errorf("with metrics.secure=false only the manager ClusterRole should render, got %s", describeObjects(got))
	}
	monitor := findObject(t, objects, "ServiceMonitor", "dpl-operator")
	if got := monitor.GetLabels()["release"]; got != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor label release %q, want kube-prometheus-stack", got)
	}
	if got := nestedString(t, monitor.Object, "spec", "endpoints", "0", "scheme"); got != "http" {
		t.Errorf("ServiceMonitor scheme %q, want http for plain metrics", got)
	}
	if got := nestedString(t, monitor.Object, "spec", "endpoints", "0", "interval"); got != "30s" {
		t.Errorf("ServiceMonitor interval %q, want 30s", got)
	}
}

func TestChartRejectsInvalidValues(t *testing.T) {
	cases := []struct {
		name    string
		sets    map[string]string
		wantErr string
	}{
		{name: "port out of range", sets: map[string]string{"metrics.port": "70000"}, wantErr: "metrics"},
		{name: "unknown value", sets: map[string]string{"replicas": "3"}, wantErr: "replicas"},
		{name: "bad log level", sets: map[string]string{"logLevel": "verbose"}, wantErr: "logLevel"},
		{name: "existing service account without a name", sets: map[string]string{"serviceAccount.create": "false"}, wantErr: "serviceAccount.name is required"},
		{name: "dashboards without a sidecar label", sets: map[string]string{"dashboards.label": ""}, wantErr: "dashboards.label"},
		{name: "unknown alert rules value", sets: map[string]string{"alertRules.severity": "page"}, wantErr: "alertRules"},
		{name: "service monitor without metrics", sets: map[string]string{"serviceMonitor.enabled": "true", "metrics.enabled": "false"}, wantErr: "serviceMonitor.enabled needs metrics.enabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", releaseName, chartDir, "--namespace", releaseNamespace, "--kube-version", kubeVersion}
			for key, value := range tc.sets {
				args = append(args, "--set", key+"="+value)
			}
			_, err := tryCommand(nil, helmBinary, args...)
			if err == nil {
				t.Fatalf("helm template accepted %v", tc.sets)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error does not name %q:\n%v", tc.wantErr, err)
			}
		})
	}
}

func TestAPIServerAcceptsTheRenderedChart(t *testing.T) {
	cases := map[string][]renderOption{
		"default values": {withNamespace("chart-defaults")},
		"custom values":  {withNamespace("chart-custom"), withValuesFile(customValuesFile())},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			settings := renderSettings{}
			for _, opt := range opts {
				opt(&settings)
			}
			ensureNamespace(t, settings.namespace)
			manifests := renderChart(t, append(opts, withCRDs())...)
			objects := decodeObjects(t, manifests)
			if kinds := objectsOfKind(objects, "CustomResourceDefinition"); len(kinds) == 0 {
				t.Fatal("helm template --include-crds rendered no CustomResourceDefinition")
			}
			assertBindingsResolve(t, objects)
			serverDryRun(t, manifests)
		})
	}
}

func TestAPIServerAcceptsTheInstaller(t *testing.T) {
	manifests, err := os.ReadFile(installerYAML)
	if err != nil {
		t.Fatalf("reading the installer (make build-installer writes it): %v", err)
	}
	objects := decodeObjects(t, manifests)
	if len(objectsOfKind(objects, "CustomResourceDefinition")) == 0 || len(objectsOfKind(objects, "Deployment")) != 1 {
		t.Fatalf("installer should hold the CRDs and the manager Deployment, has %s", describeObjects(objects))
	}
	deployment := objectsOfKind(objects, "Deployment")[0]
	if image := nestedString(t, managerContainer(t, deployment), "image"); strings.HasPrefix(image, "controller:") {
		t.Errorf("installer runs the placeholder image %s; the overlay should have set MANAGER_IMG", image)
	}
	if got := nestedString(t, deployment.Object, "metadata", "namespace"); got != "deltapipeline-system" {
		t.Errorf("installer puts the manager in namespace %q, want deltapipeline-system", got)
	}
	assertBindingsResolve(t, objects)
	// A dry-run Namespace is not created, so the namespaced objects in the
	// same file need it to exist for real.
	for _, namespace := range objectsOfKind(objects, "Namespace") {
		ensureNamespace(t, namespace.GetName())
	}
	serverDryRun(t, manifests)
}

func TestChartCRDsAreTheGeneratedCRDs(t *testing.T) {
	generated := readDir(t, filepath.Join(repoRoot, "config", "crd", "bases"))
	packaged := readDir(t, filepath.Join(chartDir, "crds"))
	if len(generated) == 0 {
		t.Fatal("config/crd/bases holds no CRDs; run make manifests")
	}
	if !reflect.DeepEqual(keys(generated), keys(packaged)) {
		t.Fatalf("chart CRDs %v differ from config/crd/bases %v; run make manifests", keys(packaged), keys(generated))
	}
	for name, content := range generated {
		if !bytes.Equal(content, packaged[name]) {
			t.Errorf("charts/deltapipeline-operator/crds/%s differs from config/crd/bases/%s; run make manifests", name, name)
		}
	}
}

func TestChartClusterRoleGrantsWhatTheRBACMarkersAsk(t *testing.T) {
	roleFile, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatalf("reading the controller-gen role: %v", err)
	}
	var generated struct {
		Rules []any `json:"rules"`
	}
	if err := yaml.Unmarshal(roleFile, &generated); err != nil {
		t.Fatalf("parsing config/rbac/role.yaml: %v", err)
	}
	if len(generated.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules; run make manifests")
	}
	role := findObject(t, decodeObjects(t, renderChart(t)), "ClusterRole", releaseName+"-manager")
	rendered, _, err := unstructured.NestedSlice(role.Object, "rules")
	if err != nil {
		t.Fatalf("reading the rendered ClusterRole rules: %v", err)
	}
	if !reflect.DeepEqual(normalize(t, generated.Rules), normalize(t, rendered)) {
		t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml; run make manifests\nchart:     %v\ngenerated: %v", rendered, generated.Rules)
	}
}

// assertBindingsResolve fails when a (Cluster)RoleBinding in the manifests
// refers to a role or ServiceAccount the same manifests do not create. The
// API server accepts such bindings, and the manager then lacks permissions
// only at run time.
func assertBindingsResolve(t *testing.T, objects []*unstructured.Unstructured) {
	t.Helper()
	created := map[string]bool{}
	for _, object := range objects {
		created[object.GetKind()+"/"+object.GetNamespace()+"/"+object.GetName()] = true
	}
	for _, binding := range append(objectsOfKind(objects, "RoleBinding"), objectsOfKind(objects, "ClusterRoleBinding")...) {
		roleKind := nestedString(t, binding.Object, "roleRef", "kind")
		roleNamespace := ""
		if roleKind == "Role" {
			roleNamespace = binding.GetNamespace()
		}
		role := roleKind + "/" + roleNamespace + "/" + nestedString(t, binding.Object, "roleRef", "name")
		if !created[role] {
			t.Errorf("%s %s binds %s, which the manifests do not create", binding.GetKind(), binding.GetName(), role)
		}
		subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
		for _, s := range subjects {
			subject := s.(map[string]any)
			if subject["kind"] != "ServiceAccount" {
				continue
			}
			account := fmt.Sprintf("ServiceAccount/%v/%v", subject["namespace"], subject["name"])
			if !created[account] {
				t.Errorf("%s %s binds %s, which the manifests do not create", binding.GetKind(), binding.GetName(), account)
			}
		}
	}
}

type chartMetadata struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

func readChartMetadata(t *testing.T) chartMetadata {
	t.Helper()
	content, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatalf("reading Chart.yaml: %v", err)
	}
	var metadata chartMetadata
	if err := yaml.Unmarshal(content, &metadata); err != nil {
		t.Fatalf("parsing Chart.yaml: %v", err)
	}
	return metadata
}

func customValuesFile() string {
	return filepath.Join(repoRoot, "test", "chart", "testdata", "values-custom.yaml")
}

// ensureNamespace creates the namespace for real; dry runs of namespaced
// objects need it.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	namespace := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
	kubectl(t, []byte(namespace), "apply", "--server-side", "--field-manager=chart-test", "-f", "-")
}

// serverDryRun has the API server validate and admit every object without
// storing it. Server-side apply, because the CRDs exceed the annotation size
// client-side apply needs.
func serverDryRun(t *testing.T, manifests []byte) {
	t.Helper()
	kubectl(t, manifests, "apply", "--server-side", "--dry-run=server", "--field-manager=chart-test", "-f", "-")
}

func managerContainer(t *testing.T, deployment *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, err := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	if err != nil {
		t.Fatalf("reading the Deployment's containers: %v", err)
	}
	for _, c := range containers {
		if container, ok := c.(map[string]any); ok && container["name"] == "manager" {
			return container
		}
	}
	t.Fatalf("Deployment %s has no container named manager", deployment.GetName())
	return nil
}

func containerPort(t *testing.T, container map[string]any, name string) int64 {
	t.Helper()
	ports, _, _ := unstructured.NestedSlice(container, "ports")
	for _, p := range ports {
		if port, ok := p.(map[string]any); ok && port["name"] == name {
			number, _, _ := unstructured.NestedInt64(port, "containerPort")
			return number
		}
	}
	t.Fatalf("container has no port named %s", name)
	return 0
}

// nestedString reads a string field; numeric path elements index lists.
func nestedString(t *testing.T, object map[string]any, path ...string) string {
	t.Helper()
	value := nestedValue(t, object, path...)
	switch v := value.(type) {
	case string:
		return v
	case int64:
		return strings.TrimSpace(string(mustJSON(t, v)))
	default:
		t.Fatalf("%s is %T, not a string", strings.Join(path, "."), value)
		return ""
	}
}

func nestedMap(t *testing.T, object map[string]any, path ...string) map[string]any {
	t.Helper()
	value, ok := nestedValue(t, object, path...).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a map", strings.Join(path, "."))
	}
	return value
}

func stringSlice(t *testing.T, object map[string]any, path ...string) []string {
	t.Helper()
	values, ok := nestedValue(t, object, path...).([]any)
	if !ok {
		t.Fatalf("%s is not a list", strings.Join(path, "."))
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s holds %T, not strings", strings.Join(path, "."), v)
		}
		out = append(out, s)
	}
	return out
}

func nestedValue(t *testing.T, object map[string]any, path ...string) any {
	t.Helper()
	var current any = object
	for i, element := range path {
		switch node := current.(type) {
		case map[string]any:
			next, ok := node[element]
			if !ok {
				t.Fatalf("%s is missing", strings.Join(path[:i+1], "."))
			}
			current = next
		case []any:
			index := -1
			if err := json.Unmarshal([]byte(element), &index); err != nil || index < 0 || index >= len(node) {
				t.Fatalf("%s: no element %s in a list of %d", strings.Join(path[:i], "."), element, len(node))
			}
			current = node[index]
		default:
			t.Fatalf("%s is %T, cannot descend", strings.Join(path[:i], "."), current)
		}
	}
	return current
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	files := map[string][]byte{}
	for _, entry := range entries {
		if entry.IsDir() || !strings.HasSuffix(entry.Name(), ".yaml") {
			continue
		}
		content, err := os.ReadFile(filepath.Join(dir, entry.Name()))
		if err != nil {
			t.Fatalf("reading %s: %v", entry.Name(), err)
		}
		files[entry.Name()] = content
	}
	return files
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// normalize round-trips through JSON so that values decoded by different
// YAML libraries compare equal.
func normalize(t *testing.T, value any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(mustJSON(t, value), &out); err != nil {
		t.Fatalf("normalizing %v: %v", value, err)
	}
	return out
}

func mustJSON(t *testing.T, value any) []byte {
	t.Helper()
	out, err := json.Marshal(value)
	if err != nil {
		t.Fatalf("encoding %v: %v", value, err)
	}
	return out
}

// TestManagerPodsMeetTheRestrictedPodSecurityStandard has the API server's
// PodSecurity admission judge the manager pod of each rendering, in a
// namespace enforcing the restricted standard. Admission checks Pods, not
// Deployments, so each Deployment's pod template is submitted as a Pod.
func TestManagerPodsMeetTheRestrictedPodSecurityStandard(t *testing.T) {
	const namespace = "restricted"
	restricted := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + namespace + "\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/enforce-version: latest\n"
	kubectl(t, []byte(restricted), "apply", "--server-side", "--field-manager=chart-test", "-f", "-")

	renderings := map[string]func(t *testing.T) []*unstructured.Unstructured{
		"chart default values": func(t *testing.T) []*unstructured.Unstructured { return decodeObjects(t, renderChart(t)) },
		"chart custom values": func(t *testing.T) []*unstructured.Unstructured {
			return decodeObjects(t, renderChart(t, withValuesFile(customValuesFile())))
		},
		"installer": func(t *testing.T) []*unstructured.Unstructured {
			content, err := os.ReadFile(installerYAML)
			if err != nil {
				t.Fatalf("reading the installer: %v", err)
			}
			return decodeObjects(t, content)
		},
	}
	for name, render := range renderings {
		t.Run(name, func(t *testing.T) {
			deployments := objectsOfKind(render(t), "Deployment")
			if len(deployments) != 1 {
				t.Fatalf("want one manager Deployment, found %s", describeObjects(deployments))
			}
			pod := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1",
				"kind":       "Pod",
				"metadata":   map[string]any{"name": "manager", "namespace": namespace},
				"spec":       nestedMap(t, deployments[0].Object, "spec", "template", "spec"),
			}}
			manifest, err := pod.MarshalJSON()
			if err != nil {
				t.Fatalf("encoding the pod: %v", err)
			}
			kubectl(t, manifest, "create", "--dry-run=server", "-f", "-")
		})
	}
}
