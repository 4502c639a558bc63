// Package pipelinetest builds DeltaPipeline objects for the operator's tests:
// a minimal valid pipeline, as a user applies it or as the API server stores
// it, changed by functional options. The controller's envtest suite and the
// manifest builders' tests share it so both describe pipelines the same way.
package pipelinetest

import (
	"encoding/json"
	"fmt"

	otelv1beta1 "github.com/open-telemetry/opentelemetry-operator/apis/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// RemoteWriteEndpoint is where the pipeline's default exporter writes.
const RemoteWriteEndpoint = "http://prometheus.monitoring.svc:9090/api/v1/write"

// StoredUID is the UID Stored gives every pipeline, so owner references in
// golden files stay the same from run to run.
const StoredUID types.UID = "0a1b2c3d-0000-4000-8000-000000000001"

// Option changes a pipeline under construction.
type Option func(*v1alpha1.DeltaPipeline)

// New is a minimal valid pipeline as a user applies it: every field the API
// server defaults left unset, and one Prometheus remote write exporter.
func New(name, namespace string, opts ...Option) *v1alpha1.DeltaPipeline {
	p := &v1alpha1.DeltaPipeline{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1alpha1.DeltaPipelineSpec{
			Exporters: v1alpha1.ExportersSpec{
				PrometheusRemoteWrite: &v1alpha1.RemoteWriteSpec{Endpoint: RemoteWriteEndpoint},
			},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Stored is New as the API server returns it after creation: with its kind,
// a UID, and the CRD's defaults in the routing and tier fields the options
// left unset. Builders read these fields without defaulting them again.
func Stored(name, namespace string, opts ...Option) *v1alpha1.DeltaPipeline {
	p := New(name, namespace, opts...)
	p.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "DeltaPipeline"}
	p.UID = StoredUID
	applyDefaults(p)
	return p
}

// applyDefaults fills unset fields as the CRD's default markers do.
func applyDefaults(p *v1alpha1.DeltaPipeline) {
	s := &p.Spec
	if s.Routing.Key == "" {
		s.Routing.Key = v1alpha1.RoutingKeyStreamID
	}
	if s.Routing.Resolver == "" {
		s.Routing.Resolver = v1alpha1.ResolverStatic
	}
	if s.Gateway.Replicas == nil {
		s.Gateway.Replicas = ptr.To[int32](2)
	}
	if s.Gateway.Router == "" {
		s.Gateway.Router = v1alpha1.GatewayRouterDeltaPipeline
	}
	if s.Worker.Replicas == nil {
		s.Worker.Replicas = ptr.To[int32](3)
	}
	if s.Worker.Persistence.Enabled == nil {
		s.Worker.Persistence.Enabled = ptr.To(true)
	}
	if s.NetworkPolicy.Enabled == nil {
		s.NetworkPolicy.Enabled = ptr.To(true)
	}
}

// WithRouter picks the gateways' router.
func WithRouter(r v1alpha1.GatewayRouter) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Router = r }
}

// WithRouting routes by key, hashing the given attributes for the
// attributes key.
func WithRouting(key v1alpha1.RoutingKey, attributes ...string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Routing.Key = key
		p.Spec.Routing.Attributes = attributes
	}
}

// WithResolver sets how the gateways find the workers.
func WithResolver(r v1alpha1.Resolver) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Routing.Resolver = r }
}

// WithGatewayReplicas sets a fixed number of gateways.
func WithGatewayReplicas(n int32) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Replicas = ptr.To(n) }
}

// WithWorkerReplicas sets the number of workers.
func WithWorkerReplicas(n int32) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To(n) }
}

// WithAutoscaling scales the gateways between min and max replicas.
func WithAutoscaling(min, max int32) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Gateway.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptr.To(min), MaxReplicas: max}
	}
}

// WithWorkerAutoscaling scales the workers between min and max replicas on
// the given CPU and memory utilization targets; a nil target is left unset.
func WithWorkerAutoscaling(min, max int32, cpuPercent, memoryPercent *int32) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Worker.Autoscaling = &v1alpha1.WorkerAutoscalingSpec{
			MinReplicas: ptr.To(min), MaxReplicas: max,
			TargetCPUUtilizationPercentage: cpuPercent, TargetMemoryUtilizationPercentage: memoryPercent,
		}
	}
}

// WithPersistence turns the workers' state volumes on or off.
func WithPersistence(enabled bool) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Persistence.Enabled = ptr.To(enabled) }
}

// WithNetworkPolicies turns the pipeline's NetworkPolicies on or off.
func WithNetworkPolicies(enabled bool) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.NetworkPolicy.Enabled = ptr.To(enabled) }
}

// WithAllowedSources limits who may send OTLP to the gateways.
func WithAllowedSources(sources ...v1alpha1.TrafficSource) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.AllowedSources = sources }
}

// WithTelemetryFrom limits who may scrape the pods' own metrics.
func WithTelemetryFrom(sources ...v1alpha1.TrafficSource) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.NetworkPolicy.TelemetryFrom = sources }
}

// CIDRSource is a traffic source of one CIDR block with exceptions.
func CIDRSource(cidr string, except ...string) v1alpha1.TrafficSource {
	block := &v1alpha1.IPBlock{CIDR: v1alpha1.CIDR(cidr)}
	for _, e := range except {
		block.Except = append(block.Except, v1alpha1.CIDR(e))
	}
	return v1alpha1.TrafficSource{IPBlock: block}
}

// NamespaceSource is a traffic source of every pod in the namespaces with
// the given labels.
func NamespaceSource(labels map[string]string) v1alpha1.TrafficSource {
	return v1alpha1.TrafficSource{NamespaceSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

// WithMaxStreams bounds the streams one worker holds, which sizes the
// workers' default resources.
func WithMaxStreams(n int32) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Conversion.MaxStreams = ptr.To(n) }
}

// WithGatewayResources sets spec.gateway.resources.
func WithGatewayResources(r corev1.ResourceRequirements) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Resources = r }
}

// WithWorkerResources sets spec.worker.resources.
func WithWorkerResources(r corev1.ResourceRequirements) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Resources = r }
}

// Resources builds a ResourceList from name and quantity pairs, for example
// Resources("cpu", "100m", "memory", "64Mi"); it panics on a malformed
// quantity, which is a mistake in the test.
func Resources(namesAndQuantities ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(namesAndQuantities); i += 2 {
		l[corev1.ResourceName(namesAndQuantities[i])] = resource.MustParse(namesAndQuantities[i+1])
	}
	return l
}

// WithServiceAccountAnnotation annotates both tiers' ServiceAccounts, as IRSA
// needs for a role ARN.
func WithServiceAccountAnnotation(key, value string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		if p.Spec.ServiceAccount.Annotations == nil {
			p.Spec.ServiceAccount.Annotations = map[string]string{}
		}
		p.Spec.ServiceAccount.Annotations[key] = value
	}
}

// WithGatewayConfig sets spec.gateway.config; GatewayConfig decodes one from
// the JSON a user writes.
func WithGatewayConfig(cfg *otelv1beta1.Config) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Config = cfg }
}

// GatewayConfig decodes spec.gateway.config from JSON, the way it arrives
// from the API server.
func GatewayConfig(raw string) (*otelv1beta1.Config, error) {
	var cfg otelv1beta1.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return nil, fmt.Errorf("decoding gateway config %s: %w", raw, err)
	}
	return &cfg, nil
}

// WithExporters replaces every exporter.
func WithExporters(e v1alpha1.ExportersSpec) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Exporters = e }
}

// WithPrometheusExporter adds a Prometheus scrape endpoint on port.
func WithPrometheusExporter(port int32) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Exporters.Prometheus = &v1alpha1.PrometheusSpec{Port: port} }
}

// The remote write options below change the default remote write exporter,
// so they go after any WithExporters that keeps one.

// WithBearerTokenSecret authenticates remote write with a token from a Secret key.
func WithBearerTokenSecret(name, key string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Exporters.PrometheusRemoteWrite.BearerTokenSecretRef = &v1alpha1.SecretKeyRef{Name: name, Key: key}
	}
}

// WithSigV4 signs remote write requests for AWS in region.
func WithSigV4(region string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Exporters.PrometheusRemoteWrite.SigV4 = &v1alpha1.SigV4Spec{Region: region}
	}
}

// WithTLSCAFromConfigMap makes remote write verify its server with a CA
// certificate from a ConfigMap key.
func WithTLSCAFromConfigMap(name, key string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Exporters.PrometheusRemoteWrite.TLS = &v1alpha1.TLSSpec{
			CA: &v1alpha1.FileSource{ConfigMapKeyRef: &v1alpha1.ConfigMapKeyRef{Name: name, Key: key}},
		}
	}
}

// AMPExporters writes to an Amazon Managed Service for Prometheus workspace
// with SigV4.
func AMPExporters() v1alpha1.ExportersSpec {
	return v1alpha1.ExportersSpec{PrometheusRemoteWrite: &v1alpha1.RemoteWriteSpec{
		Endpoint: "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-12345678-abcd-1234-abcd-123456789012/api/v1/remote_write",
		SigV4:    &v1alpha1.SigV4Spec{Region: "us-east-1"},
	}}
}

// OTLPWithSecretsExporters exports OTLP with a header from a Secret, mutual
// TLS from a ConfigMap and a Secret, and a Prometheus scrape endpoint: every
// kind of reference a worker pod mounts or reads.
func OTLPWithSecretsExporters() v1alpha1.ExportersSpec {
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

// WithPodMonitors asks for the tiers' PodMonitors with the given labels.
func WithPodMonitors(labels map[string]string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Monitoring.PodMonitor = v1alpha1.PodMonitorSpec{Enabled: true, Labels: labels}
	}
}

// WithGatewayTLS serves the gateway's receivers with the kubernetes.io/tls Secret secretName.
func WithGatewayTLS(secretName string) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.TLS = &v1alpha1.GatewayTLSSpec{SecretName: secretName} }
}

// WithGatewayBearerTokens makes the gateway accept the tokens of these Secret keys.
func WithGatewayBearerTokens(refs ...v1alpha1.SecretKeyRef) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Gateway.Auth = &v1alpha1.GatewayAuthSpec{BearerTokens: refs}
	}
}

// WithGatewayOIDC makes the gateway accept tokens of one OIDC issuer.
func WithGatewayOIDC(issuerURL, audience string) Option {
	return func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Gateway.Auth = &v1alpha1.GatewayAuthSpec{OIDC: &v1alpha1.OIDCSpec{IssuerURL: issuerURL, Audience: audience}}
	}
}

// WithWorkerAuthentication turns the gateway-to-worker token on or off.
func WithWorkerAuthentication(enabled bool) Option {
	return func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Authentication.Enabled = ptr.To(enabled) }
}
