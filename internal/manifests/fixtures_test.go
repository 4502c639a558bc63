package manifests

import (
	"encoding/json"
	"testing"

	otelv1beta1 "github.com/open-telemetry/opentelemetry-operator/apis/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

type pipelineOption func(*v1alpha1.DeltaPipeline)

// newPipeline returns a pipeline as the API server stores it after
// defaulting, with a remote write exporter unless options replace it.
func newPipeline(opts ...pipelineOption) *v1alpha1.DeltaPipeline {
	p := &v1alpha1.DeltaPipeline{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "DeltaPipeline"},
		ObjectMeta: metav1.ObjectMeta{Name: "claude", Namespace: "telemetry", UID: types.UID("0a1b2c3d-0000-4000-8000-000000000001")},
		Spec: v1alpha1.DeltaPipelineSpec{
			Routing: v1alpha1.RoutingSpec{Key: v1alpha1.RoutingKeyStreamID, Resolver: v1alpha1.ResolverK8s},
			Gateway: v1alpha1.GatewaySpec{Replicas: ptr.To[int32](2), Image: v1alpha1.DefaultGatewayImage},
			Worker: v1alpha1.WorkerSpec{
				Replicas:    ptr.To[int32](3),
				Persistence: v1alpha1.PersistenceSpec{Enabled: ptr.To(true)},
			},
			Exporters: v1alpha1.ExportersSpec{
				PrometheusRemoteWrite: &v1alpha1.RemoteWriteSpec{Endpoint: "http://prometheus.monitoring.svc:9090/api/v1/write"},
			},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withRouting(key v1alpha1.RoutingKey, attributes ...string) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Routing.Key = key
		p.Spec.Routing.Attributes = attributes
	}
}

func withResolver(r v1alpha1.Resolver) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Routing.Resolver = r }
}

func withWorkerReplicas(n int32) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To(n) }
}

func withPersistence(enabled bool) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Persistence.Enabled = ptr.To(enabled) }
}

func withAutoscaling(min, max int32) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Gateway.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptr.To(min), MaxReplicas: max}
	}
}

func withExporters(e v1alpha1.ExportersSpec) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Exporters = e }
}

func withServiceAccountAnnotation(key, value string) pipelineOption {
	return func(p *v1alpha1.DeltaPipeline) {
		if p.Spec.ServiceAccount.Annotations == nil {
			p.Spec.ServiceAccount.Annotations = map[string]string{}
		}
		p.Spec.ServiceAccount.Annotations[key] = value
	}
}

// withGatewayConfig sets spec.gateway.config from JSON, the way it arrives from the API server.
func withGatewayConfig(t *testing.T, raw string) pipelineOption {
	t.Helper()
	var cfg otelv1beta1.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("decoding gateway config: %v", err)
	}
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Config = &cfg }
}

func ampExporters() v1alpha1.ExportersSpec {
	return v1alpha1.ExportersSpec{PrometheusRemoteWrite: &v1alpha1.RemoteWriteSpec{
		Endpoint: "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-12345678-abcd-1234-abcd-123456789012/api/v1/remote_write",
		SigV4:    &v1alpha1.SigV4Spec{Region: "us-east-1"},
	}}
}

func otlpWithSecretsExporters() v1alpha1.ExportersSpec {
	return v1alpha1.ExportersSpec{
		OTLP: &v1alpha1.OTLPExporterSpec{
			Endpoint: "otlp.example.com:4317",
			Headers: []v1alpha1.HeaderSpec{
				{Name: "x-tenant", Value: ptr.To("team-a")},
				{Name: "authorization", ValueFrom: &v1alpha1.SecretValueSource{SecretKeyRef: v1alpha1.SecretKeyRef{Name: "otlp-auth", Key: "header"}}},
			},
			TLS: &v1alpha1.TLSSpec{
				CA:   &v1alpha1.FileSource{ConfigMapKeyRef: &v1alpha1.ConfigMapKeyRef{Name: "otlp-ca", Key: "ca.crt"}},
				Cert: &v1alpha1.FileSource{SecretKeyRef: &v1alpha1.SecretKeyRef{Name: "otlp-client", Key: "tls.crt"}},
				Key:  &v1alpha1.SecretKeyRef{Name: "otlp-client", Key: "tls.key"},
			},
			Compression: "gzip",
		},
		Prometheus: &v1alpha1.PrometheusSpec{Port: 9464},
	}
}
