package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/deltapipeline/deltapipeline/internal/worker"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// syncBuffer collects the command's output; the worker logs from several
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type invocation struct {
	env    map[string]string
	stdout syncBuffer
	stderr syncBuffer
}

type invocationOption func(*invocation)

func withEnv(name, value string) invocationOption {
	return func(i *invocation) { i.env[name] = value }
}

func newInvocation(opts ...invocationOption) *invocation {
	inv := &invocation{env: map[string]string{}}
	for _, o := range opts {
		o(inv)
	}
	return inv
}

func (inv *invocation) environment(started func(*worker.Worker)) environment {
	return environment{
		stdout:  &inv.stdout,
		stderr:  &inv.stderr,
		getenv:  func(k string) string { return inv.env[k] },
		started: started,
	}
}

// runToCompletion runs a command that is expected to exit on its own.
func (inv *invocation) runToCompletion(t *testing.T, args ...string) int {
	t.Helper()
	return run(t.Context(), args, inv.environment(nil))
}

// exampleConfig is docs/examples/worker.yaml with every listener moved to a
// kernel-chosen loopback port, the state directory moved to a temporary
// directory and a short emit interval, written to a temporary file.
func exampleConfig(t *testing.T, edit func(*workerconfig.Config)) string {
	t.Helper()
	data, err := os.ReadFile("../../docs/examples/worker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := workerconfig.Decode(data)
	if err != nil {
		t.Fatalf("docs/examples/worker.yaml: %v", err)
	}
	cfg.Receivers.OTLP.GRPC.Endpoint = "127.0.0.1:0"
	cfg.Receivers.OTLP.HTTP.Endpoint = "127.0.0.1:0"
	cfg.Exporters.Prometheus.Endpoint = "127.0.0.1:0"
	cfg.Telemetry.Endpoint = "127.0.0.1:0"
	cfg.State.Directory = filepath.Join(t.TempDir(), "data")
	cfg.Conversion.Interval = workerconfig.D(50 * time.Millisecond)
	if edit != nil {
		edit(&cfg)
	}
	out, err := workerconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// running is a worker command running in-process until stop.
type running struct {
	w      *worker.Worker
	cancel context.CancelFunc
	exit   chan int
}

func start(t *testing.T, inv *invocation, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *worker.Worker, 1)
	r := &running{cancel: cancel, exit: make(chan int, 1)}
	go func() { r.exit <- run(ctx, args, inv.environment(func(w *worker.Worker) { started <- w })) }()
	select {
	case r.w = <-started:
	case code := <-r.exit:
		cancel()
		t.Fatalf("worker exited with %d before starting:\n%s", code, inv.stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("worker did not start within 30s")
	}
	t.Cleanup(func() { r.stop(t) })
	waitReady(t, "http://"+r.w.TelemetryAddr().String()+"/readyz")
	return r
}

// stop is what SIGTERM does: cancel the signal context and wait for exit.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	if r.cancel == nil {
		return -1
	}
	r.cancel()
	r.cancel = nil
	select {
	case code := <-r.exit:
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not exit within 30s of the stop signal")
		return -1
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	for range 1000 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// tokenDelta is one Claude Code token-usage delta ending now, so that the
// scrape endpoint (which hides series older than maxStale) serves it.
func tokenDelta(end time.Time, seconds int, value int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Duration(seconds) * time.Second)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(end))
	dp.SetIntValue(value)
	dp.Attributes().PutStr("session.id", "s-cmd")
	dp.Attributes().PutStr("type", "output")
	return md
}

const tokenSeries = `claude_code_token_usage_tokens_total{job="claude-code",otel_scope_name="com.anthropic.claude_code",session_id="s-cmd",type="output"}`

func TestExampleConfigConvertsOverGRPCAndHTTP(t *testing.T) {
	inv := newInvocation()
	r := start(t, inv, "--config", exampleConfig(t, nil))

	now := time.Now().Truncate(time.Second)
	conn, err := grpc.NewClient(r.w.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := pmetricotlp.NewExportRequestFromMetrics(tokenDelta(now.Add(-2*time.Second), 10, 250))
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(t.Context(), first); err != nil {
		t.Fatalf("OTLP/gRPC export: %v", err)
	}
	// The same request again, as a gateway retry would send it: counted once.
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(t.Context(), first); err != nil {
		t.Fatalf("OTLP/gRPC export of the retry: %v", err)
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(tokenDelta(now, 2, 50)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+r.w.HTTPAddr().String()+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("OTLP/HTTP export: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export answered %d", resp.StatusCode)
	}

	scrapeURL := "http://" + r.w.PrometheusAddr().String() + "/metrics"
	want := tokenSeries + " 300"
	var scrape string
	for range 600 {
		if scrape = get(t, scrapeURL); strings.Contains(scrape, want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(scrape, want) {
		t.Fatalf("scrape endpoint lacks %q:\n%s", want, scrape)
	}
	self := get(t, "http://"+r.w.TelemetryAddr().String()+"/metrics")
	for _, line := range []string{"deltapipeline_worker_applied_points_total 2", "deltapipeline_worker_duplicate_points_total 1"} {
		if !strings.Contains(self, line) {
			t.Errorf("self-metrics lack %q", line)
		}
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit code after the stop signal = %d, want 0; stderr:\n%s", code, inv.stderr.String())
	}
	if !strings.Contains(inv.stderr.String(), "worker stopped") {
		t.Errorf("log lacks the shutdown line:\n%s", inv.stderr.String())
	}
}

func TestStateDirectorySurvivesRestart(t *testing.T) {
	cfgPath := exampleConfig(t, func(c *workerconfig.Config) { c.State.Directory = "" })
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	send := func(r *running, md pmetric.Metrics) {
		t.Helper()
		conn, err := grpc.NewClient(r.w.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := pmetricotlp.NewGRPCClient(conn).Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
			t.Fatalf("OTLP/gRPC export: %v", err)
		}
	}

	// The state directory comes from the environment here, from the flag below.
	first := start(t, newInvocation(withEnv("DELTAPIPELINE_STATE_DIRECTORY", dir)), "--config", cfgPath)
	send(first, tokenDelta(now.Add(-time.Second), 5, 40))
	if code := first.stop(t); code != exitOK {
		t.Fatalf("first run exited with %d", code)
	}

	second := start(t, newInvocation(), "--config", cfgPath, "--state-directory", dir)
	send(second, tokenDelta(now, 1, 2))
	want := tokenSeries + " 42"
	var scrape string
	for range 600 {
		if scrape = get(t, "http://"+second.w.PrometheusAddr().String()+"/metrics"); strings.Contains(scrape, want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(scrape, want) {
		t.Errorf("after the restart the scrape endpoint lacks %q (the total before it was lost?):\n%s", want, scrape)
	}
}

func TestUsageAndConfigurationErrors(t *testing.T) {
	badLevel := exampleConfig(t, func(c *workerconfig.Config) { c.Telemetry.LogLevel = "loud" })
	unknownField := filepath.Join(t.TempDir(), "unknown.yaml")
	if err := os.WriteFile(unknownField, []byte("conversion:\n  intervall: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noExporter := filepath.Join(t.TempDir(), "noexporter.yaml")
	if err := os.WriteFile(noExporter, []byte("conversion:\n  maxStreams: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		wantCode  int
		wantError []string
	}{
		{name: "no config", wantCode: exitUsage, wantError: []string{"--config (or DELTAPIPELINE_CONFIG) is required"}},
		{name: "missing file", args: []string{"--config", "/nonexistent/worker.yaml"}, wantCode: exitUsage,
			wantError: []string{"reading worker configuration", "/nonexistent/worker.yaml"}},
		{name: "unknown field", args: []string{"--config", unknownField}, wantCode: exitUsage,
			wantError: []string{`unknown field "intervall"`}},
		{name: "invalid fields are each named", args: []string{"--config", noExporter}, wantCode: exitUsage,
			wantError: []string{"conversion.maxStreams: must be positive, got -1", "exporters: at least one of"}},
		{name: "bad value in file", args: []string{"--config", badLevel}, wantCode: exitUsage,
			wantError: []string{`telemetry.logLevel: "loud" is not one of`}},
		{name: "bad value from the environment", args: []string{"--config", exampleConfig(t, nil)},
			env: map[string]string{"DELTAPIPELINE_LOG_FORMAT": "xml"}, wantCode: exitUsage,
			wantError: []string{`telemetry.logFormat: "xml" is not one of json, text`}},
		{name: "bad shutdown timeout from the environment", args: []string{"--config", exampleConfig(t, nil)},
			env: map[string]string{"DELTAPIPELINE_SHUTDOWN_TIMEOUT": "soon"}, wantCode: exitUsage,
			wantError: []string{`DELTAPIPELINE_SHUTDOWN_TIMEOUT: "soon" is not a positive duration`}},
		{name: "bad garbage collector headroom from the environment", args: []string{"--config", exampleConfig(t, nil)},
			env: map[string]string{"DELTAPIPELINE_GC_HEADROOM_MIB": "lots"}, wantCode: exitUsage,
			wantError: []string{`DELTAPIPELINE_GC_HEADROOM_MIB: "lots" is not a whole number of MiB`}},
		{name: "negative garbage collector headroom", args: []string{"--config", exampleConfig(t, nil), "--gc-headroom-mib", "-1"},
			wantCode: exitUsage, wantError: []string{"--gc-headroom-mib: -1 is negative"}},
		{name: "stray argument", args: []string{"--config", badLevel, "extra"}, wantCode: exitUsage,
			wantError: []string{`unexpected arguments ["extra"]`}},
		{name: "unknown flag", args: []string{"--colour"}, wantCode: exitUsage,
			wantError: []string{"flag provided but not defined: -colour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInvocation()
			for k, v := range tc.env {
				inv.env[k] = v
			}
			if code := inv.runToCompletion(t, tc.args...); code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, inv.stderr.String())
			}
			for _, want := range tc.wantError {
				if !strings.Contains(inv.stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, inv.stderr.String())
				}
			}
		})
	}
}

func TestOverridePrecedence(t *testing.T) {
	// The file says logLevel info; the environment says warn; the flag says
	// error and wins. --validate prints the effective configuration.
	cfg := exampleConfig(t, nil)
	inv := newInvocation(withEnv("DELTAPIPELINE_LOG_LEVEL", "warn"), withEnv("DELTAPIPELINE_CONFIG", cfg))
	if code := inv.runToCompletion(t, "--validate", "--log-level", "error"); code != exitOK {
		t.Fatalf("--validate exited with %d:\n%s", code, inv.stderr.String())
	}
	if !strings.Contains(inv.stdout.String(), "logLevel: error") {
		t.Errorf("flag did not win over the environment:\n%s", inv.stdout.String())
	}

	inv = newInvocation(withEnv("DELTAPIPELINE_LOG_LEVEL", "warn"), withEnv("DELTAPIPELINE_TELEMETRY_ENDPOINT", "127.0.0.1:18888"))
	if code := inv.runToCompletion(t, "--validate", "--config", cfg); code != exitOK {
		t.Fatalf("--validate exited with %d:\n%s", code, inv.stderr.String())
	}
	for _, want := range []string{"logLevel: warn", "endpoint: 127.0.0.1:18888", "maxStreams: 1000000"} {
		if !strings.Contains(inv.stdout.String(), want) {
			t.Errorf("effective configuration lacks %q (environment override or default missing):\n%s", want, inv.stdout.String())
		}
	}
}

func TestVersion(t *testing.T) {
	inv := newInvocation()
	if code := inv.runToCompletion(t, "--version"); code != exitOK {
		t.Fatalf("--version exited with %d", code)
	}
	if !strings.HasPrefix(inv.stdout.String(), "deltapipeline-worker ") {
		t.Errorf("--version printed %q", inv.stdout.String())
	}
}
