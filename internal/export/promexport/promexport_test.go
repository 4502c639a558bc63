package promexport

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/export"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func start(t *testing.T, c *clock) *Exporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := export.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Listen(Options{
		Endpoint:   "127.0.0.1:0",
		MaxStale:   5 * time.Minute,
		Metrics:    metrics,
		Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:        c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.Serve() }()
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

func scrape(t *testing.T, e *Exporter) string {
	t.Helper()
	resp, err := http.Get("http://" + e.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d", resp.StatusCode)
	}
	return string(b)
}

func tokens(value float64, sessionID string, flags pmetric.DataPointFlags) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	m.SetDescription("Number of tokens used")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := s.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_700_000_000, 0)))
	dp.SetDoubleValue(value)
	dp.Attributes().PutStr("session.id", sessionID)
	dp.SetFlags(flags)
	return md
}

func TestServesLatestCumulativeValue(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	e := start(t, c)
	for _, v := range []float64{10, 25} {
		if err := e.Export(t.Context(), tokens(v, "s-1", 0)); err != nil {
			t.Fatal(err)
		}
	}
	body := scrape(t, e)
	for _, want := range []string{
		"# HELP claude_code_token_usage_tokens_total Number of tokens used",
		"# TYPE claude_code_token_usage_tokens_total counter",
		`claude_code_token_usage_tokens_total{job="claude-code",session_id="s-1"} 25`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "} 10") {
		t.Errorf("scrape still shows the superseded value:\n%s", body)
	}
}

func TestSeriesExpireAfterMaxStale(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	e := start(t, c)
	if err := e.Export(t.Context(), tokens(1, "old", 0)); err != nil {
		t.Fatal(err)
	}
	c.advance(4 * time.Minute)
	if err := e.Export(t.Context(), tokens(2, "fresh", 0)); err != nil {
		t.Fatal(err)
	}
	c.advance(2 * time.Minute)
	body := scrape(t, e)
	if strings.Contains(body, `session_id="old"`) {
		t.Errorf("series not updated for 6m is still served with maxStale 5m:\n%s", body)
	}
	if !strings.Contains(body, `session_id="fresh"`) {
		t.Errorf("fresh series missing:\n%s", body)
	}
}

func TestNoRecordedValueRemovesSeries(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	e := start(t, c)
	if err := e.Export(t.Context(), tokens(1, "s", 0)); err != nil {
		t.Fatal(err)
	}
	if err := e.Export(t.Context(), tokens(0, "s", pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))); err != nil {
		t.Fatal(err)
	}
	if body := scrape(t, e); strings.Contains(body, "claude_code_token_usage_tokens_total{") {
		t.Errorf("ended series still served:\n%s", body)
	}
}
