package naming

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

type named string

func (n named) GetName() string { return string(n) }

func TestDerivedNamesAreDNSLabelsForTheLongestPipelineName(t *testing.T) {
	p := named(strings.Repeat("a", MaxPipelineNameLength))
	for _, name := range []string{
		GatewayConfigMap(p), GatewayDeployment(p), GatewayService(p), GatewayPodDisruptionBudget(p),
		GatewayServiceAccount(p), GatewayResolverRole(p), GatewayHorizontalPodAutoscaler(p), GatewayNetworkPolicy(p), WorkerNetworkPolicy(p),
		WorkerConfigMap(p), WorkerStatefulSet(p), WorkerHeadlessService(p), WorkerPodDisruptionBudget(p),
		WorkerServiceAccount(p), WorkerPod(p, 99),
		// The StatefulSet controller labels each pod with the set name and a revision hash.
		WorkerStatefulSet(p) + "-7b9c5d6f8d",
	} {
		if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
			t.Errorf("%q: %v", name, errs)
		}
	}
}

func TestWorkerPodNamesFollowTheStatefulSet(t *testing.T) {
	if got, want := WorkerPod(named("claude"), 2), "claude-worker-2"; got != want {
		t.Fatalf("WorkerPod = %q, want %q", got, want)
	}
}

func TestLabelsContainTheSelector(t *testing.T) {
	p := named("claude")
	labels := Labels(p, ComponentWorker)
	for k, v := range SelectorLabels(p, ComponentWorker) {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if labels[LabelManagedBy] != ManagedBy || labels[LabelComponent] != ComponentWorker {
		t.Errorf("unexpected labels %v", labels)
	}
	if SelectorLabels(p, ComponentGateway)[LabelComponent] == SelectorLabels(p, ComponentWorker)[LabelComponent] {
		t.Error("gateway and worker selectors must differ")
	}
}

func TestVolumeNamesAreUniqueDNSLabels(t *testing.T) {
	long := strings.Repeat("x.", 100) + "a"
	other := strings.Repeat("x.", 100) + "b"
	for _, name := range []string{SecretVolume("amp-creds"), SecretVolume(long), ConfigMapVolume(long)} {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("%q: %v", name, errs)
		}
	}
	if SecretVolume(long) == SecretVolume(other) {
		t.Error("distinct long Secret names share a volume name")
	}
	if got := SecretVolume("amp-creds"); got != "secret-amp-creds" {
		t.Errorf("SecretVolume = %q", got)
	}
}
