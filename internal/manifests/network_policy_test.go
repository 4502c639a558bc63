package manifests

import (
	"path/filepath"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

// networkPolicyGoldenCases are the pipelines whose NetworkPolicies are kept
// as golden files.
func networkPolicyGoldenCases(t *testing.T) map[string]*v1alpha1.DeltaPipeline {
	t.Helper()
	cases := goldenCases(t)
	return map[string]*v1alpha1.DeltaPipeline{
		"default":          cases["default"],
		"extra-processors": cases["extra-processors"],
		"restricted-sources": pipelinetest.Stored("claude", "telemetry",
			pipelinetest.WithPrometheusExporter(9464),
			pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("10.20.0.0/16", "10.20.99.0/24"), pipelinetest.NamespaceSource(map[string]string{"team": "agents"})),
			pipelinetest.WithTelemetryFrom(pipelinetest.NamespaceSource(map[string]string{"kubernetes.io/metadata.name": "monitoring"}))),
	}
}

func TestGoldenNetworkPolicies(t *testing.T) {
	for name, p := range networkPolicyGoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			g, err := BuildGateway(p, DefaultOptions(), Credentials{})
			if err != nil {
				t.Fatal(err)
			}
			w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
			if err != nil {
				t.Fatal(err)
			}
			for file, obj := range map[string]*networkingv1.NetworkPolicy{name + ".gateway-networkpolicy.yaml": g.NetworkPolicy, name + ".worker-networkpolicy.yaml": w.NetworkPolicy} {
				out, err := yaml.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				compareGolden(t, filepath.Join("testdata", file), out)
			}
		})
	}
}

func TestWorkersAcceptOTLPFromTheirGatewaysOnly(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry")
	policy := WorkerNetworkPolicy(p)
	if !slices.Equal(policy.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policy types %v: egress must stay open", policy.Spec.PolicyTypes)
	}
	if policy.Spec.PodSelector.MatchLabels[naming.LabelComponent] != naming.ComponentWorker {
		t.Errorf("the worker policy selects %v", policy.Spec.PodSelector.MatchLabels)
	}
	otlp := ruleFor(t, policy, OTLPGRPCPort)
	if len(otlp.From) != 1 || otlp.From[0].PodSelector == nil || otlp.From[0].NamespaceSelector != nil || otlp.From[0].IPBlock != nil {
		t.Fatalf("OTLP to the workers must come from one pod selector in the pipeline's namespace: %+v", otlp.From)
	}
	want := naming.SelectorLabels(p, naming.ComponentGateway)
	if got := otlp.From[0].PodSelector.MatchLabels; len(got) != len(want) || got[naming.LabelInstance] != "claude" || got[naming.LabelComponent] != naming.ComponentGateway {
		t.Errorf("OTLP source selects %v, want the pipeline's gateway pods %v", got, want)
	}
	if ruleFor(t, policy, OTLPHTTPPort).From == nil && otlp.From != nil {
		t.Error("OTLP/HTTP is open to everyone while OTLP/gRPC is not")
	}
}

func TestTelemetryStaysOpenToScrapersUnlessSelected(t *testing.T) {
	open := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithPrometheusExporter(9464))
	gateway, err := GatewayNetworkPolicy(open)
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct {
		policy *networkingv1.NetworkPolicy
		port   int32
	}{{gateway, CollectorMetricsPort}, {WorkerNetworkPolicy(open), 8888}, {WorkerNetworkPolicy(open), 9464}} {
		if from := ruleFor(t, check.policy, check.port).From; from != nil {
			t.Errorf("%s port %d: without telemetryFrom every scraper must be admitted, got %+v", check.policy.Name, check.port, from)
		}
	}

	monitoring := pipelinetest.NamespaceSource(map[string]string{"kubernetes.io/metadata.name": "monitoring"})
	selected := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithTelemetryFrom(monitoring))
	from := ruleFor(t, WorkerNetworkPolicy(selected), 8888).From
	if len(from) != 1 || from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("telemetryFrom did not reach the worker policy: %+v", from)
	}
}

func TestGatewayAcceptsOTLPFromAnywhereUnlessSourcesAreListed(t *testing.T) {
	open, err := GatewayNetworkPolicy(pipelinetest.Stored("claude", "telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	if from := ruleFor(t, open, OTLPGRPCPort).From; from != nil {
		t.Errorf("without allowedSources every client must reach the gateway, got %+v", from)
	}

	restricted, err := GatewayNetworkPolicy(pipelinetest.Stored("claude", "telemetry",
		pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("192.168.0.0/16", "192.168.7.0/24"))))
	if err != nil {
		t.Fatal(err)
	}
	from := ruleFor(t, restricted, OTLPHTTPPort).From
	if len(from) != 1 || from[0].IPBlock == nil || from[0].IPBlock.CIDR != "192.168.0.0/16" || !slices.Equal(from[0].IPBlock.Except, []string{"192.168.7.0/24"}) {
		t.Errorf("allowedSources did not become the OTLP rule's sources: %+v", from)
	}
}

func TestGatewayPolicyOpensTheUsersReceivers(t *testing.T) {
	p := goldenCases(t)["extra-processors"]
	ports, err := gatewayReceiverPorts(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{OTLPGRPCPort, OTLPHTTPPort, 14317}; !slices.Equal(ports, want) {
		t.Errorf("receiver ports %v, want %v", ports, want)
	}
	for endpoint, want := range map[string]int32{"0.0.0.0:4317": 4317, ":9999": 9999, "[::]:55680": 55680, "http://example:80": 0, "${env:PORT}": 0, "localhost:0": 0, "host:99999": 0} {
		if got, _ := listenPort(endpoint); got != want {
			t.Errorf("listenPort(%q) = %d, want %d", endpoint, got, want)
		}
	}
}

func TestNetworkPoliciesOffBuildsNone(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithNetworkPolicies(false))
	g, err := BuildGateway(p, DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	if g.NetworkPolicy != nil || w.NetworkPolicy != nil {
		t.Error("spec.networkPolicy.enabled false still builds NetworkPolicies")
	}
	for _, o := range append(g.Objects(), w.Objects()...) {
		if _, ok := o.(*networkingv1.NetworkPolicy); ok {
			t.Errorf("%s is among the objects to keep, so it would not be pruned", o.GetName())
		}
	}
}

// ruleFor is the one ingress rule of policy that admits port.
func ruleFor(t *testing.T, policy *networkingv1.NetworkPolicy, port int32) networkingv1.NetworkPolicyIngressRule {
	t.Helper()
	var found []networkingv1.NetworkPolicyIngressRule
	for _, rule := range policy.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil && p.Port.IntValue() == int(port) {
				found = append(found, rule)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d ingress rules admit port %d, want 1: %+v", policy.Name, len(found), port, policy.Spec.Ingress)
	}
	return found[0]
}
