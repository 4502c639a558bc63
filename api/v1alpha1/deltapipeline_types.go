package v1alpha1

import (
	otelv1beta1 "github.com/open-telemetry/opentelemetry-operator/apis/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UpstreamGatewayImage is the upstream collector the gateway runs with
// spec.gateway.router loadBalancing; the rendered configuration is validated
// against this release, and another may reject or reinterpret its keys.
const UpstreamGatewayImage = "otel/opentelemetry-collector-contrib:0.161.0"

// DeltaPipelineSpec is the desired pipeline: how streams are routed, the two
// tiers, and where cumulative series go.
// +kubebuilder:validation:XValidation:rule="!has(self.routing.resolver) || self.routing.resolver == 'static' || self.gateway.router == 'loadBalancing'",message="spec.routing.resolver k8s and dns need spec.gateway.router: loadBalancing; the deltapipeline router follows the membership the operator publishes",fieldPath=".routing.resolver"
// +kubebuilder:validation:XValidation:rule="!has(self.worker) || !has(self.worker.autoscaling) || !has(self.gateway) || !has(self.gateway.router) || self.gateway.router != 'loadBalancing'",message="spec.worker.autoscaling needs spec.gateway.router deltapipeline: rescaling resets the moved series with the upstream load_balancing exporter; state hand-off needs the deltapipeline router",fieldPath=".worker.autoscaling"
type DeltaPipelineSpec struct {
	// Routing decides which worker owns a stream.
	// +kubebuilder:default={}
	// +optional
	Routing RoutingSpec `json:"routing,omitempty"`

	// Gateway is tier 1: collectors that receive OTLP and route each stream to its worker.
	// +kubebuilder:default={}
	// +optional
	Gateway GatewaySpec `json:"gateway,omitempty"`

	// Worker is tier 2: the converters that hold per-stream state.
	// +kubebuilder:default={}
	// +optional
	Worker WorkerSpec `json:"worker,omitempty"`

	// Exporters are the destinations of the cumulative series; at least one is required.
	Exporters ExportersSpec `json:"exporters"`

	// ServiceAccount configures the workers' ServiceAccount, for example the
	// IRSA annotation eks.amazonaws.com/role-arn used to sign requests to AMP.
	// +optional
	ServiceAccount ServiceAccountSpec `json:"serviceAccount,omitempty"`

	// NetworkPolicy restricts who may connect to the pipeline's pods.
	// +kubebuilder:default={}
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// Monitoring configures how Prometheus finds the gateways' and workers'
	// own telemetry.
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`
}

// MonitoringSpec configures the scrape objects of the pipeline's telemetry.
type MonitoringSpec struct {
	// PodMonitor renders one prometheus-operator PodMonitor per tier,
	// scraping the gateways' collector telemetry (port metrics) and the
	// workers' telemetry port. Needs the monitoring.coreos.com/v1 PodMonitor
	// CRD; without it the condition Monitoring says so and nothing else is
	// affected.
	// +optional
	PodMonitor PodMonitorSpec `json:"podMonitor,omitempty"`
}

// PodMonitorSpec configures the rendered PodMonitors.
type PodMonitorSpec struct {
	// Enabled renders the PodMonitors.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// Labels are added to the PodMonitors, for example the one a Prometheus'
	// podMonitorSelector matches.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Interval between scrapes; empty uses Prometheus' default.
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	// +optional
	Interval string `json:"interval,omitempty"`
}

// NetworkPolicySpec configures the ingress NetworkPolicies of both tiers.
// Egress is never restricted. The policies take effect only in clusters
// whose network plugin enforces NetworkPolicy.
type NetworkPolicySpec struct {
	// Enabled creates the NetworkPolicies: workers accept OTLP from their
	// gateways only, gateways from spec.gateway.allowedSources (anyone when
	// empty). Turning it off deletes them.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// TelemetryFrom lists who may scrape the pods' own metrics (gateway 8888,
	// worker 8888 and the prometheus exporter port). Empty allows every pod in
	// every namespace, so a Prometheus in its own namespace keeps scraping.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	TelemetryFrom []TrafficSource `json:"telemetryFrom,omitempty"`
}

// TrafficSource is one allowed origin of connections: a CIDR block, or pods
// chosen by a namespace selector, a pod selector, or both. It is the subset
// of networking.k8s.io/v1 NetworkPolicyPeer that makes sense here.
// +kubebuilder:validation:XValidation:rule="has(self.ipBlock) != (has(self.namespaceSelector) || has(self.podSelector))",message="set either ipBlock or namespaceSelector/podSelector on a traffic source, not both and not neither"
type TrafficSource struct {
	// IPBlock allows a CIDR block, for example the laptops' VPN range.
	// +optional
	IPBlock *IPBlock `json:"ipBlock,omitempty"`
	// NamespaceSelector selects namespaces; alone, every pod in them.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// PodSelector selects pods, in the pipeline's namespace unless
	// namespaceSelector is set too.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// IPBlock is a CIDR block with optional exceptions inside it.
// +kubebuilder:validation:XValidation:rule="!has(self.except) || self.except.all(e, cidr(e).ip().family() == cidr(self.cidr).ip().family() && cidr(self.cidr).containsCIDR(e))",message="every ipBlock.except entry must be a CIDR inside ipBlock.cidr",fieldPath=".except"
type IPBlock struct {
	// CIDR such as 10.0.0.0/8 or 2001:db8::/32.
	CIDR CIDR `json:"cidr"`
	// Except are CIDRs inside cidr that are not allowed.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Except []CIDR `json:"except,omitempty"`
}

// CIDR is an IPv4 or IPv6 address block in CIDR notation.
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
type CIDR string

// RoutingKey is what the gateway hashes to pick a worker.
// +kubebuilder:validation:Enum=streamID;attributes;resource;service
type RoutingKey string

const (
	// RoutingKeyStreamID hashes the whole stream identity; spreads load best.
	RoutingKeyStreamID RoutingKey = "streamID"
	// RoutingKeyAttributes hashes the listed attributes.
	RoutingKeyAttributes RoutingKey = "attributes"
	// RoutingKeyResource hashes the resource attributes only.
	RoutingKeyResource RoutingKey = "resource"
	// RoutingKeyService hashes service.name only.
	RoutingKeyService RoutingKey = "service"
)

// Resolver is how gateways discover the workers.
// +kubebuilder:validation:Enum=static;k8s;dns
type Resolver string

const (
	// ResolverStatic lists the stable DNS name of every worker pod
	// (NAME-worker-0.NAME-worker.NAMESPACE.svc, ...). The hash ring changes
	// only when spec.worker.replicas does: a restarting worker keeps its
	// streams, which wait in the gateways' per-worker queues until it is back.
	ResolverStatic Resolver = "static"
	// ResolverK8s watches the endpoints of the worker headless Service and
	// uses pod host names. A worker that is not ready leaves the ring, so
	// its streams move to other workers while it restarts.
	ResolverK8s Resolver = "k8s"
	// ResolverDNS polls the A records of the worker headless Service; like
	// k8s, the ring follows worker readiness.
	ResolverDNS Resolver = "dns"
)

// RoutingSpec decides which worker owns a stream. The rules test has(self.key)
// because the API server also evaluates them on the object's default ({}),
// before key is defaulted.
// +kubebuilder:validation:XValidation:rule="!has(self.key) || self.key != 'attributes' || (has(self.attributes) && size(self.attributes) > 0)",message="spec.routing.attributes must list at least one attribute when spec.routing.key is attributes",fieldPath=".attributes"
// +kubebuilder:validation:XValidation:rule="(has(self.key) && self.key == 'attributes') || !has(self.attributes) || size(self.attributes) == 0",message="spec.routing.attributes is only allowed when spec.routing.key is attributes",fieldPath=".attributes"
type RoutingSpec struct {
	// Key is streamID, attributes, resource or service. resource and service
	// put every stream of clients sharing a resource (all Claude Code users do)
	// on one worker; the RoutingBalanced condition warns about it.
	// +kubebuilder:default=streamID
	// +optional
	Key RoutingKey `json:"key,omitempty"`

	// Attributes are hashed, in order, when key is attributes; for example
	// [session.id] keeps every stream of one Claude Code session on one worker.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Attributes []string `json:"attributes,omitempty"`

	// Resolver is static (default), k8s or dns. Only static keeps every
	// stream on its worker while that worker restarts, which exact totals
	// need; k8s and dns follow worker readiness.
	// +kubebuilder:default=static
	// +optional
	Resolver Resolver `json:"resolver,omitempty"`
}

// Scheduling places a tier's pods.
type Scheduling struct {
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints default to spreading pods across nodes
	// (topologyKey kubernetes.io/hostname, whenUnsatisfiable ScheduleAnyway).
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
}

// GatewaySpec configures tier 1.
type GatewaySpec struct {
	// Replicas of the gateway Deployment; ignored while autoscaling is set.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Router is how gateways send each stream to its worker. deltapipeline
	// (default) runs DeltaPipeline's gateway distribution: its router routes
	// by the ring the workers share and follows the membership the operator
	// publishes without a restart. loadBalancing runs the upstream contrib
	// collector and its load_balancing exporter, which changes its ring only
	// when the gateways roll.
	// +kubebuilder:default=deltapipeline
	// +kubebuilder:validation:Enum=deltapipeline;loadBalancing
	// +optional
	Router GatewayRouter `json:"router,omitempty"`

	// Image of the gateway collector. Defaults to the DeltaPipeline gateway
	// image of the operator's own version (manager flag --gateway-image) with
	// router deltapipeline, and to the upstream contrib collector 0.161.0
	// (--upstream-gateway-image) with router loadBalancing.
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the collector container. Unset fields get the operator's
	// defaults (docs/api.md lists them); a field set to zero removes its
	// default, for example limits.memory: "0" for no memory limit.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	Scheduling `json:",inline"`

	// Service exposes the gateway to clients.
	// +optional
	Service GatewayServiceSpec `json:"service,omitempty"`

	// AllowedSources, when set and spec.networkPolicy.enabled, are the only
	// origins allowed to send OTLP to the gateways; empty allows everyone,
	// as laptops outside the cluster must reach them. With a LoadBalancer
	// Service, the source seen by the pod is the client's address only with
	// externalTrafficPolicy Local or a load balancer that preserves it.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	AllowedSources []TrafficSource `json:"allowedSources,omitempty"`

	// Autoscaling, when set, adds a HorizontalPodAutoscaler on CPU utilization.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// TLS, when set, serves both OTLP receivers (gRPC 4317, HTTP 4318) over
	// TLS with the certificate of a kubernetes.io/tls Secret. The collector
	// reads the files again every minute, so a renewed certificate is served
	// without a restart.
	// +optional
	TLS *GatewayTLSSpec `json:"tls,omitempty"`

	// Auth, when set, makes both OTLP receivers refuse requests without valid
	// credentials: HTTP 401, gRPC UNAUTHENTICATED.
	// +optional
	Auth *GatewayAuthSpec `json:"auth,omitempty"`

	// Config is extra collector configuration in OpenTelemetryCollector syntax:
	// its receivers feed the metrics pipeline next to the built-in otlp
	// receiver, and the processors listed in service.pipelines.metrics.processors
	// run, in that order, after memory_limiter and before the routing exporter.
	// Exporters are not allowed: every stream must reach its worker.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Config *otelv1beta1.Config `json:"config,omitempty"`
}

// GatewayRouter is the component that routes streams to workers.
type GatewayRouter string

const (
	// GatewayRouterDeltaPipeline is DeltaPipeline's routing exporter.
	GatewayRouterDeltaPipeline GatewayRouter = "deltapipeline"
	// GatewayRouterLoadBalancing is the upstream load_balancing exporter.
	GatewayRouterLoadBalancing GatewayRouter = "loadBalancing"
)

// GatewayTLSSpec is the gateway's serving certificate.
type GatewayTLSSpec struct {
	// SecretName names a Secret of type kubernetes.io/tls in the pipeline's
	// namespace with the PEM keys tls.crt (the certificate chain, leaf first)
	// and tls.key, as cert-manager writes it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// GatewayAuthSpec is how clients of the gateway authenticate; exactly one
// mode is set.
// +kubebuilder:validation:XValidation:rule="has(self.bearerTokens) != has(self.oidc)",message="spec.gateway.auth: set exactly one of bearerTokens and oidc"
type GatewayAuthSpec struct {
	// BearerTokens are Secret keys each holding one accepted token; a client
	// sends "Authorization: Bearer <token>". Several let teams rotate one
	// token at a time: add the new one, move clients, remove the old one. A
	// changed Secret takes effect within about two minutes without a restart.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	BearerTokens []SecretKeyRef `json:"bearerTokens,omitempty"`

	// OIDC accepts JSON Web Tokens signed by an OpenID Connect issuer.
	// +optional
	OIDC *OIDCSpec `json:"oidc,omitempty"`
}

// OIDCSpec accepts tokens of one OpenID Connect issuer.
type OIDCSpec struct {
	// IssuerURL is the issuer; the gateway fetches its discovery document
	// and signing keys from IssuerURL/.well-known/openid-configuration.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="spec.gateway.auth.oidc.issuerURL must be an https URL such as https://login.example.com/realms/dev"
	IssuerURL string `json:"issuerURL"`

	// Audience must appear in a token's aud claim.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Audience string `json:"audience"`
}

// GatewayServiceSpec configures the gateway Service.
type GatewayServiceSpec struct {
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// Annotations, for example for a cloud load balancer.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AutoscalingSpec configures the gateway HorizontalPodAutoscaler.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="spec.gateway.autoscaling.minReplicas must not be greater than maxReplicas",fieldPath=".minReplicas"
type AutoscalingSpec struct {
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage is the average CPU use, in percent of requests, kept by scaling.
	// +kubebuilder:default=70
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// WorkerAutoscalingSpec configures the workers' HorizontalPodAutoscaler.
// The autoscaler scales the DeltaPipeline itself through its scale
// subresource, so it writes spec.worker.replicas and the operator stays the
// only writer of the StatefulSet.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="spec.worker.autoscaling.minReplicas (default 3) must not be greater than maxReplicas",fieldPath=".minReplicas"
// +kubebuilder:validation:XValidation:rule="has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)",message="spec.worker.autoscaling must set at least one of targetCPUUtilizationPercentage and targetMemoryUtilizationPercentage"
type WorkerAutoscalingSpec struct {
	// MinReplicas is the fewest workers the autoscaler keeps. The default is
	// the default of spec.worker.replicas, so a new pipeline starts at its
	// floor and its first rescale (which moves streams) waits for load.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas is the most workers the autoscaler asks for.
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage is the average CPU use, in percent of
	// the worker container's request, kept by scaling.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
	// TargetMemoryUtilizationPercentage is the average memory use, in percent
	// of the worker container's request, kept by scaling.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetMemoryUtilizationPercentage *int32 `json:"targetMemoryUtilizationPercentage,omitempty"`
}

// WorkerSpec configures tier 2.
type WorkerSpec struct {
	// Replicas of the worker StatefulSet. It is also the scale subresource's
	// replica count (kubectl scale dpl NAME --replicas N), which the
	// autoscaler of spec.worker.autoscaling writes.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling, when set, adds a HorizontalPodAutoscaler that sets
	// replicas from the workers' CPU or memory utilization.
	// +optional
	Autoscaling *WorkerAutoscalingSpec `json:"autoscaling,omitempty"`

	// Image of the worker; defaults to the worker image of the operator's own
	// version (manager flag --worker-image).
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the worker container. Unset fields get defaults computed
	// from conversion.maxStreams (docs/api.md has the formula); a field set to
	// zero removes its default, for example limits.memory: "0" for no memory
	// limit.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	Scheduling `json:",inline"`

	// Persistence keeps per-stream state on a volume so a restarted worker
	// continues its series instead of resetting them.
	// +kubebuilder:default={}
	// +optional
	Persistence PersistenceSpec `json:"persistence,omitempty"`

	// Conversion tunes the delta-to-cumulative engine.
	// +kubebuilder:default={}
	// +optional
	Conversion ConversionSpec `json:"conversion,omitempty"`

	// Authentication of the gateways to the workers.
	// +kubebuilder:default={}
	// +optional
	Authentication WorkerAuthenticationSpec `json:"authentication,omitempty"`
}

// WorkerAuthenticationSpec controls the gateway-to-worker token.
type WorkerAuthenticationSpec struct {
	// Enabled makes the operator keep a random token in the Secret
	// NAME-worker-token, mounted into the gateway and worker pods: the
	// gateways send it and the workers refuse any OTLP request without it,
	// so no other pod can write into a worker.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// PersistenceSpec is the worker's state volume.
type PersistenceSpec struct {
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// +kubebuilder:default="1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// StorageClassName; empty uses the cluster's default class.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// Writers is how overlapping points of one stream are treated.
// +kubebuilder:validation:Enum=shared;single
type Writers string

// ConversionSpec tunes the delta-to-cumulative engine.
// +kubebuilder:validation:XValidation:rule="!has(self.maxStale) || !has(self.interval) || duration(self.maxStale) >= duration(self.interval)",message="spec.worker.conversion.maxStale must not be shorter than spec.worker.conversion.interval",fieldPath=".maxStale"
type ConversionSpec struct {
	// MaxStreams bounds the streams one worker holds; points of further new
	// streams are refused and counted.
	// +kubebuilder:default=1000000
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxStreams *int32 `json:"maxStreams,omitempty"`
	// MaxStale is how long a stream may go without a point before it is forgotten.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="spec.worker.conversion.maxStale must be a positive duration"
	// +optional
	MaxStale *metav1.Duration `json:"maxStale,omitempty"`
	// Interval is how often cumulative values are emitted.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="spec.worker.conversion.interval must be a positive duration"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Writers is shared (overlapping points of a stream all count) or single
	// (one writer per stream; an overlapping point is dropped and counted).
	// +kubebuilder:default=shared
	// +optional
	Writers Writers `json:"writers,omitempty"`
}

// ExportersSpec lists the destinations.
// +kubebuilder:validation:XValidation:rule="has(self.prometheusRemoteWrite) || has(self.otlp) || has(self.prometheus)",message="spec.exporters must set at least one of prometheusRemoteWrite, otlp, prometheus"
type ExportersSpec struct {
	// +optional
	PrometheusRemoteWrite *RemoteWriteSpec `json:"prometheusRemoteWrite,omitempty"`
	// +optional
	OTLP *OTLPExporterSpec `json:"otlp,omitempty"`
	// +optional
	Prometheus *PrometheusSpec `json:"prometheus,omitempty"`
}

// RemoteWriteSpec sends Prometheus remote write requests.
// +kubebuilder:validation:XValidation:rule="(has(self.sigv4) ? 1 : 0) + (has(self.basicAuth) ? 1 : 0) + (has(self.bearerTokenSecretRef) ? 1 : 0) <= 1",message="spec.exporters.prometheusRemoteWrite: sigv4, basicAuth and bearerTokenSecretRef are mutually exclusive"
type RemoteWriteSpec struct {
	// Endpoint is the remote write URL.
	// +kubebuilder:validation:Pattern=`^https?://[^/]+`
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint"`
	// SigV4 signs requests for Amazon Managed Service for Prometheus with the
	// workers' AWS identity (IRSA or EKS Pod Identity).
	// +optional
	SigV4 *SigV4Spec `json:"sigv4,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Headers []HeaderSpec `json:"headers,omitempty"`
	// +optional
	BasicAuth *BasicAuthSpec `json:"basicAuth,omitempty"`
	// BearerTokenSecretRef holds a token sent as "Authorization: Bearer <token>".
	// +optional
	BearerTokenSecretRef *SecretKeyRef `json:"bearerTokenSecretRef,omitempty"`
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
	// ExternalLabels are added to every series.
	// +optional
	ExternalLabels map[string]string `json:"externalLabels,omitempty"`
}

// SigV4Spec configures AWS Signature Version 4 signing (service "aps").
type SigV4Spec struct {
	// Region of the AMP workspace, for example us-east-1.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region"`
	// RoleARN, if set, is assumed before signing.
	// +kubebuilder:validation:Pattern=`^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+`
	// +optional
	RoleARN string `json:"roleARN,omitempty"`
}

// BasicAuthSpec is HTTP basic authentication with a password from a Secret.
type BasicAuthSpec struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Username string `json:"username"`
	// PasswordSecretRef names the Secret key holding the password.
	PasswordSecretRef SecretKeyRef `json:"passwordSecretRef"`
}

// HeaderSpec is one request header, with a literal value or a value from a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="exactly one of value and valueFrom must be set on a header"
type HeaderSpec struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	// Value is a literal; use valueFrom for anything secret.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value *string `json:"value,omitempty"`
	// +optional
	ValueFrom *SecretValueSource `json:"valueFrom,omitempty"`
}

// SecretValueSource reads a value from a Secret.
type SecretValueSource struct {
	SecretKeyRef SecretKeyRef `json:"secretKeyRef"`
}

// SecretKeyRef names one key of a Secret in the pipeline's namespace.
type SecretKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ConfigMapKeyRef names one key of a ConfigMap in the pipeline's namespace.
type ConfigMapKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// FileSource reads a file's content from a Secret or a ConfigMap key.
// +kubebuilder:validation:XValidation:rule="has(self.secretKeyRef) != has(self.configMapKeyRef)",message="exactly one of secretKeyRef and configMapKeyRef must be set"
type FileSource struct {
	// +optional
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
	// +optional
	ConfigMapKeyRef *ConfigMapKeyRef `json:"configMapKeyRef,omitempty"`
}

// TLSSpec configures the workers' TLS client.
// +kubebuilder:validation:XValidation:rule="has(self.cert) == has(self.key)",message="cert and key must be set together"
type TLSSpec struct {
	// CA verifies the server.
	// +optional
	CA *FileSource `json:"ca,omitempty"`
	// Cert is the client certificate.
	// +optional
	Cert *FileSource `json:"cert,omitempty"`
	// Key is the client key; it must come from a Secret.
	// +optional
	Key *SecretKeyRef `json:"key,omitempty"`
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// OTLPExporterSpec sends cumulative metrics over OTLP/gRPC.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecure) && self.insecure && has(self.tls))",message="spec.exporters.otlp: insecure and tls are mutually exclusive"
type OTLPExporterSpec struct {
	// Endpoint is host:port of the OTLP/gRPC server.
	// +kubebuilder:validation:Pattern=`^[^/]+:[0-9]{1,5}$`
	// +kubebuilder:validation:MaxLength=512
	Endpoint string `json:"endpoint"`
	// Insecure sends without TLS.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Headers []HeaderSpec `json:"headers,omitempty"`
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`
	// +kubebuilder:validation:Enum=gzip;none
	// +kubebuilder:default=gzip
	// +optional
	Compression string `json:"compression,omitempty"`
}

// PrometheusSpec serves the cumulative series on each worker for scraping.
// +kubebuilder:validation:XValidation:rule="!(self.port in [4317, 4318, 8888])",message="spec.exporters.prometheus.port must not be 4317, 4318 or 8888, which the worker already uses",fieldPath=".port"
type PrometheusSpec struct {
	// +kubebuilder:default=9464
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
}

// ServiceAccountSpec configures the workers' ServiceAccount.
type ServiceAccountSpec struct {
	// Annotations, for example eks.amazonaws.com/role-arn for IRSA.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Condition types reported in status.conditions.
const (
	// ConditionReady is True when both tiers are available and every reference resolves.
	ConditionReady = "Ready"
	// ConditionGatewayAvailable is True when the gateway Deployment has every desired replica ready.
	ConditionGatewayAvailable = "GatewayAvailable"
	// ConditionWorkersAvailable is True when the worker StatefulSet has every desired replica ready.
	ConditionWorkersAvailable = "WorkersAvailable"
	// ConditionReferencesResolved is True when every referenced Secret and ConfigMap key exists.
	ConditionReferencesResolved = "ReferencesResolved"
	// ConditionRoutingBalanced is False when the routing key cannot spread streams over workers.
	ConditionRoutingBalanced = "RoutingBalanced"
	// ConditionConfigValid is False when spec.gateway.config cannot be merged
	// into the gateway configuration or the worker configuration is invalid.
	ConditionConfigValid = "ConfigValid"
	// ConditionWorkerMemoryFits is False when a worker's memory limit is too
	// small for spec.worker.conversion.maxStreams: the worker would be
	// OOM-killed before it reached its stream limit.
	ConditionWorkerMemoryFits = "WorkerMemoryFits"
	// ConditionMonitoring is set while spec.monitoring.podMonitor.enabled:
	// True once the PodMonitors are applied, False when their CRD is missing.
	ConditionMonitoring = "Monitoring"
	// ConditionRescaling is True while the worker ring changes size: new
	// workers start, then streams are handed over to their new owners, and
	// only then does a shrinking StatefulSet lose its pods. Its message
	// gives the progress. With spec.gateway.router loadBalancing streams
	// are not handed over and the condition is not set.
	ConditionRescaling = "Rescaling"
)

// Reasons of the Rescaling condition.
const (
	// ReasonRingSteady: the ring has spec.worker.replicas members.
	ReasonRingSteady = "Steady"
	// ReasonStartingWorkers: the StatefulSet grew; the ring grows once the
	// new workers are ready.
	ReasonStartingWorkers = "StartingWorkers"
	// ReasonHandingOver: streams move to their new owners.
	ReasonHandingOver = "HandingOver"
	// ReasonHandoverStalled: the hand-over runs longer than it should; it
	// goes on (nothing is cut), and the message names the workers it waits for.
	ReasonHandoverStalled = "HandoverStalled"
)

// Condition reasons.
const (
	ReasonAvailable              = "Available"
	ReasonProgressing            = "Progressing"
	ReasonResolved               = "Resolved"
	ReasonSecretNotFound         = "SecretNotFound"
	ReasonSecretKeyNotFound      = "SecretKeyNotFound"
	ReasonConfigMapNotFound      = "ConfigMapNotFound"
	ReasonConfigMapKeyNotFound   = "ConfigMapKeyNotFound"
	ReasonHotSpotRouting         = "HotSpotRouting"
	ReasonSpreadRouting          = "SpreadRouting"
	ReasonValid                  = "Valid"
	ReasonInvalidGatewayConfig   = "InvalidGatewayConfig"
	ReasonInvalidWorkerConfig    = "InvalidWorkerConfig"
	ReasonNotReady               = "NotReady"
	ReasonReconcileFailed        = "ReconcileFailed"
	ReasonStreamsFitMemory       = "StreamsFitMemoryLimit"
	ReasonMaxStreamsExceedMemory = "MaxStreamsExceedMemoryLimit"
	ReasonNoMemoryLimit          = "NoMemoryLimit"
	ReasonPodMonitorsApplied     = "PodMonitorsApplied"
	ReasonPodMonitorCRDMissing   = "PodMonitorCRDMissing"
	// ReasonSecretTypeMismatch: spec.gateway.tls names a Secret that is not
	// of type kubernetes.io/tls.
	ReasonSecretTypeMismatch = "SecretTypeMismatch"
	// ReasonInvalidTLSCertificate: tls.crt and tls.key of spec.gateway.tls
	// are not a PEM certificate and its private key.
	ReasonInvalidTLSCertificate = "InvalidTLSCertificate"
	// ReasonInvalidBearerToken: a spec.gateway.auth.bearerTokens key is empty
	// or holds whitespace inside the token.
	ReasonInvalidBearerToken = "InvalidBearerToken"
)

// TierStatus reports one tier's replicas.
type TierStatus struct {
	// Replicas desired.
	Replicas int32 `json:"replicas"`
	// ReadyReplicas observed ready.
	ReadyReplicas int32 `json:"readyReplicas"`
	// Summary is "ready/desired", shown by kubectl get.
	Summary string `json:"summary,omitempty"`
	// Resources the tier's containers are rendered with: the spec's
	// resources over the operator's defaults.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// WorkerTierStatus reports the worker tier; it is the status side of the
// scale subresource.
type WorkerTierStatus struct {
	TierStatus `json:",inline"`
	// Selector selects the worker pods, in label selector string form: the
	// scale subresource's selector, which a HorizontalPodAutoscaler uses to
	// find the pods it measures.
	// +optional
	Selector string `json:"selector,omitempty"`
}

// MembershipStatus is the ring the operator last published to the gateways.
type MembershipStatus struct {
	// Epoch grows by one with every change of the members.
	Epoch int64 `json:"epoch"`
	// Workers is how many workers the membership lists.
	Workers int32 `json:"workers"`
	// PreviousWorkers, while streams are handed over, is how many workers
	// the ring had before.
	// +optional
	PreviousWorkers int32 `json:"previousWorkers,omitempty"`
}

// Endpoints are where in-cluster clients send OTLP.
type Endpoints struct {
	// GRPC is host:port of the gateway's OTLP/gRPC receiver.
	GRPC string `json:"grpc,omitempty"`
	// HTTP is the base URL of the gateway's OTLP/HTTP receiver.
	HTTP string `json:"http,omitempty"`
}

// DeltaPipelineStatus is the observed state.
type DeltaPipelineStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	Gateway TierStatus `json:"gateway,omitempty"`
	// Workers reports the worker tier. Its replicas is spec.replicas of the
	// worker StatefulSet, the worker count the operator has applied (it may
	// trail spec.worker.replicas while a rescale is in progress;
	// spec.worker.replicas until the StatefulSet exists), and the scale
	// subresource's status replicas.
	// +optional
	Workers WorkerTierStatus `json:"workers,omitempty"`
	// +optional
	Endpoints Endpoints `json:"endpoints,omitempty"`
	// Membership is the worker ring published to the gateways, with
	// spec.gateway.router deltapipeline.
	// +optional
	Membership *MembershipStatus `json:"membership,omitempty"`
}

// DeltaPipeline converts delta OpenTelemetry metrics to cumulative series
// with a routing gateway tier and a stateful worker tier.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.worker.replicas,statuspath=.status.workers.replicas,selectorpath=.status.workers.selector
// +kubebuilder:resource:shortName=dpl,categories=telemetry
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.gateway.summary`
// +kubebuilder:printcolumn:name="Workers",type=string,JSONPath=`.status.workers.summary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 40",message="metadata.name must be at most 40 characters: the worker pods' names and labels are derived from it"
type DeltaPipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DeltaPipelineSpec   `json:"spec,omitempty"`
	Status DeltaPipelineStatus `json:"status,omitempty"`
}

// DeltaPipelineList is a list of DeltaPipelines.
//
// +kubebuilder:object:root=true
type DeltaPipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeltaPipeline `json:"items"`
}
