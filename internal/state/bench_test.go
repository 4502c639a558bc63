package state_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// sessionsRequest holds one token counter point for each of n sessions.
func sessionsRequest(first, n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	rm.Resource().Attributes().PutStr("os.type", "linux")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	start := pcommon.NewTimestampFromTime(epoch)
	end := pcommon.NewTimestampFromTime(epoch.Add(time.Minute))
	for i := first; i < first+n; i++ {
		pt := sum.DataPoints().AppendEmpty()
		pt.Attributes().PutStr("session.id", fmt.Sprintf("%08x-6f1c-4b1e-9d3a-%012x", i, i*7919))
		pt.Attributes().PutStr("user.account_uuid", fmt.Sprintf("acct-%06d", i%5000))
		pt.Attributes().PutStr("model", "claude-sonnet-4-5")
		pt.Attributes().PutStr("type", "input")
		pt.SetStartTimestamp(start)
		pt.SetTimestamp(end)
		pt.SetDoubleValue(float64(i%1000) + 0.5)
	}
	return md
}

// BenchmarkCheckpoint1M takes checkpoints of an engine holding one million
// streams while the store is live: rotation, wait, snapshot, atomic write,
// segment removal.
func BenchmarkCheckpoint1M(b *testing.B) {
	const streams, perRequest = 1_000_000, 10_000
	c := &clock{now: epoch.Add(time.Minute)}
	engine, err := convert.NewEngine(convert.Config{MaxStreams: streams, MaxStale: time.Hour, LateDataWindow: workerconfig.GatewayRetryBudget, Clock: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	for first := 0; first < streams; first += perRequest {
		if res := engine.Apply(sessionsRequest(first, perRequest)); res.Applied != perRequest {
			b.Fatalf("applied %d of %d points: %s", res.Applied, perRequest, res.Message())
		}
	}
	s, err := state.Open(state.Options{Directory: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background(), nil)
	if _, err := s.Restore(context.Background(), engine, func(md pmetric.Metrics) { engine.Apply(md) }); err != nil {
		b.Fatal(err)
	}
	var report state.CheckpointReport
	b.ResetTimer()
	for b.Loop() {
		if report, err = s.Checkpoint(context.Background(), engine); err != nil {
			b.Fatal(err)
		}
	}
	if report.Streams != streams {
		b.Fatalf("checkpoint holds %d streams, want %d", report.Streams, streams)
	}
	b.ReportMetric(float64(report.Bytes), "bytes/checkpoint")
	b.ReportMetric(float64(report.Bytes)/float64(report.Streams), "bytes/stream")
}

// BenchmarkRecord journals a typical Claude Code export (16 delta points)
// from many concurrent requests, as the receivers do.
func BenchmarkRecord(b *testing.B) { benchRecord(b, false) }

// BenchmarkRecordEncoded journals the request as the bytes it arrived in,
// as the worker does for OTLP/gRPC and OTLP/HTTP protobuf requests.
func BenchmarkRecordEncoded(b *testing.B) { benchRecord(b, true) }

func benchRecord(b *testing.B, asReceived bool) {
	s, err := state.Open(state.Options{Directory: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background(), nil)
	sink := newEngine(b, &clock{now: epoch})
	if _, err := s.Restore(context.Background(), sink, func(pmetric.Metrics) {}); err != nil {
		b.Fatal(err)
	}
	md := claudeCodeRequest("s-1", 1)
	for range 3 {
		claudeCodeRequest("s-2", 1).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	}
	var encoded []byte
	if asReceived {
		var marshal pmetric.ProtoMarshaler
		if encoded, err = marshal.MarshalMetrics(md); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := s.RecordEncoded(context.Background(), md, encoded)
			if err != nil {
				b.Error(err)
				return
			}
			done()
		}
	})
}
