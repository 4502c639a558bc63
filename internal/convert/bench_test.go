package convert

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Claude Code-like streams: per session, token usage by type and model.
var (
	tokenTypes = []string{"input", "output", "cacheRead", "cacheCreation"}
	models     = []string{"claude-opus-4", "claude-sonnet-4"}
)

const streamsPerSession = 8 // len(tokenTypes) * len(models)

func sessionID(n int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", n, n%0xffff, n%0xfff, (n*7)%0xfff, n*2654435761)
}

// claudeCodeBatch builds one request with a delta point for streams
// [first, first+count) for interval round.
func claudeCodeBatch(first, count, round int, kind pmetric.MetricType) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "claude-code")
	res.PutStr("service.version", "2.0.14")
	res.PutStr("os.type", "darwin")
	res.PutStr("host.arch", "arm64")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	sm.Scope().SetVersion("2.0.14")
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	start := pcommon.Timestamp(epoch.Add(time.Duration(round) * time.Minute).UnixNano())
	end := start + pcommon.Timestamp(time.Minute)
	fill := func(attrs pcommon.Map, n int) {
		session := n / streamsPerSession
		attrs.EnsureCapacity(6)
		attrs.PutStr("session.id", sessionID(session))
		attrs.PutStr("user.account_uuid", sessionID(session/4+1<<30))
		attrs.PutStr("organization.id", sessionID(session%16+1<<31))
		attrs.PutStr("terminal.type", "iTerm.app")
		attrs.PutStr("type", tokenTypes[n%len(tokenTypes)])
		attrs.PutStr("model", models[(n/len(tokenTypes))%len(models)])
	}
	switch kind {
	case pmetric.MetricTypeSum:
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dps := s.DataPoints()
		dps.EnsureCapacity(count)
		for n := first; n < first+count; n++ {
			dp := dps.AppendEmpty()
			fill(dp.Attributes(), n)
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(end)
			dp.SetIntValue(int64(100 + n%50))
		}
	case pmetric.MetricTypeHistogram:
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		for n := first; n < first+count; n++ {
			dp := h.DataPoints().AppendEmpty()
			fill(dp.Attributes(), n)
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(end)
			dp.ExplicitBounds().FromRaw([]float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000})
			dp.BucketCounts().FromRaw([]uint64{0, 1, 0, 2, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 1})
			dp.SetCount(8)
			dp.SetSum(12345)
			dp.SetMin(3)
			dp.SetMax(20000)
		}
	case pmetric.MetricTypeExponentialHistogram:
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		for n := first; n < first+count; n++ {
			dp := h.DataPoints().AppendEmpty()
			fill(dp.Attributes(), n)
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(end)
			dp.SetScale(4)
			dp.Positive().SetOffset(int32(40 + round%8))
			dp.Positive().BucketCounts().FromRaw([]uint64{1, 0, 2, 0, 0, 1, 3, 1})
			dp.SetZeroCount(1)
			dp.SetCount(9)
			dp.SetSum(900)
			dp.SetMin(0)
			dp.SetMax(300)
		}
	}
	return md
}

// benchmarkApply measures Apply on streams the engine already holds, the
// steady state of a worker: every op is one request of batch points.
func benchmarkApply(b *testing.B, kind pmetric.MetricType) {
	const streams, batch = 10_000, 1_000
	e := newTestEngine(b)
	for first := 0; first < streams; first += batch {
		e.Apply(claudeCodeBatch(first, batch, 0, kind))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var mallocs uint64
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		md := claudeCodeBatch((i*batch)%streams, batch, 1+i/(streams/batch), kind)
		runtime.ReadMemStats(&before)
		b.StartTimer()
		res := e.Apply(md)
		b.StopTimer()
		runtime.ReadMemStats(&after)
		mallocs += after.Mallocs - before.Mallocs
		if res.Applied != batch {
			b.Fatalf("applied %d of %d: %s", res.Applied, batch, res.Message())
		}
		b.StartTimer()
	}
	b.StopTimer()
	perPoint := float64(b.Elapsed().Nanoseconds()) / float64(b.N*batch)
	b.ReportMetric(perPoint, "ns/point")
	b.ReportMetric(1e9/perPoint, "points/s")
	b.ReportMetric(float64(mallocs)/float64(b.N*batch), "allocs/point")
}

func BenchmarkApplySum(b *testing.B)       { benchmarkApply(b, pmetric.MetricTypeSum) }
func BenchmarkApplyHistogram(b *testing.B) { benchmarkApply(b, pmetric.MetricTypeHistogram) }
func BenchmarkApplyExpHistogram(b *testing.B) {
	benchmarkApply(b, pmetric.MetricTypeExponentialHistogram)
}

// benchmarkIngest measures what the worker does with one received request
// of streams it holds: decoding it into pdata and applying it, or reading
// the points from the bytes in place (ReadEncoded, ApplyHeld).
func benchmarkIngest(b *testing.B, kind pmetric.MetricType, inPlace bool) {
	const streams, batch = 10_000, 1_000
	e := newTestEngine(b)
	var marshaler pmetric.ProtoMarshaler
	var unmarshaler pmetric.ProtoUnmarshaler
	requests := make([][]byte, 0, streams/batch)
	for first := 0; first < streams; first += batch {
		e.Apply(claudeCodeBatch(first, batch, 0, kind))
		encoded, err := marshaler.MarshalMetrics(claudeCodeBatch(first, batch, 0, kind))
		if err != nil {
			b.Fatal(err)
		}
		requests = append(requests, encoded)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		encoded := requests[i%len(requests)]
		// A new interval of every stream of the request each round.
		shiftEncodedTimes(encoded, uint64(time.Minute))
		b.StartTimer()
		var res Result
		if inPlace {
			r, ok := ReadEncoded(encoded)
			if !ok {
				b.Fatal("ReadEncoded declined")
			}
			var rest []byte
			if res, rest = e.ApplyHeld(r); rest != nil {
				b.Fatal("points left for the pdata path")
			}
			r.Release()
		} else {
			md, err := unmarshaler.UnmarshalMetrics(encoded)
			if err != nil {
				b.Fatal(err)
			}
			res = e.Apply(md)
		}
		if res.Applied != batch {
			b.Fatalf("applied %d of %d: %s", res.Applied, batch, res.Message())
		}
	}
	b.StopTimer()
	perPoint := float64(b.Elapsed().Nanoseconds()) / float64(b.N*batch)
	b.ReportMetric(perPoint, "ns/point")
	b.ReportMetric(1e9/perPoint, "points/s")
}

func BenchmarkIngestDecodedSum(b *testing.B) { benchmarkIngest(b, pmetric.MetricTypeSum, false) }
func BenchmarkIngestInPlaceSum(b *testing.B) { benchmarkIngest(b, pmetric.MetricTypeSum, true) }
func BenchmarkIngestDecodedHistogram(b *testing.B) {
	benchmarkIngest(b, pmetric.MetricTypeHistogram, false)
}
func BenchmarkIngestInPlaceHistogram(b *testing.B) {
	benchmarkIngest(b, pmetric.MetricTypeHistogram, true)
}

// BenchmarkApplyNewStreams measures the cost of creating streams.
func BenchmarkApplyNewStreams(b *testing.B) {
	const batch = 1_000
	e := newTestEngine(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		md := claudeCodeBatch(i*batch, batch, 0, pmetric.MetricTypeSum)
		b.StartTimer()
		e.Apply(md)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/point")
}

// BenchmarkEmit measures one Emit of 10,000 updated sum streams.
func BenchmarkEmit(b *testing.B) {
	const streams = 10_000
	e := newTestEngine(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for first := 0; first < streams; first += 1000 {
			e.Apply(claudeCodeBatch(first, 1000, i, pmetric.MetricTypeSum))
		}
		out := pmetric.NewMetrics()
		b.StartTimer()
		if r := e.Emit(epoch, out); r.Points != streams {
			b.Fatalf("emitted %d points", r.Points)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*streams), "ns/point")
}

const millionStreams = 1_000_000

func fillMillion(b *testing.B, e *Engine) {
	fillStreams(b, e, millionStreams, func(first, count int) pmetric.Metrics {
		return claudeCodeBatch(first, count, 0, pmetric.MetricTypeSum)
	})
}

// fillStreams creates streams [0, n) through batches of build.
func fillStreams(b *testing.B, e *Engine, n int, build func(first, count int) pmetric.Metrics) {
	const batch = 10_000
	for first := 0; first < n; first += batch {
		count := min(batch, n-first)
		if res := e.Apply(build(first, count)); res.Applied != count {
			b.Fatalf("applied %d of %d: %s", res.Applied, count, res.Message())
		}
	}
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkMemoryPerStream reports the heap held per stream at one million
// Claude Code-like sum streams (125,000 sessions of 8 streams each).
func BenchmarkMemoryPerStream(b *testing.B) {
	benchmarkMemoryPerStream(b, millionStreams, func(first, count int) pmetric.Metrics {
		return claudeCodeBatch(first, count, 0, pmetric.MetricTypeSum)
	})
}

// BenchmarkMemoryPerHistogramStream is BenchmarkMemoryPerStream for explicit
// bucket histograms of 16 buckets, the shape of Claude Code's and most SDKs'
// duration histograms.
func BenchmarkMemoryPerHistogramStream(b *testing.B) {
	benchmarkMemoryPerStream(b, millionStreams, func(first, count int) pmetric.Metrics {
		return claudeCodeBatch(first, count, 0, pmetric.MetricTypeHistogram)
	})
}

// wideExpHistogramBuckets is the OpenTelemetry SDKs' default maximum size of
// an exponential histogram, the most buckets a stream of one usually holds.
const wideExpHistogramBuckets = 160

// expHistogramMemoryStreams is fewer than a million: every stream holds ten
// times the state of a sum stream, and the per-stream figure is flat well
// below a million.
const expHistogramMemoryStreams = 250_000

// BenchmarkMemoryPerExpHistogramStream is BenchmarkMemoryPerStream for
// exponential histograms whose positive range is filled to 160 buckets.
func BenchmarkMemoryPerExpHistogramStream(b *testing.B) {
	counts := make([]uint64, wideExpHistogramBuckets)
	for i := range counts {
		counts[i] = uint64(1 + i%7)
	}
	benchmarkMemoryPerStream(b, expHistogramMemoryStreams, func(first, count int) pmetric.Metrics {
		md := claudeCodeBatch(first, count, 0, pmetric.MetricTypeExponentialHistogram)
		dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).ExponentialHistogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			dp := dps.At(i)
			dp.Positive().BucketCounts().FromRaw(counts)
			var total uint64
			for _, c := range counts {
				total += c
			}
			dp.SetCount(total + dp.ZeroCount())
		}
		return md
	})
}

func benchmarkMemoryPerStream(b *testing.B, streams int, build func(first, count int) pmetric.Metrics) {
	for i := 0; i < b.N; i++ {
		before := heapInuse()
		e := newTestEngine(b)
		fillStreams(b, e, streams, build)
		after := heapInuse()
		if e.Streams() != streams {
			b.Fatalf("%d streams", e.Streams())
		}
		b.ReportMetric(float64(after-before)/float64(streams), "B/stream")
		runtime.KeepAlive(e)
	}
}

// BenchmarkMarshalStreams encodes a checkpoint of one million streams.
func BenchmarkMarshalStreams(b *testing.B) {
	e := newTestEngine(b)
	fillMillion(b, e)
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for i := 0; i < b.N; i++ {
		size = 0
		if err := e.MarshalStreams(func(r []byte) error { size += len(r); return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(size), "B/checkpoint")
	b.ReportMetric(float64(size)/millionStreams, "B/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*millionStreams), "ns/stream")
}
