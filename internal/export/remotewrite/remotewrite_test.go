package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/export"
	"github.com/deltapipeline/deltapipeline/internal/version"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// received is one request as the test receiver saw it.
type received struct {
	at      time.Time
	header  http.Header
	url     string
	body    []byte // compressed, as sent
	request WriteRequest
}

// receiver is a real HTTP remote write endpoint whose answers the test scripts.
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	got      []received
	statuses []int // answered in order; 204 once exhausted
	headers  []http.Header
	block    chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{t: t, statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.block != nil {
		<-r.block
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading body: %v", err)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		r.t.Errorf("body is not snappy block format: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	wr, err := DecodeWriteRequest(raw)
	if err != nil {
		r.t.Errorf("body is not a WriteRequest: %v", err)
	}
	r.mu.Lock()
	r.got = append(r.got, received{at: time.Now(), header: req.Header.Clone(), url: req.URL.String(), body: body, request: wr})
	status, extra := http.StatusNoContent, http.Header(nil)
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
		if len(r.headers) > 0 {
			extra, r.headers = r.headers[0], r.headers[1:]
		}
	}
	r.mu.Unlock()
	for k, v := range extra {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

type exporterOption func(*Options)

func withRetry(attempts int, initial time.Duration) exporterOption {
	return func(o *Options) {
		o.Config.Retry = workerconfig.Retry{
			InitialInterval: workerconfig.D(initial), MaxInterval: workerconfig.D(initial * 4), MaxAttempts: attempts,
		}
	}
}

func withQueueSize(n int) exporterOption { return func(o *Options) { o.Config.QueueSize = n } }

func withSigV4(clock time.Time) exporterOption {
	return func(o *Options) {
		o.Config.SigV4 = &workerconfig.SigV4{Region: "eu-west-1"}
		o.Clock = func() time.Time { return clock }
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")
	}
}

func newExporter(t *testing.T, endpoint string, opts ...exporterOption) (*Exporter, *export.Metrics) {
	t.Helper()
	m, err := export.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Config: workerconfig.RemoteWriteExporter{
			Endpoint:       endpoint + "/api/v1/remote_write",
			Timeout:        workerconfig.D(5 * time.Second),
			QueueSize:      100,
			ExternalLabels: map[string]string{"cluster": "test"},
		},
		Metrics: m,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	withRetry(3, 10*time.Millisecond)(&o)
	for _, opt := range opts {
		opt(&o)
	}
	e, err := New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
	})
	return e, m
}

func flush(t *testing.T, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func cumulative(tokens float64, at time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(baseTime))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(tokens)
	dp.Attributes().PutStr("type", "input")
	dp.Attributes().PutStr("model", "claude-sonnet")
	return md
}

func TestSendsRemoteWrite10(t *testing.T) {
	r := newReceiver(t)
	e, m := newExporter(t, r.srv.URL)
	for i := range 3 {
		if err := e.Export(t.Context(), cumulative(float64(100*(i+1)), baseTime.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, e)

	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	h := got[0].header
	for name, want := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"User-Agent":                        "deltapipeline-worker/" + version.Version,
	} {
		if h.Get(name) != want {
			t.Errorf("header %s = %q, want %q", name, h.Get(name), want)
		}
	}
	if got[0].url != "/api/v1/remote_write" {
		t.Errorf("path = %s", got[0].url)
	}
	wantLabels := []Label{
		{"__name__", "claude_code_token_usage_tokens_total"},
		{"cluster", "test"},
		{"job", "claude-code"},
		{"model", "claude-sonnet"},
		{"type", "input"},
	}
	lastTs := int64(0)
	for i, req := range got {
		if len(req.request.Timeseries) != 1 {
			t.Fatalf("request %d has %d series", i, len(req.request.Timeseries))
		}
		ts := req.request.Timeseries[0]
		if !slices.Equal(ts.Labels, wantLabels) {
			t.Errorf("labels = %v\nwant     %v", ts.Labels, wantLabels)
		}
		s := ts.Samples[0]
		if s.Value != float64(100*(i+1)) || s.Timestamp <= lastTs {
			t.Errorf("request %d sample %+v after timestamp %d", i, s, lastTs)
		}
		lastTs = s.Timestamp
	}
	if lastTs != baseTime.Add(2*time.Second).UnixMilli() {
		t.Errorf("last timestamp %d", lastTs)
	}
	if v := testutil.ToFloat64(m.ExportedPoints.WithLabelValues(Name)); v != 3 {
		t.Errorf("exported samples metric = %v, want 3", v)
	}
}

func TestClassicHistogramSeries(t *testing.T) {
	r := newReceiver(t)
	e, _ := newExporter(t, r.srv.URL)
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("request.duration")
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(baseTime))
	dp.ExplicitBounds().FromRaw([]float64{10, 100})
	dp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	dp.SetCount(6)
	dp.SetSum(321)
	if err := e.Export(t.Context(), md); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	got := map[string]float64{}
	for _, ts := range r.requests()[0].request.Timeseries {
		var key []string
		for _, l := range ts.Labels {
			if l.Name != "cluster" {
				key = append(key, l.Name+"="+l.Value)
			}
		}
		got[strings.Join(key, ",")] = ts.Samples[0].Value
	}
	want := map[string]float64{
		"__name__=request_duration_milliseconds_bucket,le=10":   1,
		"__name__=request_duration_milliseconds_bucket,le=100":  3,
		"__name__=request_duration_milliseconds_bucket,le=+Inf": 6,
		"__name__=request_duration_milliseconds_count":          6,
		"__name__=request_duration_milliseconds_sum":            321,
	}
	if !mapsEqual(got, want) {
		t.Errorf("series = %v\nwant %v", got, want)
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSigV4SignsCompressedBody(t *testing.T) {
	r := newReceiver(t)
	signedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e, _ := newExporter(t, r.srv.URL, withSigV4(signedAt))
	if err := e.Export(t.Context(), cumulative(1, baseTime)); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	req := r.requests()[0]
	sum := sha256.Sum256(req.body)
	if got := req.header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("X-Amz-Content-Sha256 = %s, want the SHA-256 of the compressed body", got)
	}
	if got := req.header.Get("X-Amz-Date"); got != "20260102T030405Z" {
		t.Errorf("X-Amz-Date = %s", got)
	}
	auth := req.header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/aps/aws4_request, SignedHeaders=") {
		t.Fatalf("Authorization = %s", auth)
	}

	// Recompute the signature independently from what arrived.
	check, _ := http.NewRequest(http.MethodPost, r.srv.URL+req.url, strings.NewReader(string(req.body)))
	for k, v := range req.header {
		if k != "Authorization" && k != "Accept-Encoding" { // Accept-Encoding is added by the Go transport after signing
			check.Header[k] = v
		}
	}
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, check, hex.EncodeToString(sum[:]), "aps", "eu-west-1", signedAt); err != nil {
		t.Fatal(err)
	}
	if check.Header.Get("Authorization") != auth {
		t.Errorf("signature does not verify:\n got  %s\n want %s", auth, check.Header.Get("Authorization"))
	}
}

func TestRetriesServerErrors(t *testing.T) {
	r := newReceiver(t, http.StatusInternalServerError, http.StatusServiceUnavailable)
	e, m := newExporter(t, r.srv.URL)
	if err := e.Export(t.Context(), cumulative(5, baseTime)); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	if n := len(r.requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if v := testutil.ToFloat64(m.Retries.WithLabelValues(Name)); v != 2 {
		t.Errorf("retries metric = %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.ExportedPoints.WithLabelValues(Name)); v != 1 {
		t.Errorf("exported = %v, want 1", v)
	}
}

func TestClientErrorIsNotRetriedAndCounted(t *testing.T) {
	r := newReceiver(t, http.StatusBadRequest)
	e, m := newExporter(t, r.srv.URL)
	if err := e.Export(t.Context(), cumulative(5, baseTime)); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropClientError)); v != 1 {
		t.Errorf("dropped client_error = %v, want 1", v)
	}
}

func TestRateLimitHonoursRetryAfterAndIsBounded(t *testing.T) {
	r := newReceiver(t, http.StatusTooManyRequests, http.StatusTooManyRequests)
	r.headers = []http.Header{{"Retry-After": {"1"}}, {"Retry-After": {"1"}}}
	e, m := newExporter(t, r.srv.URL, withRetry(2, time.Millisecond))
	if err := e.Export(t.Context(), cumulative(5, baseTime)); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	got := r.requests()
	if len(got) != 2 {
		t.Fatalf("%d attempts, want retry.maxAttempts = 2", len(got))
	}
	if gap := got[1].at.Sub(got[0].at); gap < time.Second {
		t.Errorf("retried after %v, before Retry-After: 1", gap)
	}
	if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropRateLimited)); v != 1 {
		t.Errorf("dropped rate_limited = %v, want 1", v)
	}
}

func TestSingleAttemptMeansNoRetry(t *testing.T) {
	r := newReceiver(t, http.StatusServiceUnavailable)
	e, m := newExporter(t, r.srv.URL, withRetry(1, time.Millisecond))
	if err := e.Export(t.Context(), cumulative(5, baseTime)); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropServerError)); v != 1 {
		t.Errorf("dropped server_error = %v, want 1", v)
	}
}

func TestFullQueueDropsOldest(t *testing.T) {
	r := newReceiver(t)
	r.block = make(chan struct{})
	e, m := newExporter(t, r.srv.URL, withQueueSize(1))
	// The first request is taken by the sender and blocks in the receiver;
	// the second waits in the queue and is displaced by the third.
	if err := e.Export(t.Context(), cumulative(1, baseTime)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.QueueLength.WithLabelValues(Name)) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 2; i <= 3; i++ {
		if err := e.Export(t.Context(), cumulative(float64(i), baseTime.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	close(r.block)
	flush(t, e)
	var values []float64
	for _, req := range r.requests() {
		values = append(values, req.request.Timeseries[0].Samples[0].Value)
	}
	if !slices.Equal(values, []float64{1, 3}) {
		t.Errorf("delivered values %v, want [1 3]", values)
	}
	if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropQueueFull)); v != 1 {
		t.Errorf("dropped queue_full = %v, want 1", v)
	}
}
