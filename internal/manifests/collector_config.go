package manifests

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	otelv1beta1 "github.com/open-telemetry/opentelemetry-operator/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// Component IDs the gateway configuration always contains; user
// configuration may not reuse them.
const (
	otlpReceiverID        = "otlp"
	memoryLimiterID       = "memory_limiter"
	loadBalancingID       = "load_balancing"
	routerID              = "deltapipeline_router"
	healthCheckExtensonID = "health_check"
	metricsPipelineID     = "metrics"
)

// Per-worker delivery settings of the routing exporter. A worker restart takes
// up to 60 s (terminationGracePeriodSeconds plus start-up); retries for twice
// that long and a queue that holds that much traffic per worker let the
// gateway wait for it instead of dropping its streams' points. One consumer
// per worker keeps each gateway's requests to a worker in the order they
// arrived, also when they are retried after the worker was away: the
// worker's duplicate detection remembers a few recent intervals per stream
// and refuses a point older than those.
var perWorkerRetryMaxElapsed = fmt.Sprintf("%ds", int(workerconfig.GatewayRetryBudget/time.Second))

// gatewayDrainTimeout is how long the router delivers its queues after
// SIGTERM; what is left is dropped and counted. It leaves the collector's
// other shutdown steps 5 s of the grace period.
var gatewayDrainTimeout = strconv.Itoa(gatewayShutdownSeconds-5) + "s"

const (
	perWorkerRetryInitial    = "1s"
	perWorkerRetryMaxBackoff = "10s"
	perWorkerQueueSize       = 10000
	perWorkerQueueConsumers  = 1
	perWorkerTimeoutSeconds  = 10
	resolverTimeout          = "5s"
	dnsResolverInterval      = "5s"
)

// GatewayCollectorConfig builds the gateway collector configuration: the otlp
// receiver, memory_limiter, the user's extra components, and the
// load_balancing exporter that sends each stream to the worker owning it.
func GatewayCollectorConfig(p *v1alpha1.DeltaPipeline) (otelv1beta1.Config, error) {
	var available *Components
	if !UsesLoadBalancing(p) {
		available = &GatewayDistribution
	}
	extra, err := userGatewayComponents(p.Spec.Gateway.Config, available)
	if err != nil {
		return otelv1beta1.Config{}, err
	}

	receivers := map[string]any{
		otlpReceiverID: map[string]any{"protocols": gatewayReceiverProtocols(p)},
	}
	maps.Copy(receivers, extra.receivers)

	processors := map[string]any{
		memoryLimiterID: GatewayMemoryLimiter(p),
	}
	maps.Copy(processors, extra.processors)

	extensions := map[string]any{
		healthCheckExtensonID: map[string]any{"endpoint": "0.0.0.0:" + strconv.Itoa(CollectorHealthPort)},
	}
	maps.Copy(extensions, extra.extensions)
	ingressExtensions, ingressOrder, err := gatewayIngressExtensions(p, extra.extensions)
	if err != nil {
		return otelv1beta1.Config{}, err
	}
	maps.Copy(extensions, ingressExtensions)

	cfg := otelv1beta1.Config{
		Receivers:  otelv1beta1.AnyConfig{Object: receivers},
		Processors: &otelv1beta1.AnyConfig{Object: processors},
		Extensions: &otelv1beta1.AnyConfig{Object: extensions},
		Exporters:  otelv1beta1.AnyConfig{Object: map[string]any{routingExporterID(p): routingExporter(p)}},
		Service: otelv1beta1.Service{
			Extensions: slices.Concat([]string{healthCheckExtensonID}, ingressOrder, extra.extensionOrder),
			Telemetry:  withIngressTelemetry(p, extra.telemetry, gatewayTelemetry(extra.telemetry)),
			Pipelines: map[string]*otelv1beta1.Pipeline{
				metricsPipelineID: {
					Receivers:  append([]string{otlpReceiverID}, extra.receiverOrder...),
					Processors: append([]string{memoryLimiterID}, extra.processorOrder...),
					Exporters:  []string{routingExporterID(p)},
				},
			},
		},
	}
	return cfg, nil
}

// GatewayCollectorConfigYAML renders GatewayCollectorConfig with sorted keys,
// so equal pipelines give byte-equal files and equal config hashes.
func GatewayCollectorConfigYAML(p *v1alpha1.DeltaPipeline) ([]byte, error) {
	cfg, err := GatewayCollectorConfig(p)
	if err != nil {
		return nil, err
	}
	// A pointer, so AnyConfig's pointer-receiver MarshalJSON applies to the fields.
	out, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding gateway collector configuration: %w", err)
	}
	return out, nil
}

// gatewayTelemetry serves the collector's own metrics on all interfaces
// (the default listens on localhost only) so they can be scraped from the
// pod's metrics port, unless the user configured telemetry themselves.
func gatewayTelemetry(user *otelv1beta1.AnyConfig) *otelv1beta1.AnyConfig {
	if user != nil && len(user.Object) > 0 {
		return user
	}
	return &otelv1beta1.AnyConfig{Object: map[string]any{
		"metrics": map[string]any{
			"readers": []any{map[string]any{
				"pull": map[string]any{"exporter": map[string]any{"prometheus": map[string]any{
					"host": "0.0.0.0",
					"port": CollectorMetricsPort,
				}}},
			}},
		},
	}}
}

func routingExporterID(p *v1alpha1.DeltaPipeline) string {
	if UsesLoadBalancing(p) {
		return loadBalancingID
	}
	return routerID
}

func routingExporter(p *v1alpha1.DeltaPipeline) map[string]any {
	if UsesLoadBalancing(p) {
		return loadBalancingExporter(p)
	}
	return routerExporter(p)
}

// routerExporter configures DeltaPipeline's router with the same delivery
// settings as load_balancing's per-worker ones. It watches the membership
// ConfigMap, so a change of the workers reaches every gateway without a
// roll. The gateway to worker leg is not compressed: gzip took about a tenth
// of the upstream gateway's CPU, and pod networks carry the bytes cheaply.
func routerExporter(p *v1alpha1.DeltaPipeline) map[string]any {
	exporter := map[string]any{
		"routing_key": string(routingKey(p.Spec.Routing)),
		"membership": map[string]any{"configmap": map[string]any{
			"namespace": p.Namespace,
			"name":      naming.MembershipConfigMap(p),
			"key":       MembershipKey,
		}},
		"timeout":     strconv.Itoa(perWorkerTimeoutSeconds) + "s",
		"compression": "none",
		"queue":       map[string]any{"size": perWorkerQueueSize},
		"retry": map[string]any{
			"initial_interval": perWorkerRetryInitial,
			"max_interval":     perWorkerRetryMaxBackoff,
			"max_elapsed_time": perWorkerRetryMaxElapsed,
		},
		"drain_timeout": gatewayDrainTimeout,
	}
	if routingKey(p.Spec.Routing) == v1alpha1.RoutingKeyAttributes {
		exporter["routing_attributes"] = slices.Clone(p.Spec.Routing.Attributes)
	}
	if WorkerAuthenticationEnabled(p) {
		// The router re-reads the file when the Secret changes.
		exporter["bearer_token_file"] = WorkerTokenPath
	}
	return exporter
}

// loadBalancingExporter configures load_balancing. Queueing and retries are set
// per worker inside protocol.otlp and explicitly off at the top level: a
// top-level retry re-sends a whole batch, including the parts other workers
// already accepted, and those workers would count the deltas twice.
func loadBalancingExporter(p *v1alpha1.DeltaPipeline) map[string]any {
	exporter := map[string]any{
		"routing_key":      string(routingKey(p.Spec.Routing)),
		"retry_on_failure": map[string]any{"enabled": false},
		"protocol": map[string]any{
			"otlp": map[string]any{
				"timeout": strconv.Itoa(perWorkerTimeoutSeconds) + "s",
				"tls":     map[string]any{"insecure": true},
				"sending_queue": map[string]any{
					"enabled":       true,
					"num_consumers": perWorkerQueueConsumers,
					"queue_size":    perWorkerQueueSize,
				},
				"retry_on_failure": map[string]any{
					"enabled":          true,
					"initial_interval": perWorkerRetryInitial,
					"max_interval":     perWorkerRetryMaxBackoff,
					"max_elapsed_time": perWorkerRetryMaxElapsed,
				},
			},
		},
		"resolver": resolver(p),
	}
	if headers := workerTokenHeaders(p); headers != nil {
		exporter["protocol"].(map[string]any)["otlp"].(map[string]any)["headers"] = headers
	}
	if routingKey(p.Spec.Routing) == v1alpha1.RoutingKeyAttributes {
		exporter["routing_attributes"] = slices.Clone(p.Spec.Routing.Attributes)
	}
	return exporter
}

func routingKey(r v1alpha1.RoutingSpec) v1alpha1.RoutingKey {
	if r.Key == "" {
		return v1alpha1.RoutingKeyStreamID
	}
	return r.Key
}

// resolver points the exporter at the worker headless Service. The k8s
// resolver returns pod host names (worker-0.worker.ns...) instead of pod IPs,
// so a restarted worker keeps its place on the hash ring.
func resolver(p *v1alpha1.DeltaPipeline) map[string]any {
	service := naming.WorkerHeadlessService(p)
	switch p.Spec.Routing.Resolver {
	case v1alpha1.ResolverK8s:
		return map[string]any{"k8s": map[string]any{
			"service":          service + "." + p.Namespace,
			"ports":            []any{OTLPGRPCPort},
			"return_hostnames": true,
			"timeout":          resolverTimeout,
		}}
	case v1alpha1.ResolverDNS:
		return map[string]any{"dns": map[string]any{
			"hostname": naming.ServiceHost(service, p.Namespace),
			"port":     strconv.Itoa(OTLPGRPCPort),
			"interval": dnsResolverInterval,
			"timeout":  resolverTimeout,
		}}
	default:
		return map[string]any{"static": map[string]any{"hostnames": workerHostnames(p)}}
	}
}

// workerHostnames are the ring members of the static resolver: one stable
// pod DNS name per worker replica.
func workerHostnames(p *v1alpha1.DeltaPipeline) []any {
	hosts := make([]any, WorkerReplicas(p))
	for i := range hosts {
		hosts[i] = naming.WorkerPodHost(p, p.Namespace, i) + ":" + strconv.Itoa(OTLPGRPCPort)
	}
	return hosts
}

// RoutingSpreadsLoad reports whether the routing key can spread streams over
// several workers. resource and service hash attributes that are identical
// for every client of one program (Claude Code reports the same service.name,
// os.type and host.arch for every user), which sends every stream to one worker.
func RoutingSpreadsLoad(r v1alpha1.RoutingSpec) bool {
	switch routingKey(r) {
	case v1alpha1.RoutingKeyResource, v1alpha1.RoutingKeyService:
		return false
	default:
		return true
	}
}

type userComponents struct {
	receivers, processors, extensions             map[string]any
	receiverOrder, processorOrder, extensionOrder []string
	telemetry                                     *otelv1beta1.AnyConfig
}

// userGatewayComponents validates spec.gateway.config and orders its
// components. Errors name the field so the condition message points at it.
// available, when set, are the only component types the gateway image has.
func userGatewayComponents(cfg *otelv1beta1.Config, available *Components) (userComponents, error) {
	var u userComponents
	if cfg == nil {
		return u, nil
	}
	const field = "spec.gateway.config"
	if len(cfg.Exporters.Object) > 0 {
		return u, fmt.Errorf("%s.exporters: not allowed: every stream must reach its worker through the routing exporter", field)
	}
	if cfg.Connectors != nil && len(cfg.Connectors.Object) > 0 {
		return u, fmt.Errorf("%s.connectors: not supported", field)
	}
	for id := range cfg.Service.Pipelines {
		if id != metricsPipelineID {
			return u, fmt.Errorf("%s.service.pipelines.%s: only the metrics pipeline can be extended", field, id)
		}
	}
	var pipeline otelv1beta1.Pipeline
	if pl := cfg.Service.Pipelines[metricsPipelineID]; pl != nil {
		pipeline = *pl
		if len(pipeline.Exporters) > 0 {
			return u, fmt.Errorf("%s.service.pipelines.metrics.exporters: not allowed: the routing exporter is the only exporter", field)
		}
	}

	var err error
	u.receivers = cfg.Receivers.Object
	if u.receiverOrder, err = componentOrder(field+".receivers", u.receivers, pipeline.Receivers, otlpReceiverID); err != nil {
		return u, err
	}
	u.processors = anyConfigObject(cfg.Processors)
	if u.processorOrder, err = componentOrder(field+".processors", u.processors, pipeline.Processors, memoryLimiterID); err != nil {
		return u, err
	}
	u.extensions = anyConfigObject(cfg.Extensions)
	if u.extensionOrder, err = componentOrder(field+".extensions", u.extensions, cfg.Service.Extensions, healthCheckExtensonID); err != nil {
		return u, err
	}
	u.telemetry = cfg.Service.Telemetry
	if available != nil {
		for _, c := range []struct {
			kind    string
			defined map[string]any
			types   []string
		}{
			{"receivers", u.receivers, available.Receivers},
			{"processors", u.processors, available.Processors},
			{"extensions", u.extensions, available.Extensions},
		} {
			if err := checkAvailable(field+"."+c.kind, c.defined, c.types); err != nil {
				return u, err
			}
		}
	}
	return u, nil
}

// componentOrder is the listed order when the user listed components in the
// service section, otherwise every defined component in name order.
func componentOrder(field string, defined map[string]any, listed []string, reserved string) ([]string, error) {
	if _, clash := defined[reserved]; clash {
		return nil, fmt.Errorf("%s.%s: reserved: the gateway configures it", field, reserved)
	}
	if len(listed) == 0 {
		return slices.Sorted(maps.Keys(defined)), nil
	}
	for _, id := range listed {
		if _, ok := defined[id]; !ok {
			return nil, fmt.Errorf("%s: %q is listed in the service section but not defined", field, id)
		}
	}
	return slices.Clone(listed), nil
}

func anyConfigObject(c *otelv1beta1.AnyConfig) map[string]any {
	if c == nil {
		return nil
	}
	return c.Object
}
