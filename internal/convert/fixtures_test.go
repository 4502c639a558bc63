package convert

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// epoch is the origin of test timestamps; tests speak in seconds after it.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec float64) pcommon.Timestamp {
	return pcommon.NewTimestampFromTime(epoch.Add(time.Duration(sec * float64(time.Second))))
}

// fakeClock is a settable clock for staleness tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

type engineOption func(*Config)

func withMaxStreams(n int) engineOption         { return func(c *Config) { c.MaxStreams = n } }
func withMaxStale(d time.Duration) engineOption { return func(c *Config) { c.MaxStale = d } }
func withSingleWriter() engineOption            { return func(c *Config) { c.SingleWriter = true } }
func withClock(clock *fakeClock) engineOption   { return func(c *Config) { c.Clock = clock.Now } }

func newTestEngine(t testing.TB, opts ...engineOption) *Engine {
	t.Helper()
	// The window the worker runs with: the gateways' retry budget.
	cfg := Config{LateDataWindow: workerconfig.GatewayRetryBudget}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

// pointSpec describes one data point of a test request.
type pointSpec struct {
	start, end float64
	attrs      [][2]string
	noValue    bool
}

type pointOption func(*pointSpec)

func withAttr(k, v string) pointOption {
	return func(p *pointSpec) { p.attrs = append(p.attrs, [2]string{k, v}) }
}
func withNoRecordedValue() pointOption { return func(p *pointSpec) { p.noValue = true } }

func newPointSpec(start, end float64, opts []pointOption) pointSpec {
	p := pointSpec{start: start, end: end}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func (p pointSpec) fill(attrs pcommon.Map, setTimes func(start, end pcommon.Timestamp), flags func(pmetric.DataPointFlags)) {
	for _, kv := range p.attrs {
		attrs.PutStr(kv[0], kv[1])
	}
	setTimes(at(p.start), at(p.end))
	if p.noValue {
		flags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	}
}

// request builds an OTLP request with one resource and one scope.
type request struct {
	md pmetric.Metrics
	sm pmetric.ScopeMetrics
}

func newRequest() *request {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	rm.Resource().Attributes().PutStr("host.name", "laptop-1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	sm.Scope().SetVersion("1.0.0")
	return &request{md: md, sm: sm}
}

func (r *request) sumMetric(name string, monotonic bool, temporality pmetric.AggregationTemporality) pmetric.Sum {
	m := r.sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetUnit("1")
	s := m.SetEmptySum()
	s.SetIsMonotonic(monotonic)
	s.SetAggregationTemporality(temporality)
	return s
}

// deltaSum adds a monotonic delta sum point.
func (r *request) deltaSum(name string, start, end, value float64, opts ...pointOption) *request {
	return r.addSum(name, true, start, end, value, opts...)
}

func (r *request) addSum(name string, monotonic bool, start, end, value float64, opts ...pointOption) *request {
	dp := r.sumMetric(name, monotonic, pmetric.AggregationTemporalityDelta).DataPoints().AppendEmpty()
	dp.SetDoubleValue(value)
	newPointSpec(start, end, opts).fill(dp.Attributes(), func(s, e pcommon.Timestamp) {
		dp.SetStartTimestamp(s)
		dp.SetTimestamp(e)
	}, dp.SetFlags)
	return r
}

func (r *request) deltaIntSum(name string, start, end float64, value int64, opts ...pointOption) *request {
	dp := r.sumMetric(name, true, pmetric.AggregationTemporalityDelta).DataPoints().AppendEmpty()
	dp.SetIntValue(value)
	newPointSpec(start, end, opts).fill(dp.Attributes(), func(s, e pcommon.Timestamp) {
		dp.SetStartTimestamp(s)
		dp.SetTimestamp(e)
	}, dp.SetFlags)
	return r
}

type histogramSpec struct {
	bounds   []float64
	counts   []uint64
	sum      float64
	min, max float64
}

func (r *request) deltaHistogram(name string, start, end float64, h histogramSpec, opts ...pointOption) *request {
	m := r.sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetUnit("s")
	hist := m.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := hist.DataPoints().AppendEmpty()
	dp.ExplicitBounds().FromRaw(h.bounds)
	dp.BucketCounts().FromRaw(h.counts)
	var count uint64
	for _, c := range h.counts {
		count += c
	}
	dp.SetCount(count)
	dp.SetSum(h.sum)
	dp.SetMin(h.min)
	dp.SetMax(h.max)
	newPointSpec(start, end, opts).fill(dp.Attributes(), func(s, e pcommon.Timestamp) {
		dp.SetStartTimestamp(s)
		dp.SetTimestamp(e)
	}, dp.SetFlags)
	return r
}

type expSpec struct {
	scale         int32
	zeroThreshold float64
	zeroCount     uint64
	posOffset     int32
	pos           []uint64
	negOffset     int32
	neg           []uint64
	sum           float64
	min, max      float64
}

func (r *request) deltaExpHistogram(name string, start, end float64, h expSpec, opts ...pointOption) *request {
	m := r.sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetUnit("s")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := eh.DataPoints().AppendEmpty()
	dp.SetScale(h.scale)
	dp.SetZeroThreshold(h.zeroThreshold)
	dp.SetZeroCount(h.zeroCount)
	dp.Positive().SetOffset(h.posOffset)
	dp.Positive().BucketCounts().FromRaw(h.pos)
	dp.Negative().SetOffset(h.negOffset)
	dp.Negative().BucketCounts().FromRaw(h.neg)
	count := h.zeroCount
	for _, c := range append(append([]uint64(nil), h.pos...), h.neg...) {
		count += c
	}
	dp.SetCount(count)
	dp.SetSum(h.sum)
	dp.SetMin(h.min)
	dp.SetMax(h.max)
	newPointSpec(start, end, opts).fill(dp.Attributes(), func(s, e pcommon.Timestamp) {
		dp.SetStartTimestamp(s)
		dp.SetTimestamp(e)
	}, dp.SetFlags)
	return r
}

// emitted is one cumulative output point, flattened for comparisons.
type emitted struct {
	metric string
	attrs  string
	start  pcommon.Timestamp
	ts     pcommon.Timestamp
	value  float64
	hist   *pmetric.HistogramDataPoint
	exp    *pmetric.ExponentialHistogramDataPoint
}

func attrString(m pcommon.Map) string {
	s := ""
	for _, kv := range sortedAttributes(m) {
		s += kv.key + "=" + kv.value.AsString() + ","
	}
	return s
}

// collect flattens the points of out and checks that every metric is
// cumulative.
func collect(t testing.TB, out pmetric.Metrics) []emitted {
	t.Helper()
	var points []emitted
	for _, rm := range out.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				switch m.Type() {
				case pmetric.MetricTypeSum:
					if m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
						t.Fatalf("metric %s emitted with temporality %s", m.Name(), m.Sum().AggregationTemporality())
					}
					for _, dp := range m.Sum().DataPoints().All() {
						v := dp.DoubleValue()
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							v = float64(dp.IntValue())
						}
						points = append(points, emitted{metric: m.Name(), attrs: attrString(dp.Attributes()), start: dp.StartTimestamp(), ts: dp.Timestamp(), value: v})
					}
				case pmetric.MetricTypeHistogram:
					if m.Histogram().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
						t.Fatalf("metric %s emitted with temporality %s", m.Name(), m.Histogram().AggregationTemporality())
					}
					for _, dp := range m.Histogram().DataPoints().All() {
						points = append(points, emitted{metric: m.Name(), attrs: attrString(dp.Attributes()), start: dp.StartTimestamp(), ts: dp.Timestamp(), hist: &dp})
					}
				case pmetric.MetricTypeExponentialHistogram:
					if m.ExponentialHistogram().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
						t.Fatalf("metric %s emitted with temporality %s", m.Name(), m.ExponentialHistogram().AggregationTemporality())
					}
					for _, dp := range m.ExponentialHistogram().DataPoints().All() {
						points = append(points, emitted{metric: m.Name(), attrs: attrString(dp.Attributes()), start: dp.StartTimestamp(), ts: dp.Timestamp(), exp: &dp})
					}
				default:
					t.Fatalf("unexpected emitted metric type %s", m.Type())
				}
			}
		}
	}
	return points
}

func emitPoints(t testing.TB, e *Engine, now time.Time) []emitted {
	t.Helper()
	out := pmetric.NewMetrics()
	e.Emit(now, out)
	return collect(t, out)
}

// onlyPoint returns the single emitted point or fails.
func onlyPoint(t testing.TB, points []emitted) emitted {
	t.Helper()
	if len(points) != 1 {
		t.Fatalf("got %d emitted points, want 1: %+v", len(points), points)
	}
	return points[0]
}
