package manifests

import (
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// Both policies restrict ingress only: egress (gateways to workers, workers
// to their exporters, the resolver to the API server) stays as the
// namespace's other policies leave it. Traffic from the pod's own node, such
// as the kubelet's probes, is always allowed by NetworkPolicy semantics.

// NetworkPoliciesEnabled reports whether the pipeline's pods get
// NetworkPolicies; the API server defaults it to true.
func NetworkPoliciesEnabled(p *v1alpha1.DeltaPipeline) bool {
	return ptr.Deref(p.Spec.NetworkPolicy.Enabled, true)
}

// GatewayNetworkPolicy lets clients from spec.gateway.allowedSources (anyone
// when empty: laptops outside the cluster must reach the gateway) send to
// every port a gateway receiver listens on, and scrapers from
// spec.networkPolicy.telemetryFrom read the collector's metrics. It fails
// only when spec.gateway.config is invalid, as the gateway ConfigMap does.
func GatewayNetworkPolicy(p *v1alpha1.DeltaPipeline) (*networkingv1.NetworkPolicy, error) {
	ports, err := gatewayReceiverPorts(p)
	if err != nil {
		return nil, err
	}
	return networkPolicy(p, naming.GatewayNetworkPolicy(p), naming.ComponentGateway, []networkingv1.NetworkPolicyIngressRule{
		{From: peers(p.Spec.Gateway.AllowedSources), Ports: tcpPolicyPorts(ports...)},
		telemetryRule(p, CollectorMetricsPort),
	}), nil
}

// WorkerNetworkPolicy lets only the pipeline's own gateways send OTLP to the
// workers, so no other pod can write into a pipeline's series, and scrapers
// from spec.networkPolicy.telemetryFrom read the telemetry and prometheus
// exporter ports.
func WorkerNetworkPolicy(p *v1alpha1.DeltaPipeline) *networkingv1.NetworkPolicy {
	rules := []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: labelSelector(naming.SelectorLabels(p, naming.ComponentGateway))}},
		Ports: tcpPolicyPorts(workerconfig.DefaultOTLPGRPCPort, workerconfig.DefaultOTLPHTTPPort),
	}}
	if peerPorts := workerPeerPorts(p); len(peerPorts) > 0 {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: labelSelector(naming.SelectorLabels(p, naming.ComponentWorker))}},
			Ports: tcpPolicyPorts(peerPorts...),
		})
	}
	telemetry := []int32{workerconfig.DefaultTelemetryPort}
	if port := PrometheusPort(p); port != 0 {
		telemetry = append(telemetry, port)
	}
	rules = append(rules, telemetryRule(p, telemetry...))
	return networkPolicy(p, naming.WorkerNetworkPolicy(p), naming.ComponentWorker, rules)
}

// workerPeerPorts are the ports workers serve to each other: the hand-over
// port, when they hand streams over.
func workerPeerPorts(p *v1alpha1.DeltaPipeline) []int32 {
	if !HandoffEnabled(p) {
		return nil
	}
	return []int32{workerconfig.DefaultPeerPort}
}

// telemetryRule admits scrapers to the pods' own metrics ports: the sources
// of spec.networkPolicy.telemetryFrom, or everyone when it is empty, since
// Prometheus usually runs in a namespace of its own.
func telemetryRule(p *v1alpha1.DeltaPipeline, ports ...int32) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: peers(p.Spec.NetworkPolicy.TelemetryFrom), Ports: tcpPolicyPorts(ports...)}
}

func networkPolicy(p *v1alpha1.DeltaPipeline, name, component string, rules []networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(p, name, component),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *labelSelector(naming.SelectorLabels(p, component)),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

// peers turns traffic sources into policy peers; no sources is nil, which a
// NetworkPolicy rule reads as every source.
func peers(sources []v1alpha1.TrafficSource) []networkingv1.NetworkPolicyPeer {
	if len(sources) == 0 {
		return nil
	}
	out := make([]networkingv1.NetworkPolicyPeer, 0, len(sources))
	for _, s := range sources {
		peer := networkingv1.NetworkPolicyPeer{
			NamespaceSelector: s.NamespaceSelector.DeepCopy(),
			PodSelector:       s.PodSelector.DeepCopy(),
		}
		if s.IPBlock != nil {
			peer.IPBlock = &networkingv1.IPBlock{CIDR: string(s.IPBlock.CIDR)}
			for _, e := range s.IPBlock.Except {
				peer.IPBlock.Except = append(peer.IPBlock.Except, string(e))
			}
		}
		out = append(out, peer)
	}
	return out
}

func tcpPolicyPorts(ports ...int32) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, port := range ports {
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))})
	}
	return out
}

// gatewayReceiverPorts are the ports the gateway's receivers listen on: the
// built-in otlp receiver's and every "host:port" endpoint of the receivers
// spec.gateway.config adds (otlp/in-cluster on 14317, say), so the policy
// does not silently cut off a receiver the user configured. An endpoint that
// is a URL or has no literal port is a receiver's client setting or resolved
// at run time, and opens nothing. Sorted, without duplicates, for a stable
// object.
func gatewayReceiverPorts(p *v1alpha1.DeltaPipeline) ([]int32, error) {
	cfg, err := GatewayCollectorConfig(p)
	if err != nil {
		return nil, err
	}
	var ports []int32
	for _, receiver := range cfg.Receivers.Object {
		ports = appendEndpointPorts(ports, receiver)
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}

// appendEndpointPorts walks one receiver's configuration for endpoint keys.
func appendEndpointPorts(ports []int32, config any) []int32 {
	switch c := config.(type) {
	case map[string]any:
		for key, value := range c {
			if endpoint, ok := value.(string); ok && key == "endpoint" {
				if port, ok := listenPort(endpoint); ok {
					ports = append(ports, port)
				}
				continue
			}
			ports = appendEndpointPorts(ports, value)
		}
	case []any:
		for _, item := range c {
			ports = appendEndpointPorts(ports, item)
		}
	}
	return ports
}

// listenPort is the port of a "host:port" listen address.
func listenPort(endpoint string) (int32, bool) {
	_, portText, err := net.SplitHostPort(endpoint)
	if err != nil {
		return 0, false
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return 0, false
	}
	return int32(port), true
}
