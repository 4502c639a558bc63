package chart

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// watchedNamespaces are the namespaces of testdata/values-watch-namespaces.yaml.
var watchedNamespaces = []string{"watched-a", "watched-b"}

// The scoped manager's release, separate from the cluster-wide one of
// TestManagerRunsAsTheChartDeploysIt.
const (
	scopedRelease      = "scoped"
	scopedNamespace    = "dpl-scoped-system"
	unwatchedNamespace = "unwatched"
)

func watchNamespacesValuesFile() string {
	return filepath.Join(repoRoot, "test", "chart", "testdata", "values-watch-namespaces.yaml")
}

func TestChartGrantsClusterWideByDefaultAndPerNamespaceWithWatchNamespaces(t *testing.T) {
	defaults := decodeObjects(t, renderChart(t))
	args := stringSlice(t, managerContainer(t, findObject(t, defaults, "Deployment", releaseName+"-manager")), "args")
	for _, arg := range args {
		if strings.HasPrefix(arg, "--watch-namespaces") {
			t.Errorf("the default release limits the manager: %s", arg)
		}
	}
	findObject(t, defaults, "ClusterRole", releaseName+"-manager")
	findObject(t, defaults, "ClusterRoleBinding", releaseName+"-manager")
	for _, role := range objectsOfKind(defaults, "Role") {
		if role.GetName() == releaseName+"-manager" {
			t.Errorf("the default release has a manager Role in %s besides the ClusterRole", role.GetNamespace())
		}
	}

	scoped := decodeObjects(t, renderChart(t, withValuesFile(watchNamespacesValuesFile())))
	args = stringSlice(t, managerContainer(t, findObject(t, scoped, "Deployment", releaseName+"-manager")), "args")
	if want := "--watch-namespaces=" + strings.Join(watchedNamespaces, ","); !slices.Contains(args, want) {
		t.Errorf("manager args %v lack %s", args, want)
	}
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		for _, object := range objectsOfKind(scoped, kind) {
			if object.GetName() == releaseName+"-manager" {
				t.Errorf("with watchNamespaces the chart still grants the manager %s %s", kind, object.GetName())
			}
		}
	}
	generated := generatedManagerRules(t)
	var roleNamespaces []string
	for _, role := range objectsOfKind(scoped, "Role") {
		if role.GetName() != releaseName+"-manager" {
			continue
		}
		roleNamespaces = append(roleNamespaces, role.GetNamespace())
		rules, _, err := unstructured.NestedSlice(role.Object, "rules")
		if err != nil {
			t.Fatalf("reading the rules of the Role in %s: %v", role.GetNamespace(), err)
		}
		if !reflect.DeepEqual(normalize(t, generated), normalize(t, rules)) {
			t.Errorf("the manager Role in %s differs from config/rbac/role.yaml; run make manifests", role.GetNamespace())
		}
	}
	slices.Sort(roleNamespaces)
	if !slices.Equal(roleNamespaces, watchedNamespaces) {
		t.Errorf("manager Roles in %v, want one in each of %v", roleNamespaces, watchedNamespaces)
	}
	assertBindingsResolve(t, scoped)
}

func TestAPIServerAcceptsTheChartWithWatchNamespaces(t *testing.T) {
	const namespace = "chart-watch-namespaces"
	ensureNamespace(t, namespace)
	for _, watched := range watchedNamespaces {
		ensureNamespace(t, watched)
	}
	manifests := renderChart(t, withNamespace(namespace), withValuesFile(watchNamespacesValuesFile()), withCRDs())
	serverDryRun(t, manifests)
}

// TestManagerWatchesOnlyTheListedNamespaces installs the chart with
// watchNamespaces and runs bin/manager as the release's ServiceAccount,
// whose permissions are then the Roles in the watched namespaces only.
// Pipelines in the watched namespaces get their tiers; one in another
// namespace is never touched, and the manager logs no refused request,
// which it would if it tried to watch the whole cluster.
func TestManagerWatchesOnlyTheListedNamespaces(t *testing.T) {
	for _, namespace := range append([]string{unwatchedNamespace}, watchedNamespaces...) {
		ensureNamespace(t, namespace)
	}
	helm(t, "install", scopedRelease, chartDir, "--namespace", scopedNamespace, "--create-namespace", "--values", watchNamespacesValuesFile())
	t.Cleanup(func() {
		if _, err := tryCommand(nil, helmBinary, "uninstall", scopedRelease, "--namespace", scopedNamespace, "--kubeconfig", kubeconfigPath); err != nil {
			t.Logf("uninstalling the release: %v", err)
		}
	})
	manager := startReleasedManager(t, scopedRelease, scopedNamespace)

	first := applySamplePipeline(t, watchedNamespaces[0])
	eventually(t, manager.process, "the pipeline in "+first.namespace+" is reconciled", first.reconciled)

	// The manager's watches are running now. A manager watching the whole
	// cluster would see the next two creations in this order and, with its
	// single reconcile worker, finish the unwatched pipeline before the
	// watched one.
	ignored := applySamplePipeline(t, unwatchedNamespace)
	second := applySamplePipeline(t, watchedNamespaces[1])
	eventually(t, manager.process, "the pipeline in "+second.namespace+" is reconciled", second.reconciled)

	if generation := observedGeneration(ignored.namespace, ignored.name); generation != "" {
		t.Errorf("the manager reconciled DeltaPipeline %s/%s outside its namespaces (observedGeneration %s)", ignored.namespace, ignored.name, generation)
	}
	out, err := tryCommand(nil, kubectlBinary, "--kubeconfig", kubeconfigPath, "get", "deployments,statefulsets,configmaps", "-n", unwatchedNamespace,
		"-l", "app.kubernetes.io/managed-by=deltapipeline-operator", "-o", "name")
	if err != nil {
		t.Fatalf("listing the unwatched namespace: %v", err)
	}
	if objects := strings.TrimSpace(string(out)); objects != "" {
		t.Errorf("the manager created objects in %s, which it does not watch:\n%s", unwatchedNamespace, objects)
	}
	manager.stop(t)
	if output := manager.process.output.String(); strings.Contains(output, "forbidden") {
		t.Errorf("the manager made requests its namespaced Roles refuse:\n%s", output)
	}
}

// appliedPipeline is a sample DeltaPipeline applied in one namespace.
type appliedPipeline struct {
	namespace, name string
}

func applySamplePipeline(t *testing.T, namespace string) appliedPipeline {
	t.Helper()
	name, pipeline := samplePipeline(t, namespace)
	kubectl(t, pipeline, "apply", "--server-side", "--field-manager=chart-test", "-f", "-")
	return appliedPipeline{namespace: namespace, name: name}
}

// reconciled succeeds once the pipeline has its gateway Deployment and a status.
func (p appliedPipeline) reconciled() error {
	if _, err := tryCommand(nil, kubectlBinary, "--kubeconfig", kubeconfigPath, "get", "deployment", p.name+"-gateway", "-n", p.namespace); err != nil {
		return err
	}
	if observedGeneration(p.namespace, p.name) == "" {
		return fmt.Errorf("DeltaPipeline %s/%s has no status.observedGeneration yet", p.namespace, p.name)
	}
	return nil
}

func observedGeneration(namespace, name string) string {
	out, err := tryCommand(nil, kubectlBinary, "--kubeconfig", kubeconfigPath, "get", "deltapipeline", name, "-n", namespace,
		"-o", "jsonpath={.status.observedGeneration}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// generatedManagerRules are the rules controller-gen writes from the RBAC markers.
func generatedManagerRules(t *testing.T) []any {
	t.Helper()
	role := decodeObjects(t, []byte(readFile(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml"))))
	if len(role) != 1 {
		t.Fatalf("config/rbac/role.yaml holds %d objects, want the ClusterRole", len(role))
	}
	rules, _, err := unstructured.NestedSlice(role[0].Object, "rules")
	if err != nil || len(rules) == 0 {
		t.Fatalf("config/rbac/role.yaml has no rules (%v); run make manifests", err)
	}
	return rules
}
