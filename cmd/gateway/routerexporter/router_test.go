package routerexporter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// recordingWorker is a real OTLP/gRPC server that records every request.
type recordingWorker struct {
	pmetricotlp.UnimplementedGRPCServer
	addr string
	srv  *grpc.Server

	mu       sync.Mutex
	received []pmetric.Metrics
	points   int
	// failFirst answers that many calls Unavailable before accepting.
	failFirst int
	calls     int
}

func (w *recordingWorker) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.calls <= w.failFirst {
		return pmetricotlp.NewExportResponse(), status.Error(codes.Unavailable, "starting")
	}
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	w.received = append(w.received, md)
	w.points += md.DataPointCount()
	return pmetricotlp.NewExportResponse(), nil
}

func (w *recordingWorker) receivedPoints() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.points
}

func startWorkers(t *testing.T, n int) []*recordingWorker {
	t.Helper()
	out := make([]*recordingWorker, n)
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		w := &recordingWorker{addr: l.Addr().String(), srv: grpc.NewServer()}
		pmetricotlp.RegisterGRPCServer(w.srv, w)
		go func() { _ = w.srv.Serve(l) }()
		t.Cleanup(w.srv.Stop)
		out[i] = w
	}
	return out
}

func membershipOf(epoch uint64, workers []*recordingWorker) ring.Membership {
	m := ring.Membership{Epoch: epoch}
	for i, w := range workers {
		m.Members = append(m.Members, ring.Member{Name: fmt.Sprintf("worker-%d", i), Endpoint: w.addr})
	}
	return m
}

func writeMembership(t *testing.T, path string, m ring.Membership) {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// started is a router created by the factory, as the collector creates it,
// with access to its routing table.
type started struct {
	exp    exporter.Metrics
	router *router
}

func startRouter(t *testing.T, cfg *Config) started {
	t.Helper()
	set := exportertest.NewNopSettings(NewFactory().Type())
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
	return started{exp: exp, router: r}
}

func fileConfig(t *testing.T, key ring.KeyKind, attrs ...string) (*Config, string) {
	cfg := createDefaultConfig()
	cfg.RoutingKey = string(key)
	cfg.RoutingAttributes = attrs
	cfg.Membership.File = filepath.Join(t.TempDir(), "membership.json")
	cfg.Membership.PollInterval = 20 * time.Millisecond
	cfg.Retry.InitialInterval = 10 * time.Millisecond
	cfg.Retry.MaxInterval = 50 * time.Millisecond
	cfg.DrainTimeout = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, cfg.Membership.File
}

// randomMetrics is a request with every kind of point, several resources
// and scopes, and attributes drawn from small sets so streams repeat.
func randomMetrics(rng *rand.Rand, points int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for points > 0 {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "claude-code")
		rm.Resource().Attributes().PutStr("host.arch", []string{"arm64", "amd64"}[rng.IntN(2)])
		if rng.IntN(3) == 0 {
			rm.Resource().Attributes().PutStr("session.id", fmt.Sprintf("r%d", rng.IntN(5)))
		}
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName("com.anthropic.claude_code")
		sm.Scope().SetVersion(fmt.Sprintf("2.%d", rng.IntN(2)))
		for range 1 + rng.IntN(4) {
			m := sm.Metrics().AppendEmpty()
			m.SetName(fmt.Sprintf("metric_%d", rng.IntN(6)))
			n := 1 + rng.IntN(20)
			points -= n
			attrs := func(a pcommon.Map) {
				a.PutStr("session.id", fmt.Sprintf("s%d", rng.IntN(40)))
				a.PutStr("model", []string{"opus", "sonnet", "haiku"}[rng.IntN(3)])
				a.PutInt("n", int64(rng.IntN(3)))
			}
			switch rng.IntN(5) {
			case 0, 1:
				s := m.SetEmptySum()
				s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
				s.SetIsMonotonic(true)
				for range n {
					dp := s.DataPoints().AppendEmpty()
					attrs(dp.Attributes())
					dp.SetDoubleValue(float64(rng.IntN(100)))
				}
			case 2:
				g := m.SetEmptyGauge()
				for range n {
					dp := g.DataPoints().AppendEmpty()
					attrs(dp.Attributes())
					dp.SetIntValue(int64(rng.IntN(100)))
				}
			case 3:
				h := m.SetEmptyHistogram()
				h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
				for range n {
					dp := h.DataPoints().AppendEmpty()
					attrs(dp.Attributes())
					dp.SetCount(uint64(rng.IntN(10)))
					dp.BucketCounts().FromRaw([]uint64{1, 2, 3})
					dp.ExplicitBounds().FromRaw([]float64{1, 10})
				}
			case 4:
				e := m.SetEmptyExponentialHistogram()
				e.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
				for range n {
					dp := e.DataPoints().AppendEmpty()
					attrs(dp.Attributes())
					dp.SetScale(3)
					dp.Positive().BucketCounts().FromRaw([]uint64{4, 5})
				}
			}
		}
	}
	return md
}

// streams lists every point of md as "resource|scope|metric|attributes|value",
// sorted, so two requests can be compared point for point.
func pointsOf(md pmetric.Metrics) []string {
	var out []string
	forEachPoint(md, func(rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, m pmetric.Metric, attrs pcommon.Map, value string) {
		out = append(out, fmt.Sprintf("%v|%s@%s|%s/%s|%v|%s", rm.Resource().Attributes().AsRaw(), sm.Scope().Name(),
			sm.Scope().Version(), m.Name(), m.Type(), attrs.AsRaw(), value))
	})
	slices.Sort(out)
	return out
}

func forEachPoint(md pmetric.Metrics, f func(pmetric.ResourceMetrics, pmetric.ScopeMetrics, pmetric.Metric, pcommon.Map, string)) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		for j := range rm.ScopeMetrics().Len() {
			sm := rm.ScopeMetrics().At(j)
			for k := range sm.Metrics().Len() {
				m := sm.Metrics().At(k)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for p := range m.Sum().DataPoints().Len() {
						dp := m.Sum().DataPoints().At(p)
						f(rm, sm, m, dp.Attributes(), fmt.Sprint(dp.DoubleValue(), m.Sum().IsMonotonic(), m.Sum().AggregationTemporality()))
					}
				case pmetric.MetricTypeGauge:
					for p := range m.Gauge().DataPoints().Len() {
						dp := m.Gauge().DataPoints().At(p)
						f(rm, sm, m, dp.Attributes(), fmt.Sprint(dp.IntValue()))
					}
				case pmetric.MetricTypeHistogram:
					for p := range m.Histogram().DataPoints().Len() {
						dp := m.Histogram().DataPoints().At(p)
						f(rm, sm, m, dp.Attributes(), fmt.Sprint(dp.Count(), dp.BucketCounts().AsRaw()))
					}
				case pmetric.MetricTypeExponentialHistogram:
					for p := range m.ExponentialHistogram().DataPoints().Len() {
						dp := m.ExponentialHistogram().DataPoints().At(p)
						f(rm, sm, m, dp.Attributes(), fmt.Sprint(dp.Scale(), dp.Positive().BucketCounts().AsRaw()))
					}
				}
			}
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func epochOf(r *router) uint64 {
	if t := r.table.Load(); t != nil {
		return t.membership.Epoch
	}
	return 0
}

// The gateway's routing and the workers' ownership are the same function:
// every point a worker receives is one ring.Membership.Owner gives it, for
// every routing key, and no point is lost, duplicated or altered by the split.
func TestEveryPointReachesTheWorkerTheRingNames(t *testing.T) {
	for _, tc := range []struct {
		key   ring.KeyKind
		attrs []string
	}{
		{ring.KeyStreamID, nil},
		{ring.KeyAttributes, []string{"session.id"}},
		{ring.KeyAttributes, []string{"model", "n"}},
		{ring.KeyResource, nil},
		{ring.KeyService, nil},
	} {
		t.Run(fmt.Sprintf("%s%v", tc.key, tc.attrs), func(t *testing.T) {
			workers := startWorkers(t, 3)
			cfg, path := fileConfig(t, tc.key, tc.attrs...)
			m := membershipOf(1, workers)
			writeMembership(t, path, m)
			s := startRouter(t, cfg)
			waitFor(t, 5*time.Second, "membership loaded", func() bool { return epochOf(s.router) == 1 })

			rng := rand.New(rand.NewPCG(1, uint64(len(tc.key))))
			var sent []string
			total := 0
			for range 20 {
				md := randomMetrics(rng, 200)
				sent = append(sent, pointsOf(md)...)
				total += md.DataPointCount()
				if err := s.exp.ConsumeMetrics(context.Background(), md); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "every point delivered", func() bool {
				n := 0
				for _, w := range workers {
					n += w.receivedPoints()
				}
				return n >= total
			})

			keyer, err := ring.NewKeyer(tc.key, tc.attrs)
			if err != nil {
				t.Fatal(err)
			}
			var received []string
			busy := 0
			for ordinal, w := range workers {
				w.mu.Lock()
				if w.points > 0 {
					busy++
				}
				for _, md := range w.received {
					received = append(received, pointsOf(md)...)
					forEachPoint(md, func(rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, metric pmetric.Metric, attrs pcommon.Map, _ string) {
						k := keyer.Point(keyer.Metric(keyer.Scope(keyer.Resource(rm.Resource()), sm.Scope()), metric), attrs)
						if owner := m.Owner(k); owner != ordinal {
							t.Errorf("worker %d received a point the ring gives to worker %d", ordinal, owner)
						}
					})
				}
				w.mu.Unlock()
			}
			slices.Sort(sent)
			slices.Sort(received)
			if !slices.Equal(sent, received) {
				t.Fatalf("workers received %d points, %d were sent, or they differ", len(received), len(sent))
			}
			if tc.key == ring.KeyStreamID && busy != len(workers) {
				t.Errorf("streamID routing used %d of %d workers", busy, len(workers))
			}
		})
	}
}

// A new membership reaches a running router within a bound, without a
// restart, and from then on points follow it; a stale epoch is ignored.
func TestRouterFollowsMembershipChanges(t *testing.T) {
	workers := startWorkers(t, 4)
	cfg, path := fileConfig(t, ring.KeyStreamID)
	writeMembership(t, path, membershipOf(1, workers[:2]))
	s := startRouter(t, cfg)
	waitFor(t, 5*time.Second, "epoch 1", func() bool { return epochOf(s.router) == 1 })

	changed := time.Now()
	writeMembership(t, path, membershipOf(2, workers))
	waitFor(t, 10*cfg.Membership.PollInterval, "epoch 2 seen within ten polls", func() bool { return epochOf(s.router) == 2 })
	t.Logf("membership change seen after %s", time.Since(changed))

	writeMembership(t, path, membershipOf(1, workers[:1]))
	time.Sleep(5 * cfg.Membership.PollInterval)
	if e := epochOf(s.router); e != 2 {
		t.Fatalf("a stale membership replaced epoch 2: now %d", e)
	}

	rng := rand.New(rand.NewPCG(7, 7))
	md := randomMetrics(rng, 2000)
	total := md.DataPointCount()
	if err := s.exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery", func() bool {
		n := 0
		for _, w := range workers {
			n += w.receivedPoints()
		}
		return n == total
	})
	for i, w := range workers {
		if w.receivedPoints() == 0 {
			t.Errorf("worker %d, a member since epoch 2, received nothing", i)
		}
	}
}

// A worker that refuses with a retryable error gets the same points again,
// in order, and nothing is counted twice at the others.
func TestRetriesOnlyThePartAWorkerRefused(t *testing.T) {
	workers := startWorkers(t, 2)
	workers[1].failFirst = 3
	cfg, path := fileConfig(t, ring.KeyStreamID)
	writeMembership(t, path, membershipOf(1, workers))
	s := startRouter(t, cfg)
	waitFor(t, 5*time.Second, "epoch 1", func() bool { return epochOf(s.router) == 1 })

	md := randomMetrics(rand.New(rand.NewPCG(3, 3)), 500)
	want := pointsOf(md)
	if err := s.exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery after retries", func() bool {
		return workers[0].receivedPoints()+workers[1].receivedPoints() == len(want)
	})
	if workers[0].calls != 1 {
		t.Errorf("the healthy worker got %d calls, want 1", workers[0].calls)
	}
	if workers[1].calls != 4 {
		t.Errorf("the refusing worker got %d calls, want 3 refused and 1 accepted", workers[1].calls)
	}
}

// Without a membership, and with a full queue, a request is refused as a
// whole with a retryable error rather than accepted and lost.
func TestRefusesWholeRequestsItCannotQueue(t *testing.T) {
	cfg, path := fileConfig(t, ring.KeyStreamID)
	s := startRouter(t, cfg)
	md := randomMetrics(rand.New(rand.NewPCG(5, 5)), 50)
	if err := s.exp.ConsumeMetrics(context.Background(), md); err == nil {
		t.Fatal("accepted a request before any membership")
	}

	// A worker that never answers: its queue fills.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	writeMembership(t, path, ring.Membership{Epoch: 1, Members: []ring.Member{{Name: "stuck", Endpoint: l.Addr().String()}}})
	waitFor(t, 5*time.Second, "epoch 1", func() bool { return epochOf(s.router) == 1 })
	var refused error
	for i := 0; i <= cfg.Queue.Size+1 && refused == nil; i++ {
		refused = s.exp.ConsumeMetrics(context.Background(), randomMetrics(rand.New(rand.NewPCG(uint64(i), 1)), 5))
	}
	if refused == nil {
		t.Fatalf("a queue of %d requests never refused", cfg.Queue.Size)
	}
	t.Logf("refused with: %v", refused)
}

func BenchmarkSplit(b *testing.B) {
	keyer, err := ring.NewKeyer(ring.KeyStreamID, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := ring.Membership{Epoch: 1, Members: []ring.Member{{Name: "a", Endpoint: "a"}, {Name: "b", Endpoint: "b"}, {Name: "c", Endpoint: "c"}}}
	rng := rand.New(rand.NewPCG(1, 2))
	src := randomMetrics(rng, 1000)
	// Requests are decoded from the wire, as the receiver hands them over;
	// the decoding is timed too and BenchmarkDecode gives its share.
	raw, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(src)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoded", func(b *testing.B) {
		sp := newSplitter(keyer)
		b.ReportAllocs()
		for b.Loop() {
			md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(raw)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range sp.split(md, m) {
				p.buf.recycle()
			}
		}
		b.ReportMetric(float64(src.DataPointCount()), "points/op")
	})
	// What the router did before: a pmetric.Metrics per worker, marshaled
	// as the OTLP client does.
	b.Run("pdata", func(b *testing.B) {
		sp := newPdataSplitter(keyer)
		b.ReportAllocs()
		for b.Loop() {
			md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(raw)
			if err != nil {
				b.Fatal(err)
			}
			parts, _ := sp.split(md, m)
			for _, p := range parts {
				if p != (pmetric.Metrics{}) {
					if _, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(p); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.ReportMetric(float64(src.DataPointCount()), "points/op")
	})
}

func BenchmarkDecode(b *testing.B) {
	raw, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(randomMetrics(rand.New(rand.NewPCG(1, 2)), 1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(raw); err != nil {
			b.Fatal(err)
		}
	}
}
