package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltapipeline/deltapipeline/internal/localconfig"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/ring"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// A benchmarked worker of the default pipeline hands streams over: it runs
// with a local peer address, its pod's member name, a local membership
// naming every worker's OTLP and peer address, and local token files.
func TestDefaultWorkersRenderWithALocalRing(t *testing.T) {
	dir := t.TempDir()
	p := benchPipeline(renderOptions{sink: "127.0.0.1:9", persistence: true, workers: 3})
	locals, err := localWorkers(3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "membership.json")
	if err := writeLocalMembership(p, locals[:2], path); err == nil || !strings.Contains(err.Error(), "lists 3 workers, 2 run locally") {
		t.Errorf("membership for fewer local workers than the pipeline's: error %v", err)
	}
	if err := writeLocalMembership(p, locals, path); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ring.ParseMembership(doc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rescaling() || len(m.Members) != 3 {
		t.Fatalf("membership %+v", m)
	}
	for i, mem := range m.Members {
		if mem.Name != naming.WorkerPod(p, i) || mem.Endpoint != locals[i].endpoint || mem.Peer != locals[i].peer {
			t.Errorf("member %d is %+v, want %s at %+v", i, mem, naming.WorkerPod(p, i), locals[i])
		}
	}

	// Without the hand-over's local addresses the rendered worker is
	// refused, as a worker that cannot join its ring.
	addrs := localconfig.WorkerAddresses{OTLPGRPC: locals[1].endpoint, OTLPHTTP: "127.0.0.1:1", Telemetry: "127.0.0.1:2", OTLPExporter: "127.0.0.1:9"}
	if _, err := renderWorker(p, addrs); err == nil {
		t.Error("a worker that hands streams over rendered without a peer address, member name and membership")
	}
	addrs.Peer, addrs.Member, addrs.MembershipFile = locals[1].peer, naming.WorkerPod(p, 1), path
	rendered, err := renderWorker(p, addrs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rendered, "/etc/deltapipeline") {
		t.Errorf("the local configuration still reads a pod's mount:\n%s", rendered)
	}
	c, err := workerconfig.Parse([]byte(rendered))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Handoff
	if h == nil || h.Member != naming.WorkerPod(p, 1) || h.Peer.Endpoint != locals[1].peer || h.Membership.File != path || h.Membership.ConfigMap != nil {
		t.Fatalf("handoff section %+v", h)
	}
	if token, err := os.ReadFile(h.Peer.TokenFile); err != nil || string(token) != benchPeerToken {
		t.Errorf("peer token file %s: %q, %v", h.Peer.TokenFile, token, err)
	}
	if h.Peer.TokenFile == manifests.PeerTokenPath || filepath.Base(h.Peer.TokenFile) != manifests.PeerTokenFile {
		t.Errorf("peer token file %s", h.Peer.TokenFile)
	}
}
