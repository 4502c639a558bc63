package pipelinetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// TestStoredDefaultsMatchTheCRD keeps Stored honest: every default it fills
// is the one the API server applies from the CRD schema.
func TestStoredDefaultsMatchTheCRD(t *testing.T) {
	schema := crdSchema(t)
	p := Stored("claude", "telemetry")
	for path, got := range map[string]any{
		"spec.routing.key":                p.Spec.Routing.Key,
		"spec.routing.resolver":           p.Spec.Routing.Resolver,
		"spec.gateway.replicas":           *p.Spec.Gateway.Replicas,
		"spec.gateway.router":             p.Spec.Gateway.Router,
		"spec.worker.replicas":            *p.Spec.Worker.Replicas,
		"spec.worker.persistence.enabled": *p.Spec.Worker.Persistence.Enabled,
		"spec.networkPolicy.enabled":      *p.Spec.NetworkPolicy.Enabled,
	} {
		want := schemaDefault(t, schema, path)
		gotJSON, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("encoding %s: %v", path, err)
		}
		if string(gotJSON) != want {
			t.Errorf("%s: Stored sets %s, the CRD defaults it to %s", path, gotJSON, want)
		}
	}
}

func TestStoredKeepsWhatOptionsSet(t *testing.T) {
	p := Stored("claude", "telemetry",
		WithRouting(v1alpha1.RoutingKeyAttributes, "session.id"),
		WithResolver(v1alpha1.ResolverDNS),
		WithGatewayReplicas(1),
		WithWorkerReplicas(5),
		WithPersistence(false),
	)
	if p.Spec.Routing.Key != v1alpha1.RoutingKeyAttributes || p.Spec.Routing.Resolver != v1alpha1.ResolverDNS {
		t.Errorf("routing = %+v, want the attributes key and the dns resolver", p.Spec.Routing)
	}
	if *p.Spec.Gateway.Replicas != 1 || *p.Spec.Worker.Replicas != 5 || *p.Spec.Worker.Persistence.Enabled {
		t.Errorf("gateways %d, workers %d, persistence %t; want 1, 5, false",
			*p.Spec.Gateway.Replicas, *p.Spec.Worker.Replicas, *p.Spec.Worker.Persistence.Enabled)
	}
	if p.UID != StoredUID || p.Kind != "DeltaPipeline" || p.APIVersion != v1alpha1.GroupVersion.String() {
		t.Errorf("identity = %s %s %s, want the stored kind and UID", p.APIVersion, p.Kind, p.UID)
	}
}

func TestNewLeavesDefaultsToTheAPIServer(t *testing.T) {
	p := New("claude", "telemetry")
	if p.Spec.Routing.Key != "" || p.Spec.Gateway.Replicas != nil || p.Spec.Worker.Persistence.Enabled != nil || p.UID != "" {
		t.Errorf("New filled fields the API server defaults or assigns: %+v", p)
	}
	if p.Spec.Exporters.PrometheusRemoteWrite == nil || p.Spec.Exporters.PrometheusRemoteWrite.Endpoint != RemoteWriteEndpoint {
		t.Errorf("exporters = %+v, want remote write to %s", p.Spec.Exporters, RemoteWriteEndpoint)
	}
}

func TestGatewayConfig(t *testing.T) {
	cfg, err := GatewayConfig(`{"processors": {"batch": {}}, "service": {"pipelines": {"metrics": {"processors": ["batch"]}}}}`)
	if err != nil {
		t.Fatalf("decoding a valid config: %v", err)
	}
	p := New("claude", "telemetry", WithGatewayConfig(cfg))
	if _, ok := p.Spec.Gateway.Config.Processors.Object["batch"]; !ok {
		t.Errorf("processors = %v, want batch", p.Spec.Gateway.Config.Processors)
	}

	if _, err := GatewayConfig(`{"processors": [`); err == nil || !strings.Contains(err.Error(), "decoding gateway config") {
		t.Errorf("decoding malformed JSON: err = %v, want one saying what was decoded", err)
	}
}

func crdSchema(t *testing.T) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	path := filepath.Join("..", "..", "config", "crd", "bases", "telemetry.deltapipeline.io_deltapipelines.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the CRD: %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name == v1alpha1.GroupVersion.Version {
			return *v.Schema.OpenAPIV3Schema
		}
	}
	t.Fatalf("%s has no version %s", path, v1alpha1.GroupVersion.Version)
	return apiextensionsv1.JSONSchemaProps{}
}

// schemaDefault returns the JSON default the schema declares at a dotted path.
func schemaDefault(t *testing.T, schema apiextensionsv1.JSONSchemaProps, path string) string {
	t.Helper()
	for _, field := range strings.Split(path, ".") {
		next, ok := schema.Properties[field]
		if !ok {
			t.Fatalf("the CRD schema has no %s", path)
		}
		schema = next
	}
	if schema.Default == nil {
		t.Fatalf("the CRD declares no default for %s", path)
	}
	return string(schema.Default.Raw)
}
