package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

func TestEveryBuiltObjectIsOfAnOwnedKind(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithAutoscaling(2, 5), pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverK8s),
		pipelinetest.WithPodMonitors(nil), pipelinetest.WithGatewayBearerTokens(v1alpha1.SecretKeyRef{Name: "team", Key: "token"}))
	creds := manifests.Credentials{ClientTokens: []string{"c"}, WorkerToken: "t"}
	g, err := manifests.BuildGateway(p, manifests.DefaultOptions(), creds)
	if err != nil {
		t.Fatal(err)
	}
	w, err := manifests.BuildWorker(p, manifests.DefaultOptions(), manifests.Credentials{}, manifests.SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	// The reconciler adds the PodMonitors to the tiers when their CRD exists.
	monitors := []client.Object{manifests.GatewayPodMonitor(p), manifests.WorkerPodMonitor(p)}
	for _, obj := range slices.Concat(manifests.BuildShared(p, creds), g.Objects(), w.Objects(), monitors) {
		k, err := ownedKindOf(obj)
		if err != nil {
			t.Error(err)
			continue
		}
		seen[k.name] = true
	}
	for _, k := range ownedKinds {
		if !seen[k.name] {
			t.Errorf("owned kind %s is built by no builder with every feature on: drop it from ownedKinds or build it", k.name)
		}
	}
}

func TestAnUnownedKindIsAnErrorNamingIt(t *testing.T) {
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "claude-extra", Namespace: "telemetry"}}
	if _, err := ownedKindOf(slice); err == nil || !strings.Contains(err.Error(), "EndpointSlice") || !strings.Contains(err.Error(), "claude-extra") {
		t.Fatalf("ownedKindOf(EndpointSlice) = %v, want an error naming the kind and the object", err)
	}
	// The tier fails before a request is made: the reconciler has no client.
	r := &DeltaPipelineReconciler{}
	err := r.ensureTier(context.Background(), pipelinetest.Stored("claude", "telemetry"), []client.Object{slice})
	if err == nil || !strings.Contains(err.Error(), "EndpointSlice") {
		t.Fatalf("ensureTier with an EndpointSlice = %v, want an error naming the kind", err)
	}
}

func TestOwnedKindsAreListedOnce(t *testing.T) {
	if len(ownedKindsByType) != len(ownedKinds) {
		t.Fatalf("%d owned kinds, %d distinct types", len(ownedKinds), len(ownedKindsByType))
	}
}
