package manifests

import (
	"testing"

	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

func TestGatewayDrainsBeforeItStops(t *testing.T) {
	g, err := BuildGateway(pipelinetest.Stored("claude", "telemetry"), DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	spec := g.Deployment.Spec
	collector := spec.Template.Spec.Containers[0]
	if collector.Lifecycle == nil || collector.Lifecycle.PreStop == nil || collector.Lifecycle.PreStop.Sleep == nil {
		t.Fatalf("the collector has no pre-stop sleep: %+v", collector.Lifecycle)
	}
	if collector.Lifecycle.PreStop.Exec != nil || collector.Lifecycle.PreStop.HTTPGet != nil {
		t.Error("the pre-stop hook must be the kubelet's sleep action only: the collector image has no shell")
	}
	sleep := collector.Lifecycle.PreStop.Sleep.Seconds
	if sleep < 5 {
		t.Errorf("pre-stop sleep %ds is shorter than endpoint removal takes to reach kube-proxy and clients", sleep)
	}
	grace := *spec.Template.Spec.TerminationGracePeriodSeconds
	if grace < sleep+perWorkerTimeoutSeconds {
		t.Errorf("terminationGracePeriodSeconds %d leaves the collector less than one per-worker attempt (%ds) after the %ds pre-stop sleep", grace, perWorkerTimeoutSeconds, sleep)
	}

	rolling := spec.Strategy.RollingUpdate
	if spec.Strategy.Type != "RollingUpdate" || rolling == nil {
		t.Fatalf("strategy %+v", spec.Strategy)
	}
	if rolling.MaxUnavailable.IntValue() != 0 || rolling.MaxSurge.IntValue() < 1 {
		t.Errorf("a rollout must add a gateway before it removes one: maxUnavailable %s, maxSurge %s", rolling.MaxUnavailable, rolling.MaxSurge)
	}

	if got := g.PDB.Spec.MaxUnavailable; got == nil || got.IntValue() != 1 || g.PDB.Spec.MinAvailable != nil {
		t.Errorf("a drain may take exactly one gateway at a time: PDB %+v", g.PDB.Spec)
	}
}
