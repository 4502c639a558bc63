package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/deltapipeline/deltapipeline/internal/otlpraw"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// discardSink is an in-process OTLP/gRPC destination that decodes and drops.
type discardSink struct {
	pmetricotlp.UnimplementedGRPCServer
	points atomic.Int64
}

func (s *discardSink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.points.Add(int64(req.Metrics().DataPointCount()))
	return pmetricotlp.NewExportResponse(), nil
}

func startDiscardSink(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	pmetricotlp.RegisterGRPCServer(srv, &discardSink{})
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(srv.Stop)
	return ln.Addr().String()
}

const (
	benchStartPlaceholder uint64 = 0x0badc0ffee0ddf00
	benchEndPlaceholder   uint64 = 0x0badc0ffee0ddf01
)

// benchRequest is a pre-encoded request whose timestamps are rewritten in
// place per round, so that the sender spends no time encoding.
type benchRequest struct {
	body         []byte
	starts, ends []int
}

func (r *benchRequest) setRound(base int64, round int) {
	start := uint64(base + int64(round)*int64(time.Millisecond))
	for _, off := range r.starts {
		binary.LittleEndian.PutUint64(r.body[off:], start)
	}
	for _, off := range r.ends {
		binary.LittleEndian.PutUint64(r.body[off:], start+uint64(time.Millisecond))
	}
}

func offsetsOf(body []byte, v uint64) []int {
	var needle [8]byte
	binary.LittleEndian.PutUint64(needle[:], v)
	var out []int
	for from := 0; ; {
		i := bytes.Index(body[from:], needle[:])
		if i < 0 {
			return out
		}
		out = append(out, from+i)
		from += i + 8
	}
}

// benchBatch is points streams from first on: half delta sums, half delta
// histograms, with Claude Code's attributes.
func benchBatch(b *testing.B, first, points int) *benchRequest {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	attrs := func(m pcommon.Map, n int) {
		m.PutStr("session.id", fmt.Sprintf("session-%08d", n/8))
		m.PutStr("type", []string{"input", "output", "cacheRead", "cacheCreation"}[n%4])
		m.PutStr("model", []string{"claude-opus-4", "claude-sonnet-4"}[(n/4)%2])
	}
	sum := sm.Metrics().AppendEmpty()
	sum.SetName("claude_code.token.usage")
	sum.SetUnit("tokens")
	s := sum.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	hist := sm.Metrics().AppendEmpty()
	hist.SetName("claude_code.api_request.duration")
	hist.SetUnit("ms")
	h := hist.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for n := first; n < first+points; n++ {
		if n%2 == 0 {
			dp := s.DataPoints().AppendEmpty()
			attrs(dp.Attributes(), n)
			dp.SetStartTimestamp(pcommon.Timestamp(benchStartPlaceholder))
			dp.SetTimestamp(pcommon.Timestamp(benchEndPlaceholder))
			dp.SetIntValue(int64(n % 100))
			continue
		}
		dp := h.DataPoints().AppendEmpty()
		attrs(dp.Attributes(), n)
		dp.SetStartTimestamp(pcommon.Timestamp(benchStartPlaceholder))
		dp.SetTimestamp(pcommon.Timestamp(benchEndPlaceholder))
		dp.ExplicitBounds().FromRaw([]float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000})
		dp.BucketCounts().FromRaw([]uint64{0, 1, 0, 2, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 1})
		dp.SetCount(8)
		dp.SetSum(12345)
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	r := &benchRequest{body: body, starts: offsetsOf(body, benchStartPlaceholder), ends: offsetsOf(body, benchEndPlaceholder)}
	if len(r.starts) != points || len(r.ends) != points {
		b.Fatalf("found %d/%d timestamps in %d points", len(r.starts), len(r.ends), points)
	}
	return r
}

// BenchmarkIngestOTLPGRPC measures the whole ingest path of a running
// worker: OTLP/gRPC over loopback, decoding, conversion, and the periodic
// OTLP export of cumulative values to an in-process sink. One op is one
// request of 1,000 points over 100,000 streams; 8 senders on 4 connections.
func BenchmarkIngestOTLPGRPC(b *testing.B) { benchIngest(b, "") }

// BenchmarkIngestOTLPGRPCDurable is BenchmarkIngestOTLPGRPC with state on
// local disk, as the operator deploys the worker: every request is
// journaled and made durable before it is answered.
func BenchmarkIngestOTLPGRPCDurable(b *testing.B) { benchIngest(b, b.TempDir()) }

func benchIngest(b *testing.B, stateDirectory string) {
	const streams, points, connections, senders = 100_000, 1000, 4, 8
	sink := startDiscardSink(b)
	cfg := workerconfig.Config{
		Receivers: workerconfig.Receivers{OTLP: workerconfig.OTLPReceiver{
			GRPC: workerconfig.GRPCServer{Endpoint: "127.0.0.1:0"},
			HTTP: workerconfig.HTTPServer{Endpoint: "127.0.0.1:0"},
		}},
		Conversion: workerconfig.Conversion{Interval: workerconfig.D(time.Second), MaxStreams: 2 * streams},
		Exporters: workerconfig.Exporters{OTLP: &workerconfig.OTLPExporter{
			Endpoint: sink, Insecure: true, Compression: "none",
		}},
		Telemetry: workerconfig.Telemetry{Endpoint: "127.0.0.1:0"},
		State:     workerconfig.State{Directory: stateDirectory},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	w, err := New(b.Context(), cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	for ready, _ := w.readiness.State(); !ready; ready, _ = w.readiness.State() {
		time.Sleep(5 * time.Millisecond)
	}

	codec := otlpraw.CallOption()
	conns := make([]*grpc.ClientConn, connections)
	for i := range conns {
		if conns[i], err = grpc.NewClient(w.GRPCAddr().String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(codec)); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	owned := make([][]*benchRequest, senders)
	for i := 0; i*points < streams; i++ {
		owned[i%senders] = append(owned[i%senders], benchBatch(b, i*points, points))
	}
	base := time.Now().UnixNano()
	send := func(s, round int, r *benchRequest) {
		r.setRound(base, round)
		if _, err := otlpraw.Export(ctx, conns[s%connections], r.body); err != nil {
			b.Error(err)
		}
	}
	// Create every stream before measuring.
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for _, r := range owned[s] {
				send(s, 0, r)
			}
		})
	}
	wg.Wait()

	var next atomic.Int64
	b.ResetTimer()
	for s := range senders {
		wg.Go(func() {
			for i, round := 0, 1; next.Add(1) <= int64(b.N); i++ {
				if i == len(owned[s]) {
					i, round = 0, round+1
				}
				send(s, round, owned[s][i])
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*points)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*points), "ns/point")
}
