package otlpexport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/export"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// backend is a real OTLP/gRPC server answering with scripted errors.
type backend struct {
	pmetricotlp.UnimplementedGRPCServer
	mu       sync.Mutex
	answers  []error
	points   int
	calls    int
	tenant   []string
	rejected int64
}

func (b *backend) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	md, _ := metadata.FromIncomingContext(ctx)
	b.tenant = md.Get("x-scope-orgid")
	if len(b.answers) > 0 {
		err := b.answers[0]
		b.answers = b.answers[1:]
		if err != nil {
			return pmetricotlp.NewExportResponse(), err
		}
	}
	b.points += req.Metrics().DataPointCount()
	resp := pmetricotlp.NewExportResponse()
	if b.rejected > 0 {
		resp.PartialSuccess().SetRejectedDataPoints(b.rejected)
		resp.PartialSuccess().SetErrorMessage("too old")
	}
	return resp, nil
}

func startBackend(t *testing.T, b *backend) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(srv, b)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func newExporter(t *testing.T, endpoint string, attempts int) (*Exporter, *export.Metrics) {
	m, err := export.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), Options{
		Config: workerconfig.OTLPExporter{
			Endpoint:    endpoint,
			Insecure:    true,
			Compression: "gzip",
			Headers:     []workerconfig.Header{{Name: "X-Scope-OrgID", Value: "team-a"}},
			Timeout:     workerconfig.D(5 * time.Second),
			QueueSize:   10,
			Retry: workerconfig.Retry{
				InitialInterval: workerconfig.D(5 * time.Millisecond),
				MaxInterval:     workerconfig.D(20 * time.Millisecond),
				MaxAttempts:     attempts,
			},
		},
		Metrics: m,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, m
}

func points(n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	s := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := range n {
		s.DataPoints().AppendEmpty().SetIntValue(int64(i))
	}
	return md
}

func exportAndFlush(t *testing.T, e *Exporter, md pmetric.Metrics) {
	t.Helper()
	if err := e.Export(t.Context(), md); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRetriesUnavailableAndSendsHeaders(t *testing.T) {
	b := &backend{answers: []error{status.Error(codes.Unavailable, "busy"), nil}}
	e, m := newExporter(t, startBackend(t, b), 3)
	exportAndFlush(t, e, points(4))
	if b.calls != 2 || b.points != 4 {
		t.Errorf("calls %d points %d, want 2 calls and 4 points", b.calls, b.points)
	}
	if len(b.tenant) != 1 || b.tenant[0] != "team-a" {
		t.Errorf("x-scope-orgid = %v", b.tenant)
	}
	if v := testutil.ToFloat64(m.Retries.WithLabelValues(Name)); v != 1 {
		t.Errorf("retries = %v", v)
	}
}

func TestNonRetryableCodesAreDroppedOnce(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{"invalid argument", status.Error(codes.InvalidArgument, "bad")},
		{"resource exhausted without RetryInfo", status.Error(codes.ResourceExhausted, "quota")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &backend{answers: []error{tc.err}}
			e, m := newExporter(t, startBackend(t, b), 5)
			exportAndFlush(t, e, points(2))
			if b.calls != 1 {
				t.Errorf("calls %d, want 1", b.calls)
			}
			if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropNotRetryable)); v != 2 {
				t.Errorf("dropped not_retryable = %v, want 2", v)
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	b := &backend{answers: []error{unavailable, unavailable, unavailable, unavailable}}
	e, m := newExporter(t, startBackend(t, b), 3)
	exportAndFlush(t, e, points(1))
	if b.calls != 3 {
		t.Errorf("calls %d, want retry.maxAttempts = 3", b.calls)
	}
	if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropRetriesExhausted)); v != 1 {
		t.Errorf("dropped retries_exhausted = %v", v)
	}
}

func TestPartialSuccessIsCounted(t *testing.T) {
	b := &backend{rejected: 1}
	e, m := newExporter(t, startBackend(t, b), 1)
	exportAndFlush(t, e, points(3))
	if v := testutil.ToFloat64(m.DroppedPoints.WithLabelValues(Name, DropPartialSuccess)); v != 1 {
		t.Errorf("dropped rejected_by_backend = %v", v)
	}
	if v := testutil.ToFloat64(m.ExportedPoints.WithLabelValues(Name)); v != 2 {
		t.Errorf("exported = %v, want 2", v)
	}
}
