package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func serve(t *testing.T, reg *prometheus.Registry, r *Readiness) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", reg, r, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return "http://" + s.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadinessFollowsState(t *testing.T) {
	r := NewReadiness("restoring state from /data")
	base := serve(t, NewRegistry(), r)

	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz while starting = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: restoring state from /data\n" {
		t.Errorf("/readyz while restoring = %d %q", code, body)
	}
	r.Ready()
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}
	r.NotReady("shutting down")
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while shutting down = %d %q", code, body)
	}
}

func TestReadinessProbeIncludesTheChecksOfOtherPackages(t *testing.T) {
	r := NewReadiness("restoring state from /data")
	var journal, checkpoint atomic.Pointer[error]
	load := func(p *atomic.Pointer[error]) func() error {
		return func() error {
			if err := p.Load(); err != nil {
				return *err
			}
			return nil
		}
	}
	r.Require(load(&journal))
	r.Notice(load(&checkpoint))
	set := func(p *atomic.Pointer[error], msg string) {
		err := errors.New(msg)
		p.Store(&err)
	}
	base := serve(t, NewRegistry(), r)

	set(&journal, "replaying the write-ahead log from segment 3")
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable ||
		body != "not ready: restoring state from /data; replaying the write-ahead log from segment 3\n" {
		t.Errorf("/readyz while restoring = %d %q", code, body)
	}
	journal.Store(nil)
	r.Ready()
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}

	set(&journal, "the write-ahead log cannot make requests durable: disk full")
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: the write-ahead log cannot make requests durable: disk full\n" {
		t.Errorf("/readyz with a failed journal = %d %q", code, body)
	}
	if ready, _ := r.State(); !ready {
		t.Error("a failed check changed the worker's own phase, which gates requests")
	}
	journal.Store(nil)

	set(&checkpoint, "the last 2 checkpoint(s) failed")
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ready\nwarning: the last 2 checkpoint(s) failed\n" {
		t.Errorf("/readyz with a failed checkpoint = %d %q", code, body)
	}
}

// The metrics themselves are registered by the packages that count them
// (their own tests check their names); the endpoint serves whatever is on
// the worker's registry, with the runtime and process collectors.
func TestMetricsEndpointServesSelfMetrics(t *testing.T) {
	reg := NewRegistry()
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "refused_requests_total", Help: "Requests refused.",
	}, []string{"transport", "reason"})
	reg.MustRegister(refused)
	base := serve(t, reg, NewReadiness("starting"))
	refused.WithLabelValues("grpc", "malformed").Add(7)

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`deltapipeline_worker_refused_requests_total{reason="malformed",transport="grpc"} 7`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestLoggerFormatsAndLevels(t *testing.T) {
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("hidden")
	logger.Warn("shown", "k", "v")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown","k":"v"`) {
		t.Errorf("json logger at warn wrote %q", out)
	}
	if _, err := NewLogger(&buf, "loud", "json"); err == nil {
		t.Error("unknown level accepted")
	}
	if _, err := NewLogger(&buf, "info", "xml"); err == nil || !strings.Contains(err.Error(), `"xml" is not one of json, text`) {
		t.Errorf("unknown format: %v", err)
	}
}
