// Command bench compares, in one run on one machine, how many delta points
// per second these OTLP pipelines accept and how much memory they hold:
//
//   - worker (durable): bin/worker converting delta to cumulative and
//     exporting OTLP, with the configuration the operator renders by
//     default, which journals every request to a state directory (here on
//     local disk) before answering;
//   - worker (in memory): the same with persistence off;
//   - upstream: the OpenTelemetry Collector (bin/otelcol, contrib v0.161.0)
//     with otlp receiver → delta_to_cumulative processor → otlp_grpc exporter;
//   - sink: a receive-and-discard OTLP/gRPC server, the upper bound of what
//     any receiver can accept here.
//
// The workers and upstream export to the same sink process. A load
// generator in this process pushes pre-encoded requests of delta sums and
// histograms over many streams at full speed through several connections.
// A second phase creates a million streams in the workers (and in upstream)
// and reports resident memory per stream, for sums and, in the durable
// worker, for histograms and exponential histograms. With --pipeline it
// measures whole pipelines instead (pipeline.go). docs/benchmarks.md
// explains the method and records results; `make bench` and `make
// bench-pipeline` run it.
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/deltapipeline/deltapipeline/internal/localconfig"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

type settings struct {
	workerBin, otelcolBin string
	gatewayBin            string
	pipeline              bool
	cpuProfile            string
	gatewayProfile        string
	stateParent           string
	histogramMemory       int
	expHistogramMemory    int
	duration, warmup      time.Duration
	streams, batch        int
	connections, senders  int
	interval              time.Duration
	memoryStreams         int
	upstreamMemoryStreams int
	only                  string
	workerEnv             string
	gatewayEnv            string
	routerCompression     string
	repeat                int
	roundStep, dataAge    time.Duration
}

// dataClock starts the load's data time dataAge before now, so that every
// run sends the same kind of intervals whatever the rate it reaches.
func (s settings) dataClock() dataClock {
	return dataClock{start: time.Now().Add(-s.dataAge).Truncate(time.Second), step: s.roundStep}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sink" {
		os.Exit(sinkMain(os.Args[2:]))
	}
	var s settings
	flag.StringVar(&s.workerBin, "worker", "bin/worker", "worker binary")
	flag.StringVar(&s.otelcolBin, "otelcol", "bin/otelcol", "upstream collector binary with the delta_to_cumulative processor (and, in --pipeline, the load_balancing exporter of the seed topology)")
	flag.StringVar(&s.gatewayBin, "gateway-binary", "bin/gateway", "--pipeline: the gateway binary of our topology, run with the configuration the operator renders")
	flag.StringVar(&s.gatewayProfile, "gateway-cpu-profile", "", "--pipeline: write a CPU profile of our first gateway over each measurement to PATH (pprof extension added to its configuration; the last round's is kept)")
	flag.BoolVar(&s.pipeline, "pipeline", false, "measure whole pipelines (clients -> 2 gateways -> 3 workers -> sink, ours against the seed topology and the sink) instead of single processes")
	flag.StringVar(&s.stateParent, "state-parent", "", "directory under which the durable workers' state directories are made (default: the run's temporary directory on local disk); point it at the volume to measure")
	flag.StringVar(&s.cpuProfile, "cpu-profile", "", "write each worker's CPU profile (the last round's) to PREFIX-<pipeline>.pprof, for go tool pprof")
	flag.DurationVar(&s.duration, "duration", 30*time.Second, "measured load duration per pipeline; keep it a multiple of --interval so every measurement holds the same number of worker emits")
	flag.DurationVar(&s.warmup, "warmup", 3*time.Second, "unmeasured load before each measurement (creates the streams)")
	flag.IntVar(&s.streams, "streams", 100_000, "streams in the throughput phase, half sums, half histograms")
	flag.IntVar(&s.batch, "batch", 1000, "data points per request")
	flag.IntVar(&s.connections, "connections", 4, "gRPC connections of the load generator")
	flag.IntVar(&s.senders, "senders-per-connection", 2, "concurrent senders per connection")
	flag.DurationVar(&s.interval, "interval", 30*time.Second, "the worker's conversion.interval (how often it exports); 30s is its default")
	flag.IntVar(&s.memoryStreams, "memory-streams", 1_000_000, "sum streams in the workers' memory phase; 0 skips it")
	flag.IntVar(&s.histogramMemory, "histogram-memory-streams", 1_000_000, "explicit-bucket histogram streams (16 buckets) in the durable worker's memory phase; 0 skips it")
	flag.IntVar(&s.expHistogramMemory, "exp-histogram-memory-streams", 250_000, "exponential histogram streams (160 buckets) in the durable worker's memory phase; 0 skips it")
	flag.IntVar(&s.upstreamMemoryStreams, "upstream-memory-streams", 1_000_000, "streams in upstream's memory phase; 0 skips it")
	flag.IntVar(&s.repeat, "repeat", 3, "throughput rounds; the pipelines take turns in each round and the median is reported, which evens out other load on the machine")
	flag.StringVar(&s.gatewayEnv, "gateway-env", "", "--pipeline: extra environment of our gateway processes, NAME=VALUE[,NAME=VALUE] (for example GOGC=200)")
	flag.StringVar(&s.routerCompression, "router-compression", "", "--pipeline: measure our gateways with this compression of the gateway to worker leg (none or gzip) instead of the rendered one; for choosing the default")
	flag.StringVar(&s.workerEnv, "worker-env", "", "extra environment of the worker process, NAME=VALUE[,NAME=VALUE] (for example GOGC=50)")
	flag.DurationVar(&s.roundStep, "round-step", time.Minute, "data-time length of each round's interval: every round is one export of every stream, once a minute like Claude Code's by default")
	flag.DurationVar(&s.dataAge, "data-age", 30*24*time.Hour, "how long before now the first round's interval starts; with --round-step 10ms --data-age 0 the intervals follow the wall clock and are denser than any SDK exports")
	flag.StringVar(&s.only, "only", "", "run only this pipeline: durable, memory, upstream or sink (with --pipeline: ours, seed or sink)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runner := run
	if s.pipeline {
		runner = runPipelines
	}
	if err := runner(ctx, s, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func sinkMain(args []string) int {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	grpcAddr := fs.String("grpc", "127.0.0.1:4317", "OTLP/gRPC listen address")
	statsAddr := fs.String("stats", "127.0.0.1:4319", "HTTP address serving the received point count")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runSink(ctx, *grpcAddr, *statsAddr); err != nil {
		fmt.Fprintf(os.Stderr, "sink: %v\n", err)
		return 1
	}
	return 0
}

// throughputRow is one pipeline's result in the throughput phase.
type throughputRow struct {
	name   string
	load   loadResult
	cpu    time.Duration // CPU time the pipeline's process used while measured
	peak   int64
	sinkIn int64     // points the shared sink received from this pipeline
	all    []float64 // points/s of every round, for the median row
}

// memoryRow is one pipeline's result in the memory phase.
type memoryRow struct {
	name           string
	kind           mix
	streams        int
	idle, settled  int64
	peak           int64
	reportedActive string
}

func run(ctx context.Context, s settings, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start the sink: %w", err)
	}
	dir, err := os.MkdirTemp("", "deltapipeline-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(out, "machine: %d CPUs, %s, load average %s\n", runtime.NumCPU(), runtime.GOARCH, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(out, "load: %d streams (half delta sums, half delta histograms), %d points/request, %d connections x %d senders, %s warm-up + %s measured per pipeline; each round one %s interval of every stream, starting %s ago\n",
		s.streams, s.batch, s.connections, s.senders, s.warmup, s.duration, s.roundStep, s.dataAge)
	stateParent := dir
	if s.stateParent != "" {
		stateParent = s.stateParent
	}
	fmt.Fprintf(out, "workers: the configuration the operator renders by default (durable: state directory under %s, checkpoint every minute, every acknowledged request fsynced; in memory: persistence off)\n\n", stateParent)

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
	var order []string
	for round := 1; round <= max(s.repeat, 1); round++ {
		for _, name := range []string{pipeSink, pipeDurable, pipeMemory, pipeUpstream} {
			if s.only != "" && s.only != name {
				continue
			}
			row, err := measureThroughput(ctx, s, self, name, shared, templates, dir)
			if err != nil {
				return fmt.Errorf("%s throughput: %w", name, err)
			}
			if runs[name] == nil {
				order = append(order, name)
			}
			runs[name] = append(runs[name], row)
			fmt.Fprintf(os.Stderr, "  round %d %s: %.0f points/s, peak RSS %s\n", round, displayName(name), row.load.pointsPerSecond(), mib(row.peak))
		}
	}
	var rows []throughputRow
	for _, name := range order {
		rows = append(rows, median(runs[name]))
	}
	printThroughput(out, rows, runs)

	var mem []memoryRow
	for _, phase := range []struct {
		name    string
		kind    mix
		streams int
	}{
		{pipeDurable, mixSums, s.memoryStreams},
		{pipeMemory, mixSums, s.memoryStreams},
		{pipeDurable, mixHistograms, s.histogramMemory},
		{pipeDurable, mixExpHistograms, s.expHistogramMemory},
		{pipeUpstream, mixSums, s.upstreamMemoryStreams},
	} {
		if phase.streams <= 0 || (s.only != "" && s.only != phase.name) {
			continue
		}
		row, err := measureMemory(ctx, s, phase.name, phase.kind, phase.streams, shared, dir)
		if err != nil {
			return fmt.Errorf("%s memory (%s): %w", displayName(phase.name), phase.kind, err)
		}
		mem = append(mem, row)
	}
	printMemory(out, mem)
	return nil
}

// The pipelines of the single-process comparison.
const (
	pipeSink     = "sink"
	pipeDurable  = "durable"
	pipeMemory   = "memory"
	pipeUpstream = "upstream"
)

func displayName(name string) string {
	switch name {
	case pipeDurable:
		return "worker (durable)"
	case pipeMemory:
		return "worker (in memory)"
	}
	return name
}

type sinkProcess struct {
	proc            *process
	grpc, statsAddr string
}

func startSink(self, name string) (*sinkProcess, error) {
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	statsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(name, []string{self, "sink", "--grpc", grpcAddr, "--stats", statsAddr}, nil)
	if err != nil {
		return nil, err
	}
	if err := p.waitHTTP("http://"+statsAddr, 30*time.Second); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	return &sinkProcess{proc: p, grpc: grpcAddr, statsAddr: statsAddr}, nil
}

func (s *sinkProcess) received(ctx context.Context) int64 {
	text, err := httpText(ctx, "http://"+s.statsAddr)
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	return n
}

// target is a started pipeline and the address it receives OTLP/gRPC on.
type target struct {
	proc      *process
	grpc      string
	telemetry string // the worker's telemetry endpoint, empty otherwise
	stateDir  string // the durable worker's state directory, removed at stop
}

// stop stops the process and removes its state directory: a journal of a
// 30 s round is a few GB.
func (t *target) stop(timeout time.Duration) error {
	err := t.proc.stop(timeout)
	if t.stateDir != "" {
		if rmErr := os.RemoveAll(t.stateDir); rmErr != nil && err == nil {
			err = fmt.Errorf("removing %s: %w", t.stateDir, rmErr)
		}
	}
	return err
}

func startTarget(s settings, self, name string, shared *sinkProcess, dir string, maxStreams int) (*target, error) {
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	switch name {
	case "sink":
		statsAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		p, err := startProcess("sink under test", []string{self, "sink", "--grpc", grpcAddr, "--stats", statsAddr}, nil)
		if err != nil {
			return nil, err
		}
		return &target{proc: p, grpc: grpcAddr}, p.waitHTTP("http://"+statsAddr, 30*time.Second)

	case pipeDurable, pipeMemory:
		return startWorker(s, name, grpcAddr, shared.grpc, dir, maxStreams)

	case "upstream":
		path := filepath.Join(dir, "otelcol.yaml")
		config := upstreamCollectorConfig(grpcAddr, maxStreams, shared.grpc, upstreamTelemetryOff)
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			return nil, err
		}
		p, err := startProcess("upstream collector", []string{s.otelcolBin, "--config", path}, nil)
		if err != nil {
			return nil, err
		}
		return &target{proc: p, grpc: grpcAddr}, p.waitTCP(grpcAddr, 60*time.Second)
	}
	return nil, fmt.Errorf("unknown pipeline %q", name)
}

// startWorker starts bin/worker with the configuration the operator renders
// by default (rendered.go), durable or with persistence off, exporting to
// the discard sink at sinkAddr.
func startWorker(s settings, name, grpcAddr, sinkAddr, dir string, maxStreams int) (*target, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	telemetryAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	peerAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// A worker fed directly is the only member of its own ring: it holds
	// every stream, as one worker of a one-replica pipeline does.
	p := benchPipeline(renderOptions{sink: sinkAddr, persistence: name == pipeDurable, maxStreams: maxStreams, interval: s.interval, workers: 1})
	membership := filepath.Join(dir, name+"-membership.json")
	if err := writeLocalMembership(p, []localWorker{{endpoint: grpcAddr, peer: peerAddr}}, membership); err != nil {
		return nil, err
	}
	addrs := localconfig.WorkerAddresses{
		OTLPGRPC: grpcAddr, OTLPHTTP: httpAddr, Telemetry: telemetryAddr, OTLPExporter: sinkAddr,
		Peer: peerAddr, Member: naming.WorkerPod(p, 0), MembershipFile: membership,
	}
	if name == pipeDurable {
		// A fresh directory per start: every measurement begins with an
		// empty journal, as a new pod's volume does.
		parent := dir
		if s.stateParent != "" {
			parent = s.stateParent
		}
		if addrs.StateDirectory, err = os.MkdirTemp(parent, "deltapipeline-bench-state-"); err != nil {
			return nil, fmt.Errorf("creating the worker's state directory: %w", err)
		}
	}
	config, err := renderWorker(p, addrs)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name+"-worker.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	// The benchmark reads the table, not the worker's info logs.
	env := []string{"DELTAPIPELINE_LOG_LEVEL=warn"}
	if s.workerEnv != "" {
		env = append(env, strings.Split(s.workerEnv, ",")...)
	}
	if s.cpuProfile != "" {
		env = append(env, "DELTAPIPELINE_CPU_PROFILE="+s.cpuProfile+"-"+name+".pprof")
	}
	proc, err := startProcess(displayName(name), []string{s.workerBin, "--config", path}, env)
	if err != nil {
		return nil, err
	}
	return &target{proc: proc, grpc: grpcAddr, telemetry: telemetryAddr, stateDir: addrs.StateDirectory}, proc.waitHTTP("http://"+telemetryAddr+"/readyz", 60*time.Second)
}

// upstreamConfig is the upstream pipeline with default settings except the
// stream bound (raised to the worker's), compression (off, as the worker's)
// and the collector's own metrics (the last %s: upstreamTelemetryOff, or
// upstreamTelemetryServed where a benchmark reads them).
const upstreamConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
        max_recv_msg_size_mib: 16
processors:
  delta_to_cumulative:
    max_stale: 10m
    max_streams: %d
exporters:
  otlp_grpc:
    endpoint: %q
    tls:
      insecure: true
    compression: none
service:
  telemetry:
    logs:
      level: warn
    metrics:
%s
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [delta_to_cumulative]
      exporters: [otlp_grpc]
`

// upstreamTelemetryOff keeps the collector's own metrics off, so it neither
// binds :8888 nor spends CPU on them.
const upstreamTelemetryOff = "      level: none"

// upstreamTelemetryServed serves the collector's own metrics on host:port,
// which count the points it accepted.
const upstreamTelemetryServed = `      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: %q
                port: %s`

func upstreamCollectorConfig(endpoint string, maxStreams int, sink, telemetry string) string {
	return fmt.Sprintf(upstreamConfig, endpoint, maxStreams, sink, telemetry)
}

func measureThroughput(ctx context.Context, s settings, self, name string, shared *sinkProcess, templates []*template, dir string) (throughputRow, error) {
	row := throughputRow{name: name}
	t, err := retryOnTakenPort(func() (*target, error) { return startTarget(s, self, name, shared, dir, 2*s.streams) },
		func(t *target) { _ = t.stop(10 * time.Second) })
	if err != nil {
		if t != nil {
			_ = t.stop(10 * time.Second)
		}
		return row, err
	}
	gen, err := newGenerator([]string{t.grpc}, templates, s.connections, s.senders, s.dataClock())
	if err != nil {
		_ = t.stop(10 * time.Second)
		return row, err
	}
	defer gen.close()
	sinkBefore := shared.received(ctx)

	measureFrom := time.Now().Add(s.warmup)
	cpuFrom := make(chan time.Duration, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		c, _ := t.proc.cpuTime()
		cpuFrom <- c
	}()
	row.load = gen.run(ctx, measureFrom, measureFrom.Add(s.duration))
	row.load.elapsed = s.duration
	if c, err := t.proc.cpuTime(); err == nil {
		row.cpu = c - <-cpuFrom
	}
	if ctx.Err() != nil {
		_ = t.stop(10 * time.Second)
		return row, ctx.Err()
	}
	if _, row.peak, err = t.proc.memory(); err != nil {
		_ = t.stop(10 * time.Second)
		return row, err
	}
	stopErr := t.stop(60 * time.Second)
	row.sinkIn = shared.received(ctx) - sinkBefore
	if name == "sink" {
		row.sinkIn = -1
	}
	if row.load.accepted == 0 {
		return row, fmt.Errorf("no point accepted (%d failed requests, last error: %s)", row.load.failed, row.load.lastError)
	}
	return row, stopErr
}

var activeStreamsLine = regexp.MustCompile(`(?m)^deltapipeline_worker_active_streams (\S+)$`)

func measureMemory(ctx context.Context, s settings, name string, kind mix, streams int, shared *sinkProcess, dir string) (memoryRow, error) {
	row := memoryRow{name: name, kind: kind, streams: streams}
	templates, err := buildTemplates(streams, s.batch, kind)
	if err != nil {
		return row, err
	}
	// Profiles are for the throughput phase.
	s.cpuProfile = ""
	t, err := retryOnTakenPort(func() (*target, error) { return startTarget(s, "", name, shared, dir, 2*streams) },
		func(t *target) { _ = t.stop(10 * time.Second) })
	if err != nil {
		if t != nil {
			_ = t.stop(10 * time.Second)
		}
		return row, err
	}
	defer func() { _ = t.stop(120 * time.Second) }()
	gen, err := newGenerator([]string{t.grpc}, templates, s.connections, s.senders, s.dataClock())
	if err != nil {
		return row, err
	}
	defer gen.close()
	time.Sleep(time.Second)
	if row.idle, _, err = t.proc.memory(); err != nil {
		return row, err
	}
	// Two rounds: the first creates every stream, the second updates each
	// once, which is the steady state of a worker holding these streams.
	for range 2 {
		if _, err := gen.sendOnce(ctx); err != nil {
			return row, err
		}
	}
	// Let in-flight exports and the collector's garbage settle.
	time.Sleep(2*s.interval + 2*time.Second)
	if row.settled, row.peak, err = t.proc.memory(); err != nil {
		return row, err
	}
	if t.telemetry != "" {
		text, err := httpText(ctx, "http://"+t.telemetry+"/metrics")
		if err != nil {
			return row, err
		}
		if m := activeStreamsLine.FindStringSubmatch(text); m != nil {
			row.reportedActive = m[1]
		}
	}
	return row, nil
}

// retryOnTakenPort starts something up to three times while it fails
// because a port freeAddr picked was taken before the process bound it (by
// another process's outgoing connection, for one); stop releases a failed
// attempt.
func retryOnTakenPort[T any](start func() (*T, error), stop func(*T)) (*T, error) {
	for attempt := 1; ; attempt++ {
		t, err := start()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return t, err
		}
		if t != nil {
			stop(t)
		}
		fmt.Fprintf(os.Stderr, "  retrying with other ports: %v\n", firstLine(err.Error()))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// median is the run with the median throughput; its points/s of every run
// are kept for the table.
func median(runs []throughputRow) throughputRow {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b throughputRow) int {
		return cmp.Compare(a.load.pointsPerSecond(), b.load.pointsPerSecond())
	})
	m := sorted[len(sorted)/2]
	for _, r := range runs {
		m.all = append(m.all, r.load.pointsPerSecond())
	}
	return m
}

// cpuPerMillion is CPU seconds per million points, the cost of a point that
// depends least on what else runs on the machine.
func cpuPerMillion(cpu time.Duration, points int64) string {
	if points <= 0 || cpu <= 0 {
		return "-"
	}
	return strconv.FormatFloat(cpu.Seconds()/float64(points)*1e6, 'f', 2, 64)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func printThroughput(out io.Writer, rows []throughputRow, runs map[string][]throughputRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(out, "Throughput (accepted delta points per second, median round; peak RSS = VmHWM of that round)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pipeline\taccepted points/s\tCPU s per M points\tpeak RSS\tfailed requests\tpoints exported to sink\tevery round (points/s)\t")
	for _, r := range rows {
		exported := "-"
		if r.sinkIn >= 0 {
			exported = strconv.FormatInt(r.sinkIn, 10)
		}
		var each []string
		for _, v := range r.all {
			each = append(each, strconv.FormatFloat(v, 'f', 0, 64))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%s\t%s\t\n", displayName(r.name), r.load.pointsPerSecond(), cpuPerMillion(r.cpu, r.load.accepted), mib(r.peak), r.load.failed, exported, strings.Join(each, " "))
	}
	_ = tw.Flush()
	printRatios(out, runs, []ratioTarget{
		{pipeDurable, pipeSink, 0.85},
		{pipeDurable, pipeUpstream, 3},
		{pipeMemory, pipeSink, 0.95},
		{pipeMemory, pipeUpstream, 0},
		{pipeDurable, pipeMemory, 0},
	}, displayName)
	for _, r := range rows {
		if r.load.lastError != "" {
			fmt.Fprintf(out, "%s last error: %s\n", displayName(r.name), r.load.lastError)
		}
	}
	fmt.Fprintln(out)
}

// ratioTarget is a throughput ratio to report, and the least it should be
// (0: no target).
type ratioTarget struct {
	of, to string
	target float64
}

// printRatios reports each ratio from the rounds both pipelines ran: the
// pipelines take turns within a round, so a round's ratio compares them at
// about the same load on the machine. The headline is the median round's
// ratio; every round's follows.
func printRatios(out io.Writer, runs map[string][]throughputRow, ratios []ratioTarget, name func(string) string) {
	for _, r := range ratios {
		a, b := runs[r.of], runs[r.to]
		n := min(len(a), len(b))
		if n == 0 {
			continue
		}
		var each []float64
		for i := range n {
			if v := b[i].load.pointsPerSecond(); v > 0 {
				each = append(each, a[i].load.pointsPerSecond()/v)
			}
		}
		if len(each) == 0 {
			continue
		}
		sorted := slices.Clone(each)
		slices.Sort(sorted)
		med := sorted[len(sorted)/2]
		var rounds []string
		for _, v := range each {
			rounds = append(rounds, strconv.FormatFloat(v, 'f', 2, 64))
		}
		verdict := ""
		if r.target > 0 {
			met := "met"
			if med < r.target {
				met = "NOT met"
			}
			verdict = fmt.Sprintf(" (target >= %.2fx: %s)", r.target, met)
		}
		fmt.Fprintf(out, "%s / %s throughput: %.2fx%s; every round: %s\n", name(r.of), name(r.to), med, verdict, strings.Join(rounds, " "))
	}
}

// memoryTarget is the resident memory a sum stream may cost at a million.
const memoryTarget = 400

func printMemory(out io.Writer, rows []memoryRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(out, "Memory per active stream (RSS after the streams settled minus RSS at idle)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pipeline\tstreams\tkind\tidle RSS\tsettled RSS\tpeak RSS\tbytes/stream (settled)\tbytes/stream (peak)\treported active streams\t")
	for _, r := range rows {
		reported := r.reportedActive
		if reported == "" {
			reported = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t\n", displayName(r.name), r.streams, r.kind, mib(r.idle), mib(r.settled), mib(r.peak),
			r.perStream(), float64(r.peak-r.idle)/float64(r.streams), reported)
	}
	_ = tw.Flush()
	for _, r := range rows {
		if r.kind != mixSums || r.name == pipeUpstream || r.streams < 1_000_000 {
			continue
		}
		met := "met"
		if r.perStream() > memoryTarget {
			met = "NOT met"
		}
		fmt.Fprintf(out, "%s: %.0f B per sum stream at %d streams (target <= %d B: %s)\n", displayName(r.name), r.perStream(), r.streams, memoryTarget, met)
	}
}

func (r memoryRow) perStream() float64 { return float64(r.settled-r.idle) / float64(r.streams) }

// lockedBuffer is a process's combined output, written by the process's
// copying goroutine and read when reporting a failure.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
