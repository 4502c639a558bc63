// Package localconfig turns the configurations the operator renders for
// pods into ones for local processes. The end-to-end suite and the
// benchmarks run exactly what the operator renders, changed only where a
// pod's network and volume differ from a local process's: listen addresses,
// the workers' addresses, the exporters' endpoints and the state directory.
// Everything else (queue, retry, routing key, conversion settings, ...) runs
// exactly as rendered.
package localconfig

import (
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// GatewayAddresses are one local gateway's listen addresses.
type GatewayAddresses struct {
	OTLPGRPC, OTLPHTTP, Health, Metrics string
	// Workers are the workers' OTLP/gRPC host:port, in ordinal order.
	Workers []string
	// MembershipFile is where DeltaPipeline's router reads the membership
	// that, in a cluster, it watches in a ConfigMap. Whoever runs the local
	// gateways writes it with the local workers' addresses.
	MembershipFile string
}

// membershipPollInterval is how often a local router reads its membership
// file.
const membershipPollInterval = "200ms"

// Gateway rewrites a rendered gateway configuration for a local process.
// DeltaPipeline's router reads its membership from a file instead of
// watching the ConfigMap. For the load_balancing exporter, the static
// resolver's pod DNS names become the local workers' addresses, in ordinal
// order; a k8s or dns resolver becomes a static list of them.
func Gateway(rendered string, a GatewayAddresses) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(rendered), &cfg); err != nil {
		return "", fmt.Errorf("decoding the rendered gateway configuration: %w", err)
	}
	edits := []struct {
		path  string
		value any
	}{
		{"receivers.otlp.protocols.grpc.endpoint", a.OTLPGRPC},
		{"receivers.otlp.protocols.http.endpoint", a.OTLPHTTP},
		{"extensions.health_check.endpoint", a.Health},
	}
	for _, e := range edits {
		if err := replaceAt(cfg, e.path, e.value); err != nil {
			return "", fmt.Errorf("gateway configuration: %w", err)
		}
	}
	if err := replaceMetricsReader(cfg, a.Metrics); err != nil {
		return "", fmt.Errorf("gateway configuration: %w", err)
	}
	if router, err := mapAt(cfg, "exporters.deltapipeline_router"); err == nil {
		if _, err := mapAt(router, "membership.configmap"); err != nil {
			return "", fmt.Errorf("gateway configuration: exporters.deltapipeline_router: %w", err)
		}
		if a.MembershipFile == "" {
			return "", fmt.Errorf("gateway configuration: the router needs a local membership file")
		}
		router["membership"] = map[string]any{"file": a.MembershipFile, "poll_interval": membershipPollInterval}
		return marshalGateway(cfg)
	}
	resolver, err := mapAt(cfg, "exporters.load_balancing.resolver")
	if err != nil {
		return "", fmt.Errorf("gateway configuration: %w", err)
	}
	if static, ok := resolver["static"].(map[string]any); ok {
		if rendered, _ := static["hostnames"].([]any); len(rendered) != len(a.Workers) {
			return "", fmt.Errorf("gateway configuration: the static resolver lists %d workers, %d run locally", len(rendered), len(a.Workers))
		}
	} else if _, ok := resolver["k8s"]; !ok {
		if _, ok := resolver["dns"]; !ok {
			return "", fmt.Errorf("gateway configuration: exporters.load_balancing.resolver has none of static, k8s, dns: %v", resolver)
		}
	}
	clear(resolver)
	hostnames := make([]any, len(a.Workers))
	for i, w := range a.Workers {
		hostnames[i] = w
	}
	resolver["static"] = map[string]any{"hostnames": hostnames}
	return marshalGateway(cfg)
}

func marshalGateway(cfg map[string]any) (string, error) {
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encoding the local gateway configuration: %w", err)
	}
	return string(out), nil
}

// replaceMetricsReader points the collector's own Prometheus pull reader at
// a local address.
func replaceMetricsReader(cfg map[string]any, hostPort string) error {
	host, port, ok := strings.Cut(hostPort, ":")
	if !ok {
		return fmt.Errorf("metrics address %q is not host:port", hostPort)
	}
	portNumber, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("metrics address %q: %w", hostPort, err)
	}
	metrics, err := mapAt(cfg, "service.telemetry.metrics")
	if err != nil {
		return err
	}
	readers, ok := metrics["readers"].([]any)
	if !ok || len(readers) == 0 {
		return fmt.Errorf("service.telemetry.metrics.readers is missing")
	}
	replaced := 0
	for _, r := range readers {
		reader, _ := r.(map[string]any)
		prom, err := mapAt(reader, "pull.exporter.prometheus")
		if err != nil {
			continue
		}
		prom["host"] = host
		prom["port"] = portNumber
		replaced++
	}
	if replaced != 1 {
		return fmt.Errorf("service.telemetry.metrics.readers has %d prometheus pull readers, want 1", replaced)
	}
	return nil
}

// WorkerAddresses are one local worker's addresses and directory. The
// listen addresses are required; an exporter endpoint or the state
// directory is replaced only when set here, and must then be in the
// rendered configuration (a pipeline without remote write, or with
// persistence off, renders none).
type WorkerAddresses struct {
	OTLPGRPC, OTLPHTTP, Telemetry string
	RemoteWrite                   string
	OTLPExporter                  string
	StateDirectory                string
	// Peer, Member and MembershipFile replace the hand-over's listen
	// address, the member name a pod takes from its host name, and the
	// membership ConfigMap; required when the rendered configuration hands
	// streams over.
	Peer, Member, MembershipFile string
}

// Worker rewrites a rendered worker configuration for a local process.
func Worker(rendered string, a WorkerAddresses) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(rendered), &cfg); err != nil {
		return "", fmt.Errorf("decoding the rendered worker configuration: %w", err)
	}
	edits := []struct {
		path     string
		value    string
		optional bool
	}{
		{"receivers.otlp.grpc.endpoint", a.OTLPGRPC, false},
		{"receivers.otlp.http.endpoint", a.OTLPHTTP, false},
		{"telemetry.endpoint", a.Telemetry, false},
		{"exporters.prometheusRemoteWrite.endpoint", a.RemoteWrite, true},
		{"exporters.otlp.endpoint", a.OTLPExporter, true},
		{"state.directory", a.StateDirectory, true},
	}
	for _, e := range edits {
		if e.optional && e.value == "" {
			continue
		}
		if err := replaceAt(cfg, e.path, e.value); err != nil {
			return "", fmt.Errorf("worker configuration: %w", err)
		}
	}
	if h, ok := cfg["handoff"].(map[string]any); ok {
		if a.Peer == "" || a.Member == "" || a.MembershipFile == "" {
			return "", fmt.Errorf("worker configuration: the rendered worker hands streams over; a local one needs a peer address, a member name and a membership file")
		}
		if err := replaceAt(cfg, "handoff.peer.endpoint", a.Peer); err != nil {
			return "", fmt.Errorf("worker configuration: %w", err)
		}
		h["member"] = a.Member
		h["membership"] = map[string]any{"file": a.MembershipFile, "pollInterval": membershipPollInterval}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encoding the local worker configuration: %w", err)
	}
	return string(out), nil
}

// replaceAt sets the value at a dotted path that must already exist, so a
// change in what the operator renders shows up here as an error instead of
// a silently added key.
func replaceAt(cfg map[string]any, path string, value any) error {
	i := strings.LastIndexByte(path, '.')
	m, err := mapAt(cfg, path[:i])
	if err != nil {
		return err
	}
	key := path[i+1:]
	if _, ok := m[key]; !ok {
		return fmt.Errorf("%s is missing", path)
	}
	m[key] = value
	return nil
}

// mapAt returns the map at a dotted path.
func mapAt(cfg map[string]any, path string) (map[string]any, error) {
	m := cfg
	walked := ""
	for part := range strings.SplitSeq(path, ".") {
		walked = strings.TrimPrefix(walked+"."+part, ".")
		next, ok := m[part].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is missing or not a map", walked)
		}
		m = next
	}
	return m, nil
}
