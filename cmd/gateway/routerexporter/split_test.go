package routerexporter

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/xpdata/entity"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

var splitKeys = []struct {
	key   ring.KeyKind
	attrs []string
}{
	{ring.KeyStreamID, nil},
	{ring.KeyAttributes, []string{"session.id"}},
	{ring.KeyAttributes, []string{"model", "n"}},
	{ring.KeyResource, nil},
	{ring.KeyService, nil},
}

func membershipOfSize(n int) ring.Membership {
	m := ring.Membership{Epoch: 1}
	for i := range n {
		m.Members = append(m.Members, ring.Member{Name: fmt.Sprintf("w%d", i), Endpoint: fmt.Sprintf("w%d:4317", i)})
	}
	return m
}

// compareWithOracle splits md both ways, the encoded split and the pdata
// split it replaced, and fails unless each worker's bytes decode to exactly
// the oracle's request for that worker, with the same point count. same
// compares two decoded requests.
func compareWithOracle(t *testing.T, keyer *ring.Keyer, m ring.Membership, md pmetric.Metrics, same func(got, want pmetric.Metrics) (string, string)) {
	t.Helper()
	oracleIn := pmetric.NewMetrics()
	md.CopyTo(oracleIn)
	wantParts, wantPoints := newPdataSplitter(keyer).split(oracleIn, m)
	parts := newSplitter(keyer).split(md, m)
	if len(parts) != len(wantParts) {
		t.Fatalf("%d parts, the oracle made %d", len(parts), len(wantParts))
	}
	for o, p := range parts {
		if p.points != wantPoints[o] {
			t.Fatalf("worker %d: %d points counted, the oracle routed %d", o, p.points, wantPoints[o])
		}
		if wantPoints[o] == 0 {
			continue
		}
		got, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(p.buf.b)
		if err != nil {
			t.Fatalf("worker %d: the encoded request does not decode: %v", o, err)
		}
		if got.DataPointCount() != p.points {
			t.Fatalf("worker %d: %d points decoded, %d counted", o, got.DataPointCount(), p.points)
		}
		if g, w := same(got, wantParts[o]); g != w {
			t.Fatalf("worker %d: the encoded request differs from the oracle's\n got: %.2000s\nwant: %.2000s", o, g, w)
		}
		p.buf.recycle()
	}
}

// sameProto compares two requests by their pdata encoding: equal exactly
// when every field pdata holds is equal.
func sameProto(got, want pmetric.Metrics) (string, string) {
	g, err1 := (&pmetric.ProtoMarshaler{}).MarshalMetrics(got)
	w, err2 := (&pmetric.ProtoMarshaler{}).MarshalMetrics(want)
	if err1 != nil || err2 != nil {
		return fmt.Sprint(err1), fmt.Sprint(err2)
	}
	if bytes.Equal(g, w) {
		return "", ""
	}
	return dumpMetrics(got), dumpMetrics(want)
}

// sameDump compares two requests by every field the public pdata API
// shows; used for arbitrary decoded input, which may carry the profiles
// signal's string-table references that pdata keeps but does not expose
// (and so cannot be forwarded).
func sameDump(got, want pmetric.Metrics) (string, string) { return dumpMetrics(got), dumpMetrics(want) }

// Every point goes to the worker the pdata split gave it, with every field,
// header and resource it had, for every routing key and ring size.
func TestEncodedSplitMatchesThePdataSplit(t *testing.T) {
	for _, tc := range splitKeys {
		t.Run(fmt.Sprintf("%s%v", tc.key, tc.attrs), func(t *testing.T) {
			keyer, err := ring.NewKeyer(tc.key, tc.attrs)
			if err != nil {
				t.Fatal(err)
			}
			for seed := range uint64(200) {
				rng := rand.New(rand.NewPCG(seed, uint64(len(tc.attrs))))
				md := richMetrics(rng, 1+rng.IntN(300))
				compareWithOracle(t, keyer, membershipOfSize(1+rng.IntN(7)), md, sameProto)
			}
		})
	}
}

// Any request the receiver can decode is split as the pdata split does.
// The input's first byte picks the ring size and the routing key, the rest
// is the request; the seeds are small requests, so that each execution is
// cheap and the engine explores.
func FuzzEncodedSplit(f *testing.F) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, seed))
		raw, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(richMetrics(rng, 4))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(seed * 37)}, raw...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(in[1:])
		if err != nil {
			return
		}
		tc := splitKeys[int(in[0]>>4)%len(splitKeys)]
		keyer, err := ring.NewKeyer(tc.key, tc.attrs)
		if err != nil {
			t.Fatal(err)
		}
		compareWithOracle(t, keyer, membershipOfSize(1+int(in[0]&0x0f)%9), md, sameDump)
	})
}

// richMetrics is a request using every field of the metrics data model.
func richMetrics(rng *rand.Rand, points int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	str := func(prefix string, n int) string { return fmt.Sprintf("%s%d", prefix, rng.IntN(n)) }
	maybe := func() bool { return rng.IntN(2) == 0 }
	var value func(v pcommon.Value, depth int)
	value = func(v pcommon.Value, depth int) {
		switch k := rng.IntN(8); {
		case k == 0:
			v.SetBool(maybe())
		case k == 1:
			v.SetInt(rng.Int64() - math.MaxInt64/2)
		case k == 2:
			v.SetDouble([]float64{0, -1.5, math.Inf(1), rng.Float64()}[rng.IntN(4)])
		case k == 3:
			v.SetEmptyBytes().FromRaw([]byte(str("b", 5)))
		case k == 4 && depth < 2:
			s := v.SetEmptySlice()
			for range rng.IntN(3) {
				value(s.AppendEmpty(), depth+1)
			}
		case k == 5 && depth < 2:
			m := v.SetEmptyMap()
			for i := range rng.IntN(3) {
				value(m.PutEmpty(fmt.Sprintf("k%d", i)), depth+1)
			}
		case k == 6:
			// an empty value
		default:
			v.SetStr(strings.Repeat(str("v", 9), 1+rng.IntN(3)))
		}
	}
	attrs := func(a pcommon.Map, extra int) {
		if maybe() {
			a.PutStr("session.id", str("s", 30))
		}
		if maybe() {
			a.PutStr("model", []string{"opus", "sonnet", ""}[rng.IntN(3)])
		}
		if maybe() {
			a.PutInt("n", int64(rng.IntN(3)))
		}
		for i := range extra {
			value(a.PutEmpty(fmt.Sprintf("x%d", i)), 0)
		}
	}
	exemplars := func(es pmetric.ExemplarSlice) {
		for range rng.IntN(3) {
			e := es.AppendEmpty()
			attrs(e.FilteredAttributes(), rng.IntN(2))
			e.SetTimestamp(pcommon.Timestamp(rng.Uint64()))
			if maybe() {
				e.SetDoubleValue(rng.Float64())
			} else {
				e.SetIntValue(-rng.Int64())
			}
			if maybe() {
				e.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(rng.IntN(255))})
				e.SetTraceID(pcommon.TraceID{9, 8, 7, 6, 5, 4, 3, 2, 1, byte(rng.IntN(255))})
			}
		}
	}
	times := func(start, now func(pcommon.Timestamp)) {
		if maybe() {
			start(pcommon.Timestamp(rng.Uint64()))
		}
		now(pcommon.Timestamp(rng.Uint64()))
	}
	for points > 0 {
		rm := md.ResourceMetrics().AppendEmpty()
		if maybe() {
			rm.Resource().Attributes().PutStr("service.name", str("svc", 3))
		}
		attrs(rm.Resource().Attributes(), rng.IntN(3))
		rm.Resource().SetDroppedAttributesCount(uint32(rng.IntN(2)))
		if rng.IntN(4) == 0 {
			ref := entity.ResourceEntityRefs(rm.Resource()).AppendEmpty()
			ref.SetType("host")
			ref.SetSchemaUrl("https://example.com/s")
			ref.IdKeys().FromRaw([]string{"host.id"})
			ref.DescriptionKeys().FromRaw([]string{"host.name", "host.arch"})
		}
		if maybe() {
			rm.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		}
		if rng.IntN(8) == 0 {
			continue // a resource without scopes
		}
		for range 1 + rng.IntN(3) {
			sm := rm.ScopeMetrics().AppendEmpty()
			sm.Scope().SetName(str("scope", 3))
			if maybe() {
				sm.Scope().SetVersion(str("1.", 3))
			}
			attrs(sm.Scope().Attributes(), rng.IntN(2))
			sm.Scope().SetDroppedAttributesCount(uint32(rng.IntN(2)))
			if maybe() {
				sm.SetSchemaUrl("https://opentelemetry.io/schemas/1.27.0")
			}
			for range rng.IntN(5) {
				m := sm.Metrics().AppendEmpty()
				m.SetName(str("metric_", 6))
				if maybe() {
					m.SetDescription("what it counts")
					m.SetUnit("{tokens}")
				}
				if rng.IntN(4) == 0 {
					m.Metadata().PutStr("meta", str("m", 3))
				}
				n := rng.IntN(25)
				points -= max(n, 1)
				switch rng.IntN(7) {
				case 0, 1:
					s := m.SetEmptySum()
					s.SetAggregationTemporality(pmetric.AggregationTemporality(rng.IntN(3)))
					s.SetIsMonotonic(maybe())
					for range n {
						dp := s.DataPoints().AppendEmpty()
						attrs(dp.Attributes(), rng.IntN(2))
						times(dp.SetStartTimestamp, dp.SetTimestamp)
						if maybe() {
							dp.SetDoubleValue([]float64{0, rng.Float64() * 100, math.NaN()}[rng.IntN(3)])
						} else if maybe() {
							dp.SetIntValue(int64(rng.IntN(100)) - 50)
						}
						exemplars(dp.Exemplars())
						dp.SetFlags(pmetric.DataPointFlags(rng.IntN(2)))
					}
				case 2:
					g := m.SetEmptyGauge()
					for range n {
						dp := g.DataPoints().AppendEmpty()
						attrs(dp.Attributes(), 0)
						times(dp.SetStartTimestamp, dp.SetTimestamp)
						dp.SetIntValue(int64(rng.IntN(100)))
					}
				case 3:
					h := m.SetEmptyHistogram()
					h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
					for range n {
						dp := h.DataPoints().AppendEmpty()
						attrs(dp.Attributes(), rng.IntN(2))
						times(dp.SetStartTimestamp, dp.SetTimestamp)
						dp.SetCount(uint64(rng.IntN(10)))
						if maybe() {
							dp.SetSum(float64(rng.IntN(3)))
						}
						if maybe() {
							dp.SetMin(0)
							dp.SetMax(rng.Float64())
						}
						k := rng.IntN(17)
						counts := make([]uint64, k)
						for i := range counts {
							counts[i] = uint64(rng.IntN(1000))
						}
						dp.BucketCounts().FromRaw(counts)
						if k > 0 {
							bounds := make([]float64, k-1)
							for i := range bounds {
								bounds[i] = float64(i) * 1.5
							}
							dp.ExplicitBounds().FromRaw(bounds)
						}
						exemplars(dp.Exemplars())
						dp.SetFlags(pmetric.DataPointFlags(rng.IntN(2)))
					}
				case 4:
					e := m.SetEmptyExponentialHistogram()
					e.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
					for range n {
						dp := e.DataPoints().AppendEmpty()
						attrs(dp.Attributes(), 0)
						times(dp.SetStartTimestamp, dp.SetTimestamp)
						dp.SetCount(uint64(rng.IntN(100)))
						dp.SetScale(int32(rng.IntN(20)) - 10)
						dp.SetZeroCount(uint64(rng.IntN(3)))
						dp.SetZeroThreshold([]float64{0, 1e-9}[rng.IntN(2)])
						if maybe() {
							dp.SetSum(rng.Float64())
							dp.SetMin(-1)
							dp.SetMax(0)
						}
						dp.Positive().SetOffset(int32(rng.IntN(9)) - 4)
						dp.Positive().BucketCounts().FromRaw([]uint64{uint64(rng.IntN(300)), 1 << 40, 0})
						if maybe() {
							dp.Negative().SetOffset(-3)
							dp.Negative().BucketCounts().FromRaw([]uint64{5})
						}
						exemplars(dp.Exemplars())
						dp.SetFlags(pmetric.DataPointFlags(rng.IntN(2)))
					}
				case 5:
					s := m.SetEmptySummary()
					for range n {
						dp := s.DataPoints().AppendEmpty()
						attrs(dp.Attributes(), 0)
						times(dp.SetStartTimestamp, dp.SetTimestamp)
						dp.SetCount(uint64(rng.IntN(100)))
						dp.SetSum(rng.Float64())
						for _, q := range []float64{0, 0.5, 1}[:rng.IntN(4)] {
							qv := dp.QuantileValues().AppendEmpty()
							qv.SetQuantile(q)
							qv.SetValue(float64(rng.IntN(3)))
						}
						dp.SetFlags(pmetric.DataPointFlags(rng.IntN(2)))
					}
				default:
					// a metric without data
				}
			}
		}
	}
	return md
}

// dumpMetrics prints every field of md the public pdata API shows, in order.
func dumpMetrics(md pmetric.Metrics) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	var val func(v pcommon.Value) string
	attrs := func(m pcommon.Map) string {
		var s []string
		for k, v := range m.All() {
			s = append(s, k+"="+val(v))
		}
		return "{" + strings.Join(s, ",") + "}"
	}
	val = func(v pcommon.Value) string {
		switch v.Type() {
		case pcommon.ValueTypeMap:
			return attrs(v.Map())
		case pcommon.ValueTypeSlice:
			var s []string
			for _, e := range v.Slice().All() {
				s = append(s, val(e))
			}
			return "[" + strings.Join(s, ",") + "]"
		case pcommon.ValueTypeDouble:
			return fmt.Sprintf("d%x", math.Float64bits(v.Double()))
		default:
			return fmt.Sprintf("%s:%q", v.Type(), v.AsString())
		}
	}
	ex := func(es pmetric.ExemplarSlice) {
		for _, e := range es.All() {
			p(" ex(%s %d %v %d %x %s %s)", attrs(e.FilteredAttributes()), e.Timestamp(), e.ValueType(), e.IntValue(),
				math.Float64bits(e.DoubleValue()), e.SpanID(), e.TraceID())
		}
	}
	for _, rm := range md.ResourceMetrics().All() {
		r := rm.Resource()
		p("R %s %d %q", attrs(r.Attributes()), r.DroppedAttributesCount(), rm.SchemaUrl())
		for _, ref := range entity.ResourceEntityRefs(r).All() {
			p(" ref(%q %q %v %v)", ref.SchemaUrl(), ref.Type(), ref.IdKeys().AsRaw(), ref.DescriptionKeys().AsRaw())
		}
		p("\n")
		for _, sm := range rm.ScopeMetrics().All() {
			s := sm.Scope()
			p(" S %q %q %s %d %q\n", s.Name(), s.Version(), attrs(s.Attributes()), s.DroppedAttributesCount(), sm.SchemaUrl())
			for _, m := range sm.Metrics().All() {
				p("  M %q %q %q %s %v", m.Name(), m.Description(), m.Unit(), attrs(m.Metadata()), m.Type())
				switch m.Type() {
				case pmetric.MetricTypeSum:
					p(" %v %v\n", m.Sum().AggregationTemporality(), m.Sum().IsMonotonic())
					for _, dp := range m.Sum().DataPoints().All() {
						p("   N %s %d %d %v %d %x %d", attrs(dp.Attributes()), dp.StartTimestamp(), dp.Timestamp(), dp.ValueType(),
							dp.IntValue(), math.Float64bits(dp.DoubleValue()), dp.Flags())
						ex(dp.Exemplars())
						p("\n")
					}
				case pmetric.MetricTypeGauge:
					p("\n")
					for _, dp := range m.Gauge().DataPoints().All() {
						p("   N %s %d %d %v %d %x %d", attrs(dp.Attributes()), dp.StartTimestamp(), dp.Timestamp(), dp.ValueType(),
							dp.IntValue(), math.Float64bits(dp.DoubleValue()), dp.Flags())
						ex(dp.Exemplars())
						p("\n")
					}
				case pmetric.MetricTypeHistogram:
					p(" %v\n", m.Histogram().AggregationTemporality())
					for _, dp := range m.Histogram().DataPoints().All() {
						p("   H %s %d %d %d %v/%x %v/%x %v/%x %v %v %d", attrs(dp.Attributes()), dp.StartTimestamp(), dp.Timestamp(), dp.Count(),
							dp.HasSum(), math.Float64bits(dp.Sum()), dp.HasMin(), math.Float64bits(dp.Min()), dp.HasMax(), math.Float64bits(dp.Max()),
							dp.BucketCounts().AsRaw(), dp.ExplicitBounds().AsRaw(), dp.Flags())
						ex(dp.Exemplars())
						p("\n")
					}
				case pmetric.MetricTypeExponentialHistogram:
					p(" %v\n", m.ExponentialHistogram().AggregationTemporality())
					for _, dp := range m.ExponentialHistogram().DataPoints().All() {
						p("   E %s %d %d %d %v/%x %v/%x %v/%x %d %d %x %d%v %d%v %d", attrs(dp.Attributes()), dp.StartTimestamp(), dp.Timestamp(),
							dp.Count(), dp.HasSum(), math.Float64bits(dp.Sum()), dp.HasMin(), math.Float64bits(dp.Min()), dp.HasMax(),
							math.Float64bits(dp.Max()), dp.Scale(), dp.ZeroCount(), math.Float64bits(dp.ZeroThreshold()),
							dp.Positive().Offset(), dp.Positive().BucketCounts().AsRaw(), dp.Negative().Offset(), dp.Negative().BucketCounts().AsRaw(), dp.Flags())
						ex(dp.Exemplars())
						p("\n")
					}
				case pmetric.MetricTypeSummary:
					p("\n")
					for _, dp := range m.Summary().DataPoints().All() {
						p("   Q %s %d %d %d %x %d", attrs(dp.Attributes()), dp.StartTimestamp(), dp.Timestamp(), dp.Count(), math.Float64bits(dp.Sum()), dp.Flags())
						for _, q := range dp.QuantileValues().All() {
							p(" %x:%x", math.Float64bits(q.Quantile()), math.Float64bits(q.Value()))
						}
						p("\n")
					}
				default:
					p("\n")
				}
			}
		}
	}
	return b.String()
}

// The encoded requests travel like any OTLP client's: compressed when
// configured, with the worker token, and a worker decodes them to the
// points routed to it.
func TestEncodedRequestsCarryCompressionAndToken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var encodings, tokens []string
	w := &recordingWorker{addr: l.Addr().String()}
	w.srv = grpc.NewServer(grpc.StatsHandler(compressionSeen{func(c string) {
		mu.Lock()
		encodings = append(encodings, c)
		mu.Unlock()
	}}), grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		tokens = append(tokens, md.Get("authorization")...)
		mu.Unlock()
		return h(ctx, req)
	}))
	pmetricotlp.RegisterGRPCServer(w.srv, w)
	go func() { _ = w.srv.Serve(l) }()
	t.Cleanup(w.srv.Stop)

	cfg, path := fileConfig(t, ring.KeyStreamID)
	cfg.Compression = compressionGzip
	cfg.BearerTokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(cfg.BearerTokenFile, []byte("secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeMembership(t, path, membershipOf(1, []*recordingWorker{w}))
	s := startRouter(t, cfg)
	waitFor(t, 5*time.Second, "epoch 1", func() bool { return epochOf(s.router) == 1 })

	md := richMetrics(rand.New(rand.NewPCG(11, 11)), 400)
	want, total := pointsOf(md), md.DataPointCount()
	if err := s.exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery", func() bool { return w.receivedPoints() == total })
	w.mu.Lock()
	var got []string
	for _, r := range w.received {
		got = append(got, pointsOf(r)...)
	}
	w.mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the worker decoded %d points of sums, gauges and histograms, %d were sent, or they differ", len(got), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(encodings) == 0 || encodings[0] != "gzip" {
		t.Errorf("requests arrived with compression %q, want gzip", encodings)
	}
	if len(tokens) == 0 || tokens[0] != "Bearer secret-token" {
		t.Errorf("requests arrived with authorization %v, want the file's token", tokens)
	}
}

// compressionSeen reports the compression of every request a server
// receives, which gRPC keeps out of the request's metadata.
type compressionSeen struct{ seen func(string) }

func (c compressionSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c compressionSeen) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		c.seen(h.Compression)
	}
}
func (c compressionSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c compressionSeen) HandleConn(context.Context, stats.ConnStats) {}

// partialWorker accepts every request and reports some of its points
// rejected, as a worker does for points it refuses.
type partialWorker struct {
	pmetricotlp.UnimplementedGRPCServer
	rejected int64
}

func (w *partialWorker) Export(context.Context, pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	resp := pmetricotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedDataPoints(w.rejected)
	resp.PartialSuccess().SetErrorMessage("too old")
	return resp, nil
}

// The worker's response is decoded: points it rejected in a partial
// success are counted as dropped, the rest as sent.
func TestPartialSuccessIsCounted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(srv, &partialWorker{rejected: 3})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	cfg, path := fileConfig(t, ring.KeyStreamID)
	writeMembership(t, path, ring.Membership{Epoch: 1, Members: []ring.Member{{Name: "w0", Endpoint: l.Addr().String()}}})
	reader := sdkmetric.NewManualReader()
	set := exportertest.NewNopSettings(NewFactory().Type())
	set.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	r, err := newRouter(cfg, set.Logger)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := newExporter(context.Background(), set, cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	waitFor(t, 5*time.Second, "epoch 1", func() bool { return epochOf(r) == 1 })

	md := randomMetrics(rand.New(rand.NewPCG(4, 4)), 100)
	total := md.DataPointCount()
	if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	counter := func(name string) int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
					for _, dp := range sum.DataPoints {
						n += dp.Value
					}
				}
			}
		}
		return n
	}
	waitFor(t, 5*time.Second, "the request answered", func() bool { return counter(metricSent) > 0 })
	if sent, dropped := counter(metricSent), counter(metricDropped); sent != int64(total-3) || dropped != 3 {
		t.Fatalf("sent %d and dropped %d of %d points, want %d and 3", sent, dropped, total, total-3)
	}
}
