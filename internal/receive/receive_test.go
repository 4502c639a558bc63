package receive

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/deltapipeline/deltapipeline/internal/telemetry/telemetrytest"
)

type fixture struct {
	servers  *Servers
	registry *prometheus.Registry
	received atomic.Int64
	grpcURL  string
	httpURL  string
}

type option func(*Options)

func withConsumer(c Consumer) option { return func(o *Options) { o.Consumer = c } }
func withMaxInFlight(n int) option   { return func(o *Options) { o.MaxInFlight = n } }
func withLimits(grpcMsg, body int) option {
	return func(o *Options) { o.MaxRecvMsgSize, o.MaxRequestBody = grpcMsg, int64(body) }
}

func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	f := &fixture{registry: prometheus.NewRegistry()}
	o := Options{
		GRPCEndpoint:   "127.0.0.1:0",
		HTTPEndpoint:   "127.0.0.1:0",
		MaxRecvMsgSize: 1 << 20,
		MaxRequestBody: 1 << 20,
		MaxInFlight:    8,
		Consumer: ConsumerFunc(func(_ context.Context, md pmetric.Metrics) (Outcome, error) {
			f.received.Add(int64(md.DataPointCount()))
			return Outcome{}, nil
		}),
		Registerer: f.registry,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	f.servers = s
	f.grpcURL = s.GRPCAddr().String()
	f.httpURL = "http://" + s.HTTPAddr().String() + "/v1/metrics"
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return f
}

func sampleMetrics(points int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range points {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetIntValue(int64(i + 1))
		dp.Attributes().PutInt("i", int64(i))
	}
	return md
}

func (f *fixture) grpcClient(t *testing.T) (pmetricotlp.GRPCClient, *grpc.ClientConn) {
	t.Helper()
	conn, err := grpc.NewClient(f.grpcURL, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pmetricotlp.NewGRPCClient(conn), conn
}

func TestGRPCAcceptsAndReportsPartialSuccess(t *testing.T) {
	f := newFixture(t, withConsumer(ConsumerFunc(func(_ context.Context, md pmetric.Metrics) (Outcome, error) {
		return Outcome{RejectedPoints: 2, Message: "2 points refused: stream_limit=2"}, nil
	})))
	client, _ := f.grpcClient(t)
	resp, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(5)))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.PartialSuccess().RejectedDataPoints(); got != 2 {
		t.Errorf("rejected_data_points = %d, want 2", got)
	}
	if got := resp.PartialSuccess().ErrorMessage(); got != "2 points refused: stream_limit=2" {
		t.Errorf("error_message = %q", got)
	}
}

func TestGRPCGzipRequestIsDecoded(t *testing.T) {
	f := newFixture(t)
	client, _ := f.grpcClient(t)
	_, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(3)), grpc.UseCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.received.Load(); got != 3 {
		t.Errorf("consumer saw %d points, want 3", got)
	}
}

func TestGRPCMalformedPayloadIsInvalidArgument(t *testing.T) {
	f := newFixture(t)
	_, conn := f.grpcClient(t)
	in := rawMessage([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}) // field 1 with a length far beyond the message
	var out rawMessage
	err := conn.Invoke(t.Context(), "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", &in, &out,
		grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
	}
	if !strings.Contains(status.Convert(err).Message(), "decoding OTLP") {
		t.Errorf("message %q does not say what failed", status.Convert(err).Message())
	}
}

// A consumer may keep a request after answering it (passthrough data queued
// for export), while the receive buffer it was decoded from is reused for
// the next requests: what it kept must not change.
func TestGRPCKeptRequestSurvivesLaterRequests(t *testing.T) {
	var kept []pmetric.Metrics
	var mu sync.Mutex
	f := newFixture(t, withConsumer(ConsumerFunc(func(_ context.Context, md pmetric.Metrics) (Outcome, error) {
		mu.Lock()
		defer mu.Unlock()
		kept = append(kept, md)
		return Outcome{}, nil
	})))
	client, _ := f.grpcClient(t)
	const requests = 20
	for r := range requests {
		md := sampleMetrics(50)
		md.ResourceMetrics().At(0).Resource().Attributes().PutStr("request", strings.Repeat(string(rune('a'+r)), 64))
		if _, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kept) != requests {
		t.Fatalf("consumer kept %d requests, want %d", len(kept), requests)
	}
	for r, md := range kept {
		want := sampleMetrics(50)
		want.ResourceMetrics().At(0).Resource().Attributes().PutStr("request", strings.Repeat(string(rune('a'+r)), 64))
		var m pmetric.ProtoMarshaler
		wantBytes, err := m.MarshalMetrics(want)
		if err != nil {
			t.Fatal(err)
		}
		gotBytes, err := m.MarshalMetrics(md)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wantBytes, gotBytes) {
			t.Errorf("request %d changed after later requests", r)
		}
	}
}

func TestGRPCOversizeIsResourceExhausted(t *testing.T) {
	f := newFixture(t, withLimits(512, 1<<20))
	client, _ := f.grpcClient(t)
	_, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(200)))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code = %v (%v), want ResourceExhausted", status.Code(err), err)
	}
	if f.received.Load() != 0 {
		t.Error("oversize request reached the consumer")
	}
}

func TestGRPCConsumerFailureIsRetryableWithRetryInfo(t *testing.T) {
	f := newFixture(t, withConsumer(ConsumerFunc(func(context.Context, pmetric.Metrics) (Outcome, error) {
		return Outcome{}, Unavailable("not_ready", 3*time.Second, errors.New("restoring state"))
	})))
	client, _ := f.grpcClient(t)
	_, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(1)))
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("code = %v, want Unavailable", st.Code())
	}
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != 3*time.Second {
		t.Errorf("RetryInfo delay = %v, want 3s", delay)
	}
}

// answer is what a test reads of an HTTP response once its body is read.
type answer struct {
	StatusCode int
	Header     http.Header
}

func post(t *testing.T, url, contentType, contentEncoding string, body []byte) (answer, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{StatusCode: resp.StatusCode, Header: resp.Header}, out
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHTTPAcceptsProtobufJSONAndGzip(t *testing.T) {
	f := newFixture(t)
	req := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(2))
	pb, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	js, err := req.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, contentType, encoding string
		body                        []byte
	}{
		{"protobuf", "application/x-protobuf", "", pb},
		{"json", "application/json", "", js},
		{"protobuf gzip", "application/x-protobuf", "gzip", gzipped(t, pb)},
		{"json gzip with charset", "application/json; charset=utf-8", "gzip", gzipped(t, js)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.received.Load()
			resp, body := post(t, f.httpURL, tc.contentType, tc.encoding, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := f.received.Load() - before; got != 2 {
				t.Errorf("consumer saw %d points, want 2", got)
			}
			er := pmetricotlp.NewExportResponse()
			if strings.HasPrefix(tc.contentType, "application/json") {
				err = er.UnmarshalJSON(body)
			} else {
				err = er.UnmarshalProto(body)
			}
			if err != nil {
				t.Errorf("response is not an ExportMetricsServiceResponse in the request's encoding: %v", err)
			}
		})
	}
}

func TestHTTPPartialSuccessInJSON(t *testing.T) {
	f := newFixture(t, withConsumer(ConsumerFunc(func(context.Context, pmetric.Metrics) (Outcome, error) {
		return Outcome{RejectedPoints: 1, Message: "1 point refused: invalid=1"}, nil
	})))
	js, _ := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(1)).MarshalJSON()
	resp, body := post(t, f.httpURL, "application/json", "", js)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	er := pmetricotlp.NewExportResponse()
	if err := er.UnmarshalJSON(body); err != nil {
		t.Fatal(err)
	}
	if er.PartialSuccess().RejectedDataPoints() != 1 || er.PartialSuccess().ErrorMessage() != "1 point refused: invalid=1" {
		t.Errorf("partial success = %d %q", er.PartialSuccess().RejectedDataPoints(), er.PartialSuccess().ErrorMessage())
	}
}

func decodeStatus(t *testing.T, contentType string, body []byte) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	var err error
	if strings.HasPrefix(contentType, "application/json") {
		err = protojson.Unmarshal(body, st)
	} else {
		err = proto.Unmarshal(body, st)
	}
	if err != nil {
		t.Fatalf("error body is not a google.rpc.Status in %s: %v (%q)", contentType, err, body)
	}
	return st
}

func TestHTTPErrors(t *testing.T) {
	f := newFixture(t, withLimits(1<<20, 256))
	big, _ := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(100)).MarshalProto()
	cases := []struct {
		name, method, contentType, encoding string
		body                                []byte
		wantStatus                          int
		wantMessage                         string
	}{
		{"malformed protobuf", http.MethodPost, "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, 400, "decoding OTLP"},
		{"malformed json", http.MethodPost, "application/json", "", []byte(`{"resourceMetrics": [`), 400, "decoding OTLP"},
		{"broken gzip", http.MethodPost, "application/x-protobuf", "gzip", []byte("not gzip"), 400, "gzip"},
		{"oversize", http.MethodPost, "application/x-protobuf", "", big, 413, "maxRequestBodyMiB"},
		{"oversize after decompression", http.MethodPost, "application/x-protobuf", "gzip", gzipped(t, big), 413, "after decompression"},
		{"unsupported content type", http.MethodPost, "text/plain", "", []byte("x"), 415, "text/plain"},
		{"unsupported content encoding", http.MethodPost, "application/x-protobuf", "br", []byte("x"), 415, `content encoding "br"`},
		{"wrong method", http.MethodGet, "application/x-protobuf", "", nil, 405, "use POST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, f.httpURL, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tc.wantStatus, body)
			}
			st := decodeStatus(t, resp.Header.Get("Content-Type"), body)
			if !strings.Contains(st.GetMessage(), tc.wantMessage) {
				t.Errorf("message %q does not contain %q", st.GetMessage(), tc.wantMessage)
			}
		})
	}
	if f.received.Load() != 0 {
		t.Errorf("%d points of refused requests reached the consumer", f.received.Load())
	}
}

func TestHTTPOverloadIsRetryableWithRetryAfter(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	f := newFixture(t, withMaxInFlight(1), withConsumer(ConsumerFunc(func(context.Context, pmetric.Metrics) (Outcome, error) {
		entered <- struct{}{}
		<-release
		return Outcome{}, nil
	})))
	pb, _ := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(1)).MarshalProto()
	first := make(chan int, 1)
	go func() {
		resp, _ := post(t, f.httpURL, "application/x-protobuf", "", pb)
		first <- resp.StatusCode
	}()
	<-entered
	resp, body := post(t, f.httpURL, "application/x-protobuf", "", pb)
	close(release)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", resp.Header.Get("Retry-After"))
	}
	if st := decodeStatus(t, resp.Header.Get("Content-Type"), body); st.GetCode() != int32(codes.Unavailable) {
		t.Errorf("status code %d, want UNAVAILABLE", st.GetCode())
	}
	if got := <-first; got != http.StatusOK {
		t.Errorf("first request status %d", got)
	}
}

// Both transports count through the one ingest path, under the names the
// documentation lists.
func TestReceiversCountPointsAndRefusals(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int64
	f := newFixture(t, withMaxInFlight(1), withConsumer(ConsumerFunc(func(_ context.Context, md pmetric.Metrics) (Outcome, error) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return Outcome{}, nil
	})))
	client, _ := f.grpcClient(t)
	pb, _ := pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(1)).MarshalProto()
	first := make(chan error, 1)
	go func() {
		_, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(7)))
		first <- err
	}()
	<-entered
	// The one admission slot is taken: both transports refuse as overloaded.
	if _, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(sampleMetrics(1))); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC while overloaded: %v, want Unavailable", err)
	}
	if resp, _ := post(t, f.httpURL, "application/x-protobuf", "", pb); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HTTP while overloaded: status %d, want 503", resp.StatusCode)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	post(t, f.httpURL, "application/x-protobuf", "", pb)
	post(t, f.httpURL, "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	got := telemetrytest.Exposition(t, f.registry)
	for _, want := range []string{
		`deltapipeline_worker_received_points_total{transport="grpc"} 7`,
		`deltapipeline_worker_received_points_total{transport="http"} 1`,
		`deltapipeline_worker_refused_requests_total{reason="overloaded",transport="grpc"} 1`,
		`deltapipeline_worker_refused_requests_total{reason="overloaded",transport="http"} 1`,
		`deltapipeline_worker_refused_requests_total{reason="malformed",transport="http"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("self-metrics lack %q:\n%s", want, got)
		}
	}
}

func TestReceivePoolHandsOutBuffersOfTheLengthAsked(t *testing.T) {
	p := newSizeClassPool()
	for _, n := range []int{0, 1, 255, 256, 257, 4096, 360_000, 64 << 20, 64<<20 + 1} {
		b := p.Get(n)
		if len(*b) != n || cap(*b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*b), cap(*b))
		}
		p.Put(b)
		again := p.Get(n)
		if len(*again) != n {
			t.Fatalf("Get(%d) after Put: len %d", n, len(*again))
		}
	}
	foreign := make([]byte, 1000)
	p.Put(&foreign) // not of a class: dropped, not handed out short
	if b := p.Get(1000); cap(*b) != 1024 {
		t.Fatalf("Get(1000) gave capacity %d, want its class, 1024", cap(*b))
	}
}
