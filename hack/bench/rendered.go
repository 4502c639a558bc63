package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/localconfig"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// The worker and gateway configurations benchmarked here are the ones the
// operator renders (internal/manifests) for a pipeline with the API
// server's defaults, rewritten for local processes by the same code as the
// end-to-end suite's (internal/localconfig). Only what a benchmark has to
// set differs from a user's default pipeline: the OTLP exporter to the
// discard sink (without compression, as upstream's, so neither pays for
// gzip), a stream limit above the default when a phase holds more streams,
// and --interval when it is not the default.

// renderOptions are the benchmark's departures from a default pipeline.
type renderOptions struct {
	sink        string // the discard sink's OTLP/gRPC host:port
	persistence bool
	maxStreams  int
	interval    time.Duration
	gateways    int
	workers     int
}

func benchPipeline(o renderOptions) *v1alpha1.DeltaPipeline {
	opts := []pipelinetest.Option{
		pipelinetest.WithExporters(v1alpha1.ExportersSpec{OTLP: &v1alpha1.OTLPExporterSpec{
			Endpoint: o.sink, Insecure: true, Compression: "none",
		}}),
		pipelinetest.WithPersistence(o.persistence),
	}
	var defaults workerconfig.Config
	defaults.ApplyDefaults()
	if o.maxStreams > defaults.Conversion.MaxStreams {
		opts = append(opts, pipelinetest.WithMaxStreams(int32(o.maxStreams)))
	}
	if o.gateways > 0 {
		opts = append(opts, pipelinetest.WithGatewayReplicas(int32(o.gateways)))
	}
	if o.workers > 0 {
		opts = append(opts, pipelinetest.WithWorkerReplicas(int32(o.workers)))
	}
	p := pipelinetest.Stored("bench", "bench", opts...)
	if o.interval > 0 && o.interval != defaults.Conversion.Interval.Duration {
		p.Spec.Worker.Conversion.Interval = &metav1.Duration{Duration: o.interval}
	}
	return p
}

// renderWorker is the worker configuration the operator renders for p,
// with a's addresses, state directory, member name and membership file,
// and the gateway-to-worker and peer tokens at local paths
// (benchWorkerToken, benchPeerToken).
func renderWorker(p *v1alpha1.DeltaPipeline, a localconfig.WorkerAddresses) (string, error) {
	rendered, err := manifests.WorkerConfigYAML(p)
	if err != nil {
		return "", fmt.Errorf("rendering the worker configuration: %w", err)
	}
	local, err := localconfig.Worker(string(rendered), a)
	if err != nil {
		return "", err
	}
	return withLocalToken(local)
}

// renderGateway is the gateway configuration the operator renders for p
// (whatever manifests.GatewayCollectorConfigYAML returns), with a's
// addresses and the local worker token.
func renderGateway(p *v1alpha1.DeltaPipeline, a localconfig.GatewayAddresses) (string, error) {
	rendered, err := manifests.GatewayCollectorConfigYAML(p)
	if err != nil {
		return "", fmt.Errorf("rendering the gateway configuration: %w", err)
	}
	local, err := localconfig.Gateway(string(rendered), a)
	if err != nil {
		return "", err
	}
	return withLocalToken(local)
}

// benchWorkerToken is the gateway-to-worker token of every benchmarked
// pipeline; the load generator sends it when it feeds a worker directly.
const benchWorkerToken = "bench-gateway-to-worker-token"

// benchPeerToken is the token the benchmarked workers present to each
// other when they hand streams over.
const benchPeerToken = "bench-worker-peer-token"

var (
	tokenOnce     sync.Once
	tokenPath     string
	peerTokenPath string
	tokenErr      error
)

// withLocalToken points the token paths of the pods (the Secrets' mounts)
// at local files holding benchWorkerToken and benchPeerToken, as the pods
// read the Secrets.
func withLocalToken(config string) (string, error) {
	tokenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deltapipeline-bench-token-")
		if err != nil {
			tokenErr = fmt.Errorf("creating the local worker tokens: %w", err)
			return
		}
		tokenPath = filepath.Join(dir, manifests.WorkerTokenFile)
		if err := os.WriteFile(tokenPath, []byte(benchWorkerToken), 0o600); err != nil {
			tokenErr = fmt.Errorf("writing the local worker token: %w", err)
			return
		}
		// Both Secrets mount their token under the same file name: the peer
		// token gets a directory of its own.
		peerDir := filepath.Join(dir, "peer")
		if err := os.Mkdir(peerDir, 0o700); err != nil {
			tokenErr = fmt.Errorf("creating the local peer token: %w", err)
			return
		}
		peerTokenPath = filepath.Join(peerDir, manifests.PeerTokenFile)
		if err := os.WriteFile(peerTokenPath, []byte(benchPeerToken), 0o600); err != nil {
			tokenErr = fmt.Errorf("writing the local peer token: %w", err)
		}
	})
	if tokenErr != nil {
		return "", tokenErr
	}
	config = strings.ReplaceAll(config, manifests.PeerTokenPath, peerTokenPath)
	return strings.ReplaceAll(config, manifests.WorkerTokenPath, tokenPath), nil
}

// localWorker is where one local worker receives OTLP and its peers' hand-
// over frames.
type localWorker struct{ endpoint, peer string }

// localWorkers allocates the addresses of n local workers.
func localWorkers(n int) ([]localWorker, error) {
	out := make([]localWorker, n)
	for i := range out {
		addrs, err := freeAddrs(2)
		if err != nil {
			return nil, err
		}
		out[i] = localWorker{endpoint: addrs[0], peer: addrs[1]}
	}
	return out, nil
}

// writeLocalMembership writes the membership the operator publishes for p
// with the local workers' OTLP and peer addresses, for the routers and the
// workers to read (in a cluster they watch the ConfigMap). It is written
// before the workers start: a worker that hands streams over is not ready
// until it has its membership.
func writeLocalMembership(p *v1alpha1.DeltaPipeline, workers []localWorker, path string) error {
	m := manifests.Membership(p, manifests.SteadyRing(1))
	if len(m.Members) != len(workers) {
		return fmt.Errorf("the membership lists %d workers, %d run locally", len(m.Members), len(workers))
	}
	for i := range m.Members {
		m.Members[i].Endpoint, m.Members[i].Peer = workers[i].endpoint, workers[i].peer
	}
	doc, err := m.Marshal()
	if err != nil {
		return err
	}
	// Written whole, then renamed: a reader polling the file never sees a
	// part of it.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, doc, 0o600); err != nil {
		return fmt.Errorf("writing the local membership: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the local membership: %w", err)
	}
	return nil
}
