package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/internal/localconfig"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// The whole-pipeline comparison (--pipeline, `make bench-pipeline`): the
// same load through three topologies, taking turns in each round:
//
//   - ours: 2 gateways (--gateway-binary) -> 3 bin/worker, each with the
//     configuration the operator renders by default (rendered.go), the
//     workers durable, exporting OTLP to the shared discard sink;
//   - seed: 2 upstream collectors with the load_balancing exporter -> 3
//     upstream collectors with the delta_to_cumulative processor, exporting
//     to the same sink: what the project started from;
//   - sink: the discard sink fed directly, the bound of what any receiver
//     accepts here.
//
// The load generator spreads its connections over the entry tier, as a
// Service spreads clients over gateway pods. A gateway answers once a
// request is queued for its workers, so the end-to-end rate is what the
// last tier received while measured (the workers' own counters), not what
// the gateways accepted; both are printed.

// Topology names, also --only's values with --pipeline.
const (
	topoOurs = "ours"
	topoSeed = "seed"
	topoSink = "sink"
)

// pipelineGateways and pipelineWorkers are the tiers' sizes: the operator's
// default gateway replicas and the smallest worker count that routes.
const (
	pipelineGateways = 2
	pipelineWorkers  = 3
)

// tier is the processes of one tier of a running topology.
type tier struct {
	name  string
	procs []*process
}

func (t *tier) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, p := range t.procs {
		c, err := p.cpuTime()
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// peak is the sum of the tier's processes' peak RSS: what the tier needs
// in memory at once, at worst.
func (t *tier) peak() (int64, error) {
	var sum int64
	for _, p := range t.procs {
		_, peak, err := p.memory()
		if err != nil {
			return 0, err
		}
		sum += peak
	}
	return sum, nil
}

// topology is one running pipeline.
type topology struct {
	name    string
	entries []string // OTLP/gRPC addresses the clients send to
	tiers   []*tier
	// delivered counts the points the last tier received so far.
	delivered func(ctx context.Context) (int64, error)
	// profileURL, when set, serves a CPU profile of the first gateway.
	profileURL string
}

func (t *topology) stop() error {
	var errs []error
	// Entry tier first, so that nothing is sent to a stopped tier.
	for _, tr := range t.tiers {
		for _, p := range tr.procs {
			if err := p.stop(60 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// tierResult is one tier's cost in one measurement.
type tierResult struct {
	name      string
	processes int
	cpu       time.Duration
	peak      int64
}

// pipelineRow is one topology's measurement.
type pipelineRow struct {
	throughputRow              // load.accepted: points the last tier received while measured
	entryAccepted int64        // points the entry tier answered OK while measured
	tiers         []tierResult // in data-flow order
}

func runPipelines(ctx context.Context, s settings, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start the sink: %w", err)
	}
	dir, err := os.MkdirTemp("", "deltapipeline-bench-pipeline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(out, "machine: %d CPUs, load average %s\n", runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(out, "load: %d streams (half delta sums, half delta histograms), %d points/request, %d connections x %d senders spread over the entry tier, %s warm-up + %s measured per topology\n",
		s.streams, s.batch, s.connections, s.senders, s.warmup, s.duration)
	fmt.Fprintf(out, "ours: %d x %s (gateway configuration as the operator renders it) -> %d x %s (worker configuration as the operator renders it, state on local disk under %s)\n",
		pipelineGateways, s.gatewayBin, pipelineWorkers, s.workerBin, dir)
	if s.routerCompression != "" || s.gatewayEnv != "" {
		fmt.Fprintf(out, "ours departs from the rendered gateways: router compression %q, environment %q\n", s.routerCompression, s.gatewayEnv)
	}
	fmt.Fprintf(out, "seed: %d x %s (load_balancing exporter, defaults) -> %d x %s (delta_to_cumulative, defaults except max_streams)\n\n",
		pipelineGateways, s.otelcolBin, pipelineWorkers, s.otelcolBin)

	templates, err := buildTemplates(s.streams, s.batch, mixSumsAndHistograms)
	if err != nil {
		return err
	}
	shared, err := startSink(self, "shared sink")
	if err != nil {
		return err
	}
	defer func() { _ = shared.proc.stop(10 * time.Second) }()

	runs := map[string][]throughputRow{}
	rows := map[string][]pipelineRow{}
	var order []string
	for round := 1; round <= max(s.repeat, 1); round++ {
		for _, name := range []string{topoSink, topoOurs, topoSeed} {
			if s.only != "" && s.only != name {
				continue
			}
			row, err := measurePipeline(ctx, s, self, name, shared, templates, dir)
			if err != nil {
				return fmt.Errorf("%s topology: %w", name, err)
			}
			if rows[name] == nil {
				order = append(order, name)
			}
			rows[name] = append(rows[name], row)
			runs[name] = append(runs[name], row.throughputRow)
			fmt.Fprintf(os.Stderr, "  round %d %s: %.0f points/s end to end\n", round, name, row.load.pointsPerSecond())
		}
	}
	printPipelines(out, order, rows, runs)
	return nil
}

func measurePipeline(ctx context.Context, s settings, self, name string, shared *sinkProcess, templates []*template, dir string) (pipelineRow, error) {
	row := pipelineRow{throughputRow: throughputRow{name: name, sinkIn: -1}}
	topo, err := retryOnTakenPort(func() (*topology, error) { return startTopology(s, self, name, shared, dir) },
		func(t *topology) { _ = t.stop() })
	if err != nil {
		if topo != nil {
			_ = topo.stop()
		}
		return row, err
	}
	gen, err := newGenerator(topo.entries, templates, s.connections, s.senders, s.dataClock())
	if err != nil {
		_ = topo.stop()
		return row, err
	}
	defer gen.close()

	type sample struct {
		delivered int64
		cpu       []time.Duration
		err       error
	}
	take := func() sample {
		var sm sample
		if sm.delivered, sm.err = topo.delivered(ctx); sm.err != nil {
			return sm
		}
		for _, tr := range topo.tiers {
			c, err := tr.cpu()
			if err != nil {
				sm.err = err
				return sm
			}
			sm.cpu = append(sm.cpu, c)
		}
		return sm
	}
	measureFrom := time.Now().Add(s.warmup)
	first := make(chan sample, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		first <- take()
	}()
	profiled := make(chan error, 1)
	if topo.profileURL != "" {
		go func() {
			time.Sleep(time.Until(measureFrom))
			profiled <- fetchProfile(ctx, topo.profileURL, s.duration, s.gatewayProfile)
		}()
	} else {
		profiled <- nil
	}
	res := gen.run(ctx, measureFrom, measureFrom.Add(s.duration))
	last := take()
	if err := <-profiled; err != nil {
		_ = topo.stop()
		return row, err
	}
	before := <-first
	if ctx.Err() != nil {
		_ = topo.stop()
		return row, ctx.Err()
	}
	if err := errors.Join(before.err, last.err); err != nil {
		_ = topo.stop()
		return row, err
	}
	row.entryAccepted = res.accepted
	row.load = res
	row.load.accepted = last.delivered - before.delivered
	row.load.elapsed = s.duration
	for i, tr := range topo.tiers {
		peak, err := tr.peak()
		if err != nil {
			_ = topo.stop()
			return row, err
		}
		row.tiers = append(row.tiers, tierResult{name: tr.name, processes: len(tr.procs), cpu: last.cpu[i] - before.cpu[i], peak: peak})
	}
	if err := topo.stop(); err != nil {
		return row, err
	}
	if row.load.accepted <= 0 {
		return row, fmt.Errorf("no point reached the last tier (%d failed requests, last error: %s)", res.failed, res.lastError)
	}
	return row, nil
}

func startTopology(s settings, self, name string, shared *sinkProcess, dir string) (*topology, error) {
	switch name {
	case topoSink:
		k, err := startSink(self, "sink under test")
		if err != nil {
			return nil, err
		}
		return &topology{
			name:      name,
			entries:   []string{k.grpc},
			tiers:     []*tier{{name: "sink", procs: []*process{k.proc}}},
			delivered: func(ctx context.Context) (int64, error) { return sinkReceived(ctx, k) },
		}, nil
	case topoOurs:
		return startOurs(s, shared, dir)
	case topoSeed:
		return startSeed(s, shared, dir)
	}
	return nil, fmt.Errorf("unknown topology %q", name)
}

func sinkReceived(ctx context.Context, k *sinkProcess) (int64, error) {
	n := k.received(ctx)
	if n < 0 {
		return 0, errors.New("reading the sink's received point count")
	}
	return n, nil
}

// startOurs starts the workers, then the gateways in front of them, each
// with the configuration the operator renders for a default pipeline of
// pipelineGateways gateways and pipelineWorkers workers.
func startOurs(s settings, shared *sinkProcess, dir string) (*topology, error) {
	p := benchPipeline(renderOptions{
		sink: shared.grpc, persistence: true, maxStreams: 2 * s.streams, interval: s.interval,
		gateways: pipelineGateways, workers: pipelineWorkers,
	})
	topo := &topology{name: topoOurs}
	gateways := &tier{name: "gateways"}
	workers := &tier{name: "workers"}
	topo.tiers = []*tier{gateways, workers}
	// Every worker's addresses are known before any starts: the membership
	// names them all, and a worker waits for its membership before it is
	// ready.
	locals, err := localWorkers(pipelineWorkers)
	if err != nil {
		return topo, err
	}
	membership := filepath.Join(dir, "ours-membership.json")
	if err := writeLocalMembership(p, locals, membership); err != nil {
		return topo, err
	}
	var workerAddrs, telemetry []string
	for i, local := range locals {
		ports, err := freeAddrs(2)
		if err != nil {
			return topo, err
		}
		stateDir := filepath.Join(dir, fmt.Sprintf("ours-worker-%d-%d", i, time.Now().UnixNano()))
		if err := os.MkdirAll(stateDir, 0o750); err != nil {
			return topo, fmt.Errorf("creating worker %d's state directory: %w", i, err)
		}
		config, err := renderWorker(p, localconfig.WorkerAddresses{
			OTLPGRPC: local.endpoint, OTLPHTTP: ports[0], Telemetry: ports[1], OTLPExporter: shared.grpc, StateDirectory: stateDir,
			Peer: local.peer, Member: naming.WorkerPod(p, i), MembershipFile: membership,
		})
		if err != nil {
			return topo, err
		}
		path := filepath.Join(dir, fmt.Sprintf("ours-worker-%d.yaml", i))
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			return topo, err
		}
		env := []string{"DELTAPIPELINE_LOG_LEVEL=warn"}
		if s.workerEnv != "" {
			env = append(env, strings.Split(s.workerEnv, ",")...)
		}
		proc, err := startProcess(fmt.Sprintf("worker %d", i), []string{s.workerBin, "--config", path}, env)
		if err != nil {
			return topo, err
		}
		workers.procs = append(workers.procs, proc)
		workerAddrs = append(workerAddrs, local.endpoint)
		telemetry = append(telemetry, "http://"+ports[1]+"/metrics")
	}
	// The workers start together and are waited on once all run: each
	// becomes ready once it read the membership, which needs none of the
	// others.
	for i, proc := range workers.procs {
		if err := proc.waitHTTP(strings.TrimSuffix(telemetry[i], "/metrics")+"/readyz", 60*time.Second); err != nil {
			return topo, err
		}
	}
	for i := range pipelineGateways {
		ports, err := freeAddrs(4)
		if err != nil {
			return topo, err
		}
		config, err := renderGateway(p, localconfig.GatewayAddresses{
			OTLPGRPC: ports[0], OTLPHTTP: ports[1], Health: ports[2], Metrics: ports[3], Workers: workerAddrs,
			MembershipFile: membership,
		})
		if err != nil {
			return topo, err
		}
		if s.routerCompression != "" {
			if config, err = withRouterCompression(config, s.routerCompression); err != nil {
				return topo, err
			}
		}
		if i == 0 && s.gatewayProfile != "" {
			if config, topo.profileURL, err = withPprof(config); err != nil {
				return topo, err
			}
		}
		var env []string
		if s.gatewayEnv != "" {
			env = strings.Split(s.gatewayEnv, ",")
		}
		proc, err := startCollectorEnv(fmt.Sprintf("gateway %d", i), s.gatewayBin, config, filepath.Join(dir, fmt.Sprintf("ours-gateway-%d.yaml", i)), ports[0], env)
		if proc != nil {
			gateways.procs = append(gateways.procs, proc)
		}
		if err != nil {
			return topo, err
		}
		topo.entries = append(topo.entries, ports[0])
	}
	topo.delivered = func(ctx context.Context) (int64, error) {
		return sumCounters(ctx, telemetry, workerReceivedPoints)
	}
	return topo, nil
}

// startSeed starts the seed topology: upstream collectors throughout.
func startSeed(s settings, shared *sinkProcess, dir string) (*topology, error) {
	topo := &topology{name: topoSeed}
	gateways := &tier{name: "gateways"}
	workers := &tier{name: "workers"}
	topo.tiers = []*tier{gateways, workers}
	var workerAddrs, telemetry []string
	for i := range pipelineWorkers {
		ports, err := freeAddrs(2)
		if err != nil {
			return topo, err
		}
		host, port, _ := strings.Cut(ports[1], ":")
		config := upstreamCollectorConfig(ports[0], 2*s.streams, shared.grpc, fmt.Sprintf(upstreamTelemetryServed, host, port))
		proc, err := startCollector(fmt.Sprintf("seed worker %d", i), s.otelcolBin, config, filepath.Join(dir, fmt.Sprintf("seed-worker-%d.yaml", i)), ports[0])
		if proc != nil {
			workers.procs = append(workers.procs, proc)
		}
		if err != nil {
			return topo, err
		}
		workerAddrs = append(workerAddrs, ports[0])
		telemetry = append(telemetry, "http://"+ports[1]+"/metrics")
	}
	for i := range pipelineGateways {
		addr, err := freeAddr()
		if err != nil {
			return topo, err
		}
		var hostnames strings.Builder
		for _, w := range workerAddrs {
			fmt.Fprintf(&hostnames, "\n            - %s", w)
		}
		config := fmt.Sprintf(seedGatewayConfig, addr, hostnames.String())
		proc, err := startCollector(fmt.Sprintf("seed gateway %d", i), s.otelcolBin, config, filepath.Join(dir, fmt.Sprintf("seed-gateway-%d.yaml", i)), addr)
		if proc != nil {
			gateways.procs = append(gateways.procs, proc)
		}
		if err != nil {
			return topo, err
		}
		topo.entries = append(topo.entries, addr)
	}
	topo.delivered = func(ctx context.Context) (int64, error) {
		return sumCounters(ctx, telemetry, collectorAcceptedPoints)
	}
	return topo, nil
}

// startCollector writes config to path and starts a collector binary on it,
// ready once it accepts connections on grpcAddr.
func startCollector(name, binary, config, path, grpcAddr string) (*process, error) {
	return startCollectorEnv(name, binary, config, path, grpcAddr, nil)
}

// startCollectorEnv is startCollector with extra environment.
func startCollectorEnv(name, binary, config, path, grpcAddr string, env []string) (*process, error) {
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	proc, err := startProcess(name, []string{binary, "--config", "file:" + path}, env)
	if err != nil {
		return nil, err
	}
	return proc, proc.waitTCP(grpcAddr, 60*time.Second)
}

// seedGatewayConfig is the seed's gateway: the load_balancing exporter with
// its defaults, routing by stream, to a static list of workers.
const seedGatewayConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
        max_recv_msg_size_mib: 16
exporters:
  load_balancing:
    routing_key: streamID
    protocol:
      otlp:
        tls:
          insecure: true
        compression: none
    resolver:
      static:
        hostnames:%s
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [load_balancing]
`

var (
	workerReceivedPoints    = regexp.MustCompile(`(?m)^deltapipeline_worker_received_points_total(?:\{[^}]*\})? (\S+)$`)
	collectorAcceptedPoints = regexp.MustCompile(`(?m)^otelcol_receiver_accepted_metric_points(?:_total)?(?:\{[^}]*\})? (\S+)$`)
)

// sumCounters adds up every sample of the counter re matches, over the
// processes serving urls.
func sumCounters(ctx context.Context, urls []string, re *regexp.Regexp) (int64, error) {
	var sum float64
	for _, u := range urls {
		text, err := httpText(ctx, u)
		if err != nil {
			return 0, err
		}
		matches := re.FindAllStringSubmatch(text, -1)
		if len(matches) == 0 {
			return 0, fmt.Errorf("%s serves no %s", u, re)
		}
		for _, m := range matches {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", u, err)
			}
			sum += v
		}
	}
	return int64(sum), nil
}

func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func printPipelines(out io.Writer, order []string, rows map[string][]pipelineRow, runs map[string][]throughputRow) {
	if len(order) == 0 {
		return
	}
	fmt.Fprintln(out, "Whole pipelines (median round by end-to-end rate; end to end = points the last tier received while measured)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "topology\tend-to-end points/s\taccepted by entry tier/s\tfailed requests\ttier\tprocesses\tCPU s per M points\tpeak RSS (sum)\tevery round (points/s)\t")
	for _, name := range order {
		r := medianPipeline(rows[name])
		var each []string
		for _, v := range r.all {
			each = append(each, strconv.FormatFloat(v, 'f', 0, 64))
		}
		for i, t := range r.tiers {
			lead := []string{"", "", "", ""}
			rounds := ""
			if i == 0 {
				lead = []string{name, strconv.FormatFloat(r.load.pointsPerSecond(), 'f', 0, 64),
					strconv.FormatFloat(float64(r.entryAccepted)/r.load.elapsed.Seconds(), 'f', 0, 64), strconv.FormatInt(r.load.failed, 10)}
				rounds = strings.Join(each, " ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", lead[0], lead[1], lead[2], lead[3], t.name, t.processes,
				cpuPerMillion(t.cpu, r.load.accepted), mib(t.peak), rounds)
		}
		total := time.Duration(0)
		for _, t := range r.tiers {
			total += t.cpu
		}
		if len(r.tiers) > 1 {
			fmt.Fprintf(tw, "\t\t\t\tall tiers\t\t%s\t\t\t\n", cpuPerMillion(total, r.load.accepted))
		}
	}
	_ = tw.Flush()
	printRatios(out, runs, []ratioTarget{{topoOurs, topoSeed, 0}, {topoOurs, topoSink, 0}, {topoSeed, topoSink, 0}}, func(n string) string { return n })
	for _, name := range order {
		if r := medianPipeline(rows[name]); r.load.lastError != "" {
			fmt.Fprintf(out, "%s last error: %s\n", name, r.load.lastError)
		}
	}
}

// medianPipeline is the round with the median end-to-end rate, with every
// round's rate in all.
func medianPipeline(rows []pipelineRow) pipelineRow {
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, func(a, b pipelineRow) int {
		return cmp.Compare(a.load.pointsPerSecond(), b.load.pointsPerSecond())
	})
	m := sorted[len(sorted)/2]
	m.all = nil
	for _, r := range rows {
		m.all = append(m.all, r.load.pointsPerSecond())
	}
	return m
}

// withPprof adds the collector's pprof extension on a free loopback port to
// a gateway configuration and returns its CPU profile URL.
func withPprof(config string) (string, string, error) {
	addrs, err := freeAddrs(1)
	if err != nil {
		return "", "", err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		return "", "", fmt.Errorf("adding pprof to the gateway configuration: %w", err)
	}
	extensions, _ := cfg["extensions"].(map[string]any)
	service, _ := cfg["service"].(map[string]any)
	if extensions == nil || service == nil {
		return "", "", errors.New("adding pprof to the gateway configuration: no extensions or service section")
	}
	extensions["pprof"] = map[string]any{"endpoint": addrs[0]}
	listed, _ := service["extensions"].([]any)
	service["extensions"] = append(listed, "pprof")
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", "", fmt.Errorf("adding pprof to the gateway configuration: %w", err)
	}
	return string(out), "http://" + addrs[0] + "/debug/pprof/profile", nil
}

// fetchProfile records a CPU profile of d from url into path.
func fetchProfile(ctx context.Context, url string, d time.Duration, path string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?seconds=%d", url, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling the gateway: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling the gateway: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the gateway profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the gateway profile: %w", err)
	}
	return f.Close()
}

// withRouterCompression sets the router's compression of the gateway to
// worker leg in a gateway configuration, to measure another choice than
// the rendered one.
func withRouterCompression(config, compression string) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		return "", fmt.Errorf("setting the router's compression: %w", err)
	}
	exporters, _ := cfg["exporters"].(map[string]any)
	router, _ := exporters["deltapipeline_router"].(map[string]any)
	if router == nil {
		return "", errors.New("setting the router's compression: the gateway configuration has no deltapipeline_router exporter")
	}
	router["compression"] = compression
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("setting the router's compression: %w", err)
	}
	return string(out), nil
}
