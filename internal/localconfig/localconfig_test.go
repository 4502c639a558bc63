package localconfig

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestRouterReadsItsMembershipFromAFile(t *testing.T) {
	rendered, err := os.ReadFile("../manifests/testdata/default.gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	addrs := GatewayAddresses{OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", Health: "127.0.0.1:3", Metrics: "127.0.0.1:4"}
	if _, err := Gateway(string(rendered), addrs); err == nil || !strings.Contains(err.Error(), "membership file") {
		t.Errorf("without a membership file: error %v", err)
	}
	addrs.MembershipFile = "/run/membership.json"
	local, err := Gateway(string(rendered), addrs)
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	if err := yaml.Unmarshal(rendered, &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(local), &after); err != nil {
		t.Fatal(err)
	}
	membership, _ := mapAt(after, "exporters.deltapipeline_router.membership")
	if membership["file"] != "/run/membership.json" || len(membership) != 2 {
		t.Errorf("membership %v", membership)
	}
	// Everything else of the router is as rendered.
	br, _ := mapAt(before, "exporters.deltapipeline_router")
	ar, _ := mapAt(after, "exporters.deltapipeline_router")
	delete(br, "membership")
	delete(ar, "membership")
	bj, _ := yaml.Marshal(br)
	aj, _ := yaml.Marshal(ar)
	if string(bj) != string(aj) || len(bj) < 50 {
		t.Errorf("router changed:\n%s\nto\n%s", bj, aj)
	}
}

func TestGatewayChangesOnlyAddresses(t *testing.T) {
	rendered, err := os.ReadFile("../manifests/testdata/load-balancing.gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local, err := Gateway(string(rendered), GatewayAddresses{
		OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", Health: "127.0.0.1:3", Metrics: "127.0.0.1:4",
		Workers: []string{"127.0.0.1:10", "127.0.0.1:11", "127.0.0.1:12"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Gateway(string(rendered), GatewayAddresses{
		OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", Health: "127.0.0.1:3", Metrics: "127.0.0.1:4",
		Workers: []string{"127.0.0.1:10"},
	}); err == nil || !strings.Contains(err.Error(), "lists 3 workers, 1 run locally") {
		t.Errorf("fewer local workers than the static resolver lists: error %v", err)
	}
	var before, after map[string]any
	if err := yaml.Unmarshal(rendered, &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(local), &after); err != nil {
		t.Fatal(err)
	}
	resolver, _ := mapAt(after, "exporters.load_balancing.resolver")
	if len(resolver) != 1 || !strings.Contains(local, "- 127.0.0.1:10") || !strings.Contains(local, "- 127.0.0.1:12") || strings.Contains(local, ".svc:4317") {
		t.Errorf("resolver %v", resolver)
	}
	// Everything but the addresses is as rendered.
	for _, path := range []string{"exporters.load_balancing.protocol", "processors", "service.pipelines"} {
		b, _ := mapAt(before, path)
		a, _ := mapAt(after, path)
		bj, _ := yaml.Marshal(b)
		aj, _ := yaml.Marshal(a)
		if string(bj) != string(aj) || len(bj) < 5 {
			t.Errorf("%s changed:\n%s\nto\n%s", path, bj, aj)
		}
	}
	if _, err := Gateway("receivers: {}", GatewayAddresses{}); err == nil || !strings.Contains(err.Error(), "receivers.otlp") {
		t.Errorf("missing receiver: error %v", err)
	}
}

func TestWorkerChangesOnlyAddresses(t *testing.T) {
	rendered, err := os.ReadFile("../manifests/testdata/default.worker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local, err := Worker(string(rendered), WorkerAddresses{
		OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", Telemetry: "127.0.0.1:3",
		RemoteWrite: "http://127.0.0.1:4/api/v1/write", StateDirectory: "/tmp/state",
		Peer: "127.0.0.1:6", Member: "claude-worker-0", MembershipFile: "/tmp/membership.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "http://127.0.0.1:4/api/v1/write", "directory: /tmp/state", "checkpointInterval: 1m0s", "maxStreams: 1000000",
		"endpoint: 127.0.0.1:6", "member: claude-worker-0", "file: /tmp/membership.json", "routingKey: streamID", "tokenFile: /etc/deltapipeline/peer-token/token"} {
		if !strings.Contains(local, want) {
			t.Errorf("local worker configuration lacks %q:\n%s", want, local)
		}
	}
	// An endpoint the rendered configuration does not have is an error, not
	// a key added silently.
	withHandoff := func(a WorkerAddresses) WorkerAddresses {
		a.OTLPGRPC, a.OTLPHTTP, a.Telemetry = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
		a.Peer, a.Member, a.MembershipFile = "127.0.0.1:6", "claude-worker-0", "/tmp/membership.json"
		return a
	}
	if _, err := Worker(string(rendered), withHandoff(WorkerAddresses{OTLPExporter: "127.0.0.1:5"})); err == nil || !strings.Contains(err.Error(), "exporters.otlp") {
		t.Errorf("OTLP endpoint without an OTLP exporter: error %v", err)
	}
	// Unset optional fields keep what was rendered.
	kept, err := Worker(string(rendered), withHandoff(WorkerAddresses{}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kept, "directory: /var/lib/deltapipeline") || !strings.Contains(kept, "prometheus.monitoring.svc") {
		t.Errorf("unset fields changed:\n%s", kept)
	}
	// A worker that hands streams over cannot run without its local peer
	// address, name and membership.
	if _, err := Worker(string(rendered), WorkerAddresses{OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", Telemetry: "127.0.0.1:3"}); err == nil ||
		!strings.Contains(err.Error(), "hands streams over") {
		t.Errorf("hand-over without local addresses: error %v", err)
	}
}
