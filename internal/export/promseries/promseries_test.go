package promseries

import (
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

func newMetrics(build func(pmetric.MetricSlice)) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	rm.Resource().Attributes().PutStr("service.namespace", "dev")
	rm.Resource().Attributes().PutStr("service.instance.id", "laptop-1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	sm.Scope().SetVersion("1.0.0")
	build(sm.Metrics())
	return md
}

func cumulativeSum(ms pmetric.MetricSlice, name, unit string, value float64) pmetric.NumberDataPoint {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := s.DataPoints().AppendEmpty()
	dp.SetDoubleValue(value)
	dp.SetTimestamp(1_700_000_000_123_456_789)
	return dp
}

func collect(t *testing.T, md pmetric.Metrics) ([]Point, map[string]int) {
	t.Helper()
	var out []Point
	dropped := NewTranslator(map[string]string{"cluster": "eu-1"}).Translate(md, func(p *Point) {
		c := *p
		c.Labels = slices.Clone(p.Labels)
		c.Buckets = slices.Clone(p.Buckets)
		c.Native.Positive.Counts = slices.Clone(p.Native.Positive.Counts)
		c.Native.Negative.Counts = slices.Clone(p.Native.Negative.Counts)
		out = append(out, c)
	})
	return out, dropped
}

func TestClaudeCodeMetricNames(t *testing.T) {
	cases := []struct{ name, unit, want string }{
		{"claude_code.token.usage", "tokens", "claude_code_token_usage_tokens_total"},
		{"claude_code.cost.usage", "USD", "claude_code_cost_usage_USD_total"},
		{"claude_code.active_time.total", "s", "claude_code_active_time_seconds_total"},
		{"claude_code.session.count", "count", "claude_code_session_count_total"},
		{"claude_code.lines_of_code.count", "count", "claude_code_lines_of_code_count_total"},
	}
	for _, tc := range cases {
		md := newMetrics(func(ms pmetric.MetricSlice) { cumulativeSum(ms, tc.name, tc.unit, 1) })
		points, _ := collect(t, md)
		if len(points) != 1 || points[0].Family != tc.want {
			t.Errorf("%s (%s) -> %+v, want family %s", tc.name, tc.unit, points, tc.want)
		}
	}
}

func TestLabelsFromResourceScopeAttributesAndExternal(t *testing.T) {
	md := newMetrics(func(ms pmetric.MetricSlice) {
		dp := cumulativeSum(ms, "claude_code.token.usage", "tokens", 42)
		dp.Attributes().PutStr("session.id", "s-1")
		dp.Attributes().PutStr("session_id", "s-2") // collides with session.id after sanitising
		dp.Attributes().PutStr("empty", "")
		dp.Attributes().PutStr("cluster", "from-point")
	})
	points, dropped := collect(t, md)
	if len(dropped) != 0 {
		t.Errorf("dropped %v", dropped)
	}
	want := []Label{
		{"cluster", "from-point"},
		{"instance", "laptop-1"},
		{"job", "dev/claude-code"},
		{"otel_scope_name", "com.anthropic.claude_code"},
		{"otel_scope_version", "1.0.0"},
		{"session_id", "s-1;s-2"},
	}
	if !slices.Equal(points[0].Labels, want) {
		t.Errorf("labels = %v\nwant      %v", points[0].Labels, want)
	}
	if points[0].TimestampMs != 1_700_000_000_123 || points[0].Value != 42 || points[0].Kind != KindCounter {
		t.Errorf("point = %+v", points[0])
	}
}

func TestHistogramBucketsAreCumulative(t *testing.T) {
	md := newMetrics(func(ms pmetric.MetricSlice) {
		m := ms.AppendEmpty()
		m.SetName("http.server.request.duration")
		m.SetUnit("s")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.ExplicitBounds().FromRaw([]float64{0.1, 1})
		dp.BucketCounts().FromRaw([]uint64{2, 3, 4})
		dp.SetCount(9)
		dp.SetSum(7.5)
		bad := h.DataPoints().AppendEmpty()
		bad.ExplicitBounds().FromRaw([]float64{0.1})
		bad.BucketCounts().FromRaw([]uint64{1, 2, 3})
	})
	points, dropped := collect(t, md)
	if dropped[DropInvalidPoint] != 1 {
		t.Errorf("dropped = %v, want one invalid point", dropped)
	}
	p := points[0]
	if p.Family != "http_server_request_duration_seconds" || p.Count != 9 || p.Sum != 7.5 || !p.HasSum {
		t.Errorf("point = %+v", p)
	}
	if want := []Bucket{{0.1, 2}, {1, 5}}; !slices.Equal(p.Buckets, want) {
		t.Errorf("buckets = %v, want %v", p.Buckets, want)
	}
}

func TestExponentialHistogramBecomesNativeHistogram(t *testing.T) {
	md := newMetrics(func(ms pmetric.MetricSlice) {
		m := ms.AppendEmpty()
		m.SetName("latency")
		m.SetUnit("ms")
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetScale(10) // finer than Prometheus allows: merged down to schema 8
		dp.Positive().SetOffset(-3)
		dp.Positive().BucketCounts().FromRaw([]uint64{1, 1, 1, 1, 1})
		dp.SetZeroCount(2)
		dp.SetCount(7)
		coarse := h.DataPoints().AppendEmpty()
		coarse.SetScale(-5)
	})
	points, dropped := collect(t, md)
	if dropped[DropUnsupportedScale] != 1 {
		t.Errorf("dropped = %v, want one unsupported scale", dropped)
	}
	n := points[0].Native
	// OTLP indexes -3..1 at scale 10 are -1,-1,-1,0,0 at scale 8 (floor of i/4);
	// Prometheus indexes are one higher.
	if n.Schema != 8 || n.Positive.Offset != 0 || !slices.Equal(n.Positive.Counts, []uint64{3, 2}) || n.ZeroCount != 2 {
		t.Errorf("native = %+v", n)
	}
}

func TestDeltaIsNotTranslated(t *testing.T) {
	md := newMetrics(func(ms pmetric.MetricSlice) {
		m := ms.AppendEmpty()
		m.SetName("x")
		s := m.SetEmptySum()
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		s.DataPoints().AppendEmpty().SetIntValue(1)
	})
	points, dropped := collect(t, md)
	if len(points) != 0 || dropped[DropDelta] != 1 {
		t.Errorf("points %v dropped %v", points, dropped)
	}
}
