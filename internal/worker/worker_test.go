package worker

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/export/remotewrite"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// remoteWriteServer is a real remote write endpoint recording every request.
type remoteWriteServer struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	got []rwRequest
	// gate, when set, holds every request until it is closed.
	gate chan struct{}
}

type rwRequest struct {
	header http.Header
	body   []byte
	req    remotewrite.WriteRequest
}

func newRemoteWriteServer(t *testing.T) *remoteWriteServer {
	s := &remoteWriteServer{t: t}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.gate != nil {
			<-s.gate
		}
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			t.Errorf("remote write body is not snappy: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		wr, err := remotewrite.DecodeWriteRequest(raw)
		if err != nil {
			t.Errorf("remote write body is not a WriteRequest: %v", err)
		}
		s.mu.Lock()
		s.got = append(s.got, rwRequest{header: r.Header.Clone(), body: body, req: wr})
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *remoteWriteServer) requests() []rwRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// samples returns every sample of the series whose labels, without
// __name__, render as want (name=value pairs joined by commas).
func (s *remoteWriteServer) samples(name, want string) []remotewrite.Sample {
	var out []remotewrite.Sample
	for _, r := range s.requests() {
		for _, ts := range r.req.Timeseries {
			if ts.Labels[0].Name != "__name__" || ts.Labels[0].Value != name {
				continue
			}
			var pairs []string
			for _, l := range ts.Labels[1:] {
				pairs = append(pairs, l.Name+"="+l.Value)
			}
			if strings.Join(pairs, ",") == want {
				out = append(out, ts.Samples...)
			}
		}
	}
	return out
}

type harness struct {
	w       *Worker
	stop    context.CancelFunc
	done    chan error
	httpURL string
	conn    *grpc.ClientConn
}

type configOption func(*workerconfig.Config)

func withInterval(d time.Duration) configOption {
	return func(c *workerconfig.Config) { c.Conversion.Interval = workerconfig.D(d) }
}

func withMaxStreams(n int) configOption {
	return func(c *workerconfig.Config) { c.Conversion.MaxStreams = n }
}

func withRemoteWrite(url string) configOption {
	return func(c *workerconfig.Config) {
		c.Exporters.PrometheusRemoteWrite = &workerconfig.RemoteWriteExporter{
			Endpoint: url + "/workspaces/ws-test/api/v1/remote_write",
			SigV4:    &workerconfig.SigV4{Region: "us-east-1"},
		}
	}
}

func withRemoteWriteQueue(size int) configOption {
	return func(c *workerconfig.Config) { c.Exporters.PrometheusRemoteWrite.QueueSize = size }
}

func withStateDirectory(dir string) configOption {
	return func(c *workerconfig.Config) { c.State.Directory = dir }
}

var signingTime = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func startWorker(t *testing.T, opts ...configOption) *harness {
	t.Helper()
	cfg := workerconfig.Config{
		Receivers: workerconfig.Receivers{OTLP: workerconfig.OTLPReceiver{
			GRPC: workerconfig.GRPCServer{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 1},
			HTTP: workerconfig.HTTPServer{Endpoint: "127.0.0.1:0", MaxRequestBodyMiB: 1},
		}},
		Conversion: workerconfig.Conversion{Interval: workerconfig.D(time.Hour)},
		Exporters:  workerconfig.Exporters{Prometheus: &workerconfig.PrometheusExporter{Endpoint: "127.0.0.1:0"}},
		Telemetry:  workerconfig.Telemetry{Endpoint: "127.0.0.1:0"},
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	cfg.ApplyDefaults()
	if cfg.Conversion.MaxStale.Duration < cfg.Conversion.Interval.Duration {
		cfg.Conversion.MaxStale = cfg.Conversion.Interval
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := New(t.Context(), cfg, Options{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second,
		RemoteWrite: func(o *remotewrite.Options) {
			o.Clock = func() time.Time { return signingTime }
			o.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &harness{w: w, stop: stop, done: make(chan error, 1), httpURL: "http://" + w.HTTPAddr().String() + "/v1/metrics"}
	go func() { h.done <- w.Run(ctx) }()
	t.Cleanup(func() { h.shutdown(t) })
	h.conn, err = grpc.NewClient(w.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	h.waitReady(t)
	return h
}

func (h *harness) waitReady(t *testing.T) {
	t.Helper()
	url := "http://" + h.w.TelemetryAddr().String() + "/readyz"
	for range 500 {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("worker never became ready")
}

// shutdown is the SIGTERM path: cancel Run's context and wait for it.
func (h *harness) shutdown(t *testing.T) {
	t.Helper()
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	if err := <-h.done; err != nil {
		t.Errorf("worker shutdown: %v", err)
	}
}

var t0 = time.Date(2026, 5, 6, 7, 0, 0, 0, time.UTC)

// deltaTokens is one Claude Code token-usage delta for a session.
func deltaTokens(session string, from, to int, value int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(from) * time.Second)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(to) * time.Second)))
	dp.SetIntValue(value)
	dp.Attributes().PutStr("session.id", session)
	dp.Attributes().PutStr("type", "input")
	return md
}

func (h *harness) sendGRPC(t *testing.T, md pmetric.Metrics) pmetricotlp.ExportResponse {
	t.Helper()
	resp, err := pmetricotlp.NewGRPCClient(h.conn).Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(md), grpc.UseCompressor("gzip"))
	if err != nil {
		t.Fatalf("OTLP/gRPC export: %v", err)
	}
	return resp
}

// postHTTP sends one OTLP/HTTP request and returns the status code and the
// body of the answer.
func (h *harness) postHTTP(t *testing.T, contentType string, gzipped bool, body []byte) (int, []byte) {
	t.Helper()
	if gzipped {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.httpURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (h *harness) sendHTTP(t *testing.T, md pmetric.Metrics, asJSON, gzipped bool) {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	body, contentType := []byte(nil), "application/x-protobuf"
	var err error
	if asJSON {
		body, err = req.MarshalJSON()
		contentType = "application/json"
	} else {
		body, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	status, out := h.postHTTP(t, contentType, gzipped, body)
	if status != http.StatusOK {
		t.Fatalf("OTLP/HTTP export: %d %s", status, out)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

const tokenSeries = "claude_code_token_usage_tokens_total"

func TestConvertsOverEveryTransportToRemoteWriteAndScrape(t *testing.T) {
	rw := newRemoteWriteServer(t)
	h := startWorker(t, withRemoteWrite(rw.srv.URL), withInterval(20*time.Millisecond))

	first := deltaTokens("s-1", 0, 10, 100)
	h.sendGRPC(t, first)
	h.sendHTTP(t, deltaTokens("s-1", 10, 20, 20), false, false)
	h.sendHTTP(t, deltaTokens("s-1", 20, 30, 3), true, false)
	h.sendHTTP(t, deltaTokens("s-1", 30, 40, 4), false, true)
	h.sendHTTP(t, deltaTokens("s-1", 40, 50, 5), true, true)
	// A gateway retry of a request already applied counts once.
	h.sendGRPC(t, deltaTokens("s-1", 40, 50, 5))

	// Wait for an emit of the full total, then compare the scrape endpoint.
	labels := "job=claude-code,otel_scope_name=com.anthropic.claude_code,session_id=s-1,type=input"
	for range 500 {
		if s := rw.samples(tokenSeries, labels); len(s) > 0 && s[len(s)-1].Value == 132 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	scrape := get(t, "http://"+h.w.PrometheusAddr().String()+"/metrics")
	if want := tokenSeries + `{job="claude-code",otel_scope_name="com.anthropic.claude_code",session_id="s-1",type="input"} 132`; !strings.Contains(scrape, want) {
		t.Errorf("scrape endpoint lacks %q:\n%s", want, scrape)
	}
	self := get(t, "http://"+h.w.TelemetryAddr().String()+"/metrics")
	for _, want := range []string{
		"deltapipeline_worker_applied_points_total 5",
		"deltapipeline_worker_duplicate_points_total 1",
		`deltapipeline_worker_received_points_total{transport="grpc"} 2`,
		`deltapipeline_worker_received_points_total{transport="http"} 4`,
		"deltapipeline_worker_active_streams 1",
	} {
		if !strings.Contains(self, want) {
			t.Errorf("self-metrics lack %q:\n%s", want, grepLines(self, "deltapipeline_worker_"))
		}
	}
	h.shutdown(t)

	samples := rw.samples(tokenSeries, labels)
	if len(samples) == 0 {
		t.Fatalf("no samples for %s{%s}; got %d requests", tokenSeries, labels, len(rw.requests()))
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].Timestamp <= samples[i-1].Timestamp {
			t.Errorf("sample %d timestamp %d does not follow %d", i, samples[i].Timestamp, samples[i-1].Timestamp)
		}
		if samples[i].Value < samples[i-1].Value {
			t.Errorf("cumulative value went down: %v then %v", samples[i-1].Value, samples[i].Value)
		}
	}
	if last := samples[len(samples)-1]; last.Value != 132 {
		t.Errorf("final total %v, want 132 (100+20+3+4+5, the retried request once)", last.Value)
	}
	for _, v := range samples {
		if !slices.Contains([]float64{100, 120, 123, 127, 132}, v.Value) {
			t.Errorf("value %v is not a running total of the deltas sent", v.Value)
		}
	}
	for _, r := range rw.requests() {
		sum := sha256.Sum256(r.body)
		if r.header.Get("X-Amz-Content-Sha256") != hex.EncodeToString(sum[:]) {
			t.Errorf("X-Amz-Content-Sha256 does not match the body")
		}
		if r.header.Get("X-Amz-Date") != "20260506T070809Z" {
			t.Errorf("X-Amz-Date = %q", r.header.Get("X-Amz-Date"))
		}
		if !strings.HasPrefix(r.header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260506/us-east-1/aps/aws4_request") {
			t.Errorf("Authorization = %q", r.header.Get("Authorization"))
		}
	}
}

func TestGracefulShutdownEmitsFinalTotals(t *testing.T) {
	rw := newRemoteWriteServer(t)
	// An hour-long interval: only the shutdown emit can deliver the total.
	h := startWorker(t, withRemoteWrite(rw.srv.URL))
	h.sendGRPC(t, deltaTokens("s-9", 0, 5, 7))
	h.sendGRPC(t, deltaTokens("s-9", 5, 9, 8))
	if n := len(rw.requests()); n != 0 {
		t.Fatalf("%d requests before shutdown with an hour-long interval", n)
	}
	h.shutdown(t)
	samples := rw.samples(tokenSeries, "job=claude-code,otel_scope_name=com.anthropic.claude_code,session_id=s-9,type=input")
	if len(samples) != 1 || samples[0].Value != 15 || samples[0].Timestamp != t0.Add(9*time.Second).UnixMilli() {
		t.Errorf("final emit = %+v, want one sample of 15 at the end of the last interval", samples)
	}
}

// An emit larger than an exporter's queue waits for the sender instead of
// displacing its own requests: the shutdown emit of 40 000 streams makes
// over 20 remote write requests (parts of 8 192 points, at most 2 000
// series a request) for a queue of 16, behind a destination that holds
// every request until the emit is seen waiting.
func TestEmitWaitsForExporterBacklog(t *testing.T) {
	const streams, perRequest = 40000, 2000
	rw := newRemoteWriteServer(t)
	rw.gate = make(chan struct{})
	h := startWorker(t, withRemoteWrite(rw.srv.URL), withRemoteWriteQueue(16))
	for first := 0; first < streams; first += perRequest {
		md := pmetric.NewMetrics()
		for i := first; i < first+perRequest; i++ {
			deltaTokens(fmt.Sprintf("s-%d", i), 0, 60, int64(i+1)).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
		}
		h.sendGRPC(t, md)
	}

	// Hold the sender until the shutdown emit either waits for it or, had it
	// run ahead, displaced its own requests from the full queue.
	released := make(chan struct{})
	go func() {
		defer close(released)
		defer close(rw.gate)
		for range 2000 {
			if metricSum(t, h.w.Registry(), "deltapipeline_worker_export_dropped_points_total") > 0 {
				return
			}
			if waitingForBacklog() {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Error("the shutdown emit neither waited for the exporter's backlog nor overflowed its queue")
	}()
	h.shutdown(t)
	<-released

	if dropped := metricSum(t, h.w.Registry(), "deltapipeline_worker_export_dropped_points_total"); dropped != 0 {
		t.Errorf("%v samples dropped; the emit ran ahead of the sender", dropped)
	}
	delivered := 0
	for _, r := range rw.requests() {
		delivered += len(r.req.Timeseries)
	}
	if delivered != streams {
		t.Errorf("%d series delivered, want %d", delivered, streams)
	}
}

// waitingForBacklog tells whether a goroutine is parked waiting for an
// export queue to shrink.
func waitingForBacklog() bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("sendqueue.(*Queue[...]).WaitLen("))
}

// metricSum sums every series of the named metric on reg.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestPassthroughIsForwardedUnchanged(t *testing.T) {
	rw := newRemoteWriteServer(t)
	h := startWorker(t, withRemoteWrite(rw.srv.URL))
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("process.memory.usage")
	g.SetUnit("By")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	dp.SetIntValue(4096)
	h.sendHTTP(t, md, false, false)
	h.shutdown(t)
	samples := rw.samples("process_memory_usage_bytes", "job=claude-code")
	if len(samples) != 1 || samples[0].Value != 4096 || samples[0].Timestamp != t0.UnixMilli() {
		t.Errorf("passthrough gauge = %+v", samples)
	}
}

func TestStreamLimitIsPartialSuccess(t *testing.T) {
	h := startWorker(t, withMaxStreams(1))
	md := deltaTokens("a", 0, 1, 1)
	deltaTokens("b", 0, 1, 1).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	resp := h.sendGRPC(t, md)
	if resp.PartialSuccess().RejectedDataPoints() != 1 {
		t.Errorf("rejected_data_points = %d, want 1", resp.PartialSuccess().RejectedDataPoints())
	}
	if !strings.Contains(resp.PartialSuccess().ErrorMessage(), "stream limit") {
		t.Errorf("error_message %q does not name the stream limit", resp.PartialSuccess().ErrorMessage())
	}
	self := get(t, "http://"+h.w.TelemetryAddr().String()+"/metrics")
	if !strings.Contains(self, `deltapipeline_worker_rejected_points_total{reason="stream_limit"} 1`) {
		t.Errorf("stream limit rejection not counted")
	}
}

func TestMalformedAndOversizeRequests(t *testing.T) {
	h := startWorker(t)
	code, body := h.postHTTP(t, "application/x-protobuf", false, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	if code != http.StatusBadRequest {
		t.Errorf("malformed protobuf: %d %q", code, body)
	}
	big := make([]byte, 2<<20)
	code, _ = h.postHTTP(t, "application/x-protobuf", false, big)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize body: %d, want 413", code)
	}

	md := pmetric.NewMetrics()
	for i := range 3000 {
		deltaTokens(strings.Repeat("x", 300)+string(rune('a'+i%26)), 0, 1, 1).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	}
	_, err := pmetricotlp.NewGRPCClient(h.conn).Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(md))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversize gRPC request: %v, want ResourceExhausted", err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	rw := newRemoteWriteServer(t)
	first := startWorker(t, withRemoteWrite(rw.srv.URL), withStateDirectory(dir))
	first.sendGRPC(t, deltaTokens("s-r", 0, 10, 40))
	first.shutdown(t)

	second := startWorker(t, withRemoteWrite(rw.srv.URL), withStateDirectory(dir))
	second.sendGRPC(t, deltaTokens("s-r", 0, 10, 40)) // redelivered after the restart: already counted
	second.sendGRPC(t, deltaTokens("s-r", 10, 20, 2))
	second.shutdown(t)

	samples := rw.samples(tokenSeries, "job=claude-code,otel_scope_name=com.anthropic.claude_code,session_id=s-r,type=input")
	var values []float64
	for _, s := range samples {
		values = append(values, s.Value)
	}
	if !slices.Equal(values, []float64{40, 42}) {
		t.Errorf("totals across the restart = %v, want [40 42]", values)
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].Timestamp <= samples[i-1].Timestamp {
			t.Errorf("timestamps not increasing across restart: %+v", samples)
		}
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Points of held streams are read in place, a new stream's point and a
// request with passthrough data are decoded; both count as received and
// applied alike.
func TestHeldStreamsAreReadInPlace(t *testing.T) {
	h := startWorker(t, withStateDirectory(t.TempDir()))
	reg := h.w.Registry()
	h.sendGRPC(t, deltaTokens("a", 0, 1, 1)) // a new stream: decoded
	next := deltaTokens("a", 1, 2, 2)        // held: read in place
	deltaTokens("b", 1, 2, 3).ResourceMetrics().MoveAndAppendTo(next.ResourceMetrics())
	h.sendGRPC(t, next) // one held, one new
	withGauge := deltaTokens("a", 2, 3, 4)
	g := withGauge.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	g.SetName("process.memory.usage")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(1)
	h.sendGRPC(t, withGauge) // passthrough: decoded whole
	for name, want := range map[string]float64{
		"deltapipeline_worker_received_points_total": 5,
		"deltapipeline_worker_in_place_points_total": 1,
		"deltapipeline_worker_applied_points_total":  4,
	} {
		if got := metricSum(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
