package convert

import (
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestSumConversion(t *testing.T) {
	const name = "claude_code.token.usage"
	type step struct {
		start, end, value float64
		opts              []pointOption
	}
	s := func(start, end, value float64, opts ...pointOption) step {
		return step{start, end, value, opts}
	}
	tests := []struct {
		name      string
		engine    []engineOption
		monotonic bool
		steps     []step
		want      Result
		// wantValue, wantStart, wantEnd describe the one emitted point
		// (seconds); wantNone means nothing is emitted.
		wantValue         float64
		wantStart, wantTS float64
		wantNone          bool
	}{
		{
			name: "contiguous intervals add up", monotonic: true,
			steps:     []step{s(0, 10, 5), s(10, 20, 3), s(20, 30, 1.5)},
			want:      Result{Applied: 3},
			wantValue: 9.5, wantStart: 0, wantTS: 30,
		},
		{
			name: "a gap between intervals accumulates", monotonic: true,
			steps:     []step{s(0, 10, 5), s(40, 50, 2)},
			want:      Result{Applied: 2},
			wantValue: 7, wantStart: 0, wantTS: 50,
		},
		{
			name: "redelivery of the latest point counts once", monotonic: true,
			steps:     []step{s(0, 10, 5), s(10, 20, 3), s(10, 20, 3)},
			want:      Result{Applied: 2, Duplicates: 1},
			wantValue: 8, wantStart: 0, wantTS: 20,
		},
		{
			name: "redelivery after newer points counts once", monotonic: true,
			steps:     []step{s(0, 10, 5), s(10, 20, 3), s(20, 30, 4), s(0, 10, 5), s(10, 20, 3)},
			want:      Result{Applied: 3, Duplicates: 2},
			wantValue: 12, wantStart: 0, wantTS: 30,
		},
		{
			name: "a second writer's overlapping interval is summed in shared mode", monotonic: true,
			steps:     []step{s(0, 10, 5), s(5, 15, 2), s(10, 20, 1)},
			want:      Result{Applied: 3},
			wantValue: 8, wantStart: 0, wantTS: 20,
		},
		{
			name: "a second writer's older interval is summed in shared mode", monotonic: true,
			steps:     []step{s(10, 20, 5), s(2, 8, 2)},
			want:      Result{Applied: 2},
			wantValue: 7, wantStart: 10, wantTS: 20,
		},
		{
			name: "overlap is refused in single mode", monotonic: true, engine: []engineOption{withSingleWriter()},
			steps:     []step{s(0, 10, 5), s(5, 15, 2), s(10, 20, 1)},
			want:      Result{Applied: 2, Rejected: [NumReasons]int{ReasonOutOfOrder: 1}},
			wantValue: 6, wantStart: 0, wantTS: 20,
		},
		{
			name: "redelivery is a duplicate, not out of order, in single mode", monotonic: true, engine: []engineOption{withSingleWriter()},
			steps:     []step{s(0, 10, 5), s(10, 20, 1), s(0, 10, 5)},
			want:      Result{Applied: 2, Duplicates: 1},
			wantValue: 6, wantStart: 0, wantTS: 20,
		},
		{
			name: "redelivery older than the remembered intervals is refused, never counted twice", monotonic: true,
			engine: []engineOption{withClock(&fakeClock{now: epoch.Add(time.Hour)})},
			steps: []step{
				s(0, 10, 1), s(10, 20, 1), s(20, 30, 1), s(30, 40, 1), s(40, 50, 1), s(50, 60, 1),
				s(0, 10, 1), s(20, 30, 1),
			},
			want:      Result{Applied: 6, Duplicates: 1, Rejected: [NumReasons]int{ReasonOutOfOrder: 1}},
			wantValue: 6, wantStart: 0, wantTS: 60,
		},
		{
			// One gateway delivers six intervals of writer B while the other
			// still queues writer A's points: intervals younger than
			// the late-data window are not forgotten, so A's redelivery is still
			// known and A's new point still counts.
			name: "a burst of recent intervals is remembered in shared mode", monotonic: true,
			engine: []engineOption{withClock(&fakeClock{now: epoch.Add(70 * time.Second)})},
			steps: []step{
				s(0, 10, 1), s(10, 20, 1), s(20, 30, 1), s(30, 40, 1), s(40, 50, 1), s(50, 60, 1),
				s(0, 10, 1), s(5, 15, 2),
			},
			want:      Result{Applied: 7, Duplicates: 1},
			wantValue: 8, wantStart: 0, wantTS: 60,
		},
		{
			name: "a burst of recent intervals is not remembered in single mode", monotonic: true,
			engine: []engineOption{withSingleWriter(), withClock(&fakeClock{now: epoch.Add(70 * time.Second)})},
			steps: []step{
				s(0, 10, 1), s(10, 20, 1), s(20, 30, 1), s(30, 40, 1), s(40, 50, 1), s(50, 60, 1),
				s(0, 10, 1), s(5, 15, 2),
			},
			want:      Result{Applied: 6, Rejected: [NumReasons]int{ReasonOutOfOrder: 2}},
			wantValue: 6, wantStart: 0, wantTS: 60,
		},
		{
			name: "non-monotonic sums go down", monotonic: false,
			steps:     []step{s(0, 10, 5), s(10, 20, -7)},
			want:      Result{Applied: 2},
			wantValue: -2, wantStart: 0, wantTS: 20,
		},
		{
			name: "negative delta of a monotonic sum is invalid", monotonic: true,
			steps:     []step{s(0, 10, 5), s(10, 20, -7)},
			want:      Result{Applied: 1, Rejected: [NumReasons]int{ReasonInvalid: 1}},
			wantValue: 5, wantStart: 0, wantTS: 10,
		},
		{
			name: "NaN and infinite deltas are skipped", monotonic: false,
			steps:     []step{s(0, 10, 5), s(10, 20, math.NaN()), s(20, 30, math.Inf(1)), s(30, 40, 1)},
			want:      Result{Applied: 2, Rejected: [NumReasons]int{ReasonInvalid: 2}},
			wantValue: 6, wantStart: 0, wantTS: 40,
		},
		{
			name: "no recorded value changes nothing", monotonic: true,
			steps:     []step{s(0, 10, 5), s(10, 20, 100, withNoRecordedValue()), s(20, 30, 1)},
			want:      Result{Applied: 2, NoRecordedValue: 1},
			wantValue: 6, wantStart: 0, wantTS: 30,
		},
		{
			name: "no recorded value does not create a stream", monotonic: true,
			steps:    []step{s(0, 10, 100, withNoRecordedValue())},
			want:     Result{NoRecordedValue: 1},
			wantNone: true,
		},
		{
			name: "end before start is invalid", monotonic: true,
			steps:     []step{s(0, 10, 5), s(30, 20, 1)},
			want:      Result{Applied: 1, Rejected: [NumReasons]int{ReasonInvalid: 1}},
			wantValue: 5, wantStart: 0, wantTS: 10,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t, tc.engine...)
			var got Result
			for _, st := range tc.steps {
				req := newRequest().addSum(name, tc.monotonic, st.start, st.end, st.value, st.opts...)
				r := e.Apply(req.md)
				got.Applied += r.Applied
				got.Duplicates += r.Duplicates
				got.NoRecordedValue += r.NoRecordedValue
				got.Passthrough += r.Passthrough
				for i := range r.Rejected {
					got.Rejected[i] += r.Rejected[i]
				}
				if req.md.ResourceMetrics().Len() != 0 {
					t.Fatalf("delta points left in the request after Apply")
				}
			}
			got.FirstInvalid = ""
			if got != tc.want {
				t.Fatalf("results: got %+v, want %+v", got, tc.want)
			}
			points := emitPoints(t, e, epoch.Add(time.Hour))
			if tc.wantNone {
				if len(points) != 0 {
					t.Fatalf("emitted %+v, want nothing", points)
				}
				return
			}
			p := onlyPoint(t, points)
			if p.value != tc.wantValue || p.start != at(tc.wantStart) || p.ts != at(tc.wantTS) {
				t.Fatalf("emitted value %v start %v ts %v, want %v start %v ts %v",
					p.value, p.start, p.ts, tc.wantValue, at(tc.wantStart), at(tc.wantTS))
			}
		})
	}
}

func TestIntegerSumsStayIntegers(t *testing.T) {
	e := newTestEngine(t)
	e.Apply(newRequest().deltaIntSum("commits", 0, 10, 1<<53).md)
	e.Apply(newRequest().deltaIntSum("commits", 10, 20, 1).md)
	out := pmetric.NewMetrics()
	e.Emit(epoch.Add(time.Minute), out)
	dp := out.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0)
	if dp.ValueType() != pmetric.NumberDataPointValueTypeInt || dp.IntValue() != 1<<53+1 {
		t.Fatalf("got %s %d, want int %d", dp.ValueType(), dp.IntValue(), int64(1<<53+1))
	}
}

func TestIntegerSumOverflowTurnsIntoDouble(t *testing.T) {
	e := newTestEngine(t)
	e.Apply(newRequest().deltaIntSum("big", 0, 10, math.MaxInt64).md)
	e.Apply(newRequest().deltaIntSum("big", 10, 20, math.MaxInt64).md)
	p := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Minute)))
	if want := 2 * float64(math.MaxInt64); p.value != want {
		t.Fatalf("got %v, want %v", p.value, want)
	}
}

func TestAttributeOrderDoesNotChangeIdentity(t *testing.T) {
	e := newTestEngine(t)
	e.Apply(newRequest().deltaSum("cost", 0, 10, 1, withAttr("model", "opus"), withAttr("session.id", "s1")).md)
	e.Apply(newRequest().deltaSum("cost", 10, 20, 2, withAttr("session.id", "s1"), withAttr("model", "opus")).md)
	if e.Streams() != 1 {
		t.Fatalf("got %d streams, want 1", e.Streams())
	}
	p := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Minute)))
	if p.value != 3 || p.attrs != "model=opus,session.id=s1," {
		t.Fatalf("got %v with %s", p.value, p.attrs)
	}
}

func TestIdentityParts(t *testing.T) {
	base := func() *request { return newRequest().deltaSum("cost", 0, 10, 1, withAttr("model", "opus")) }
	variants := map[string]func(*request){
		"resource attribute": func(r *request) {
			r.md.ResourceMetrics().At(0).Resource().Attributes().PutStr("host.name", "laptop-2")
		},
		"scope version":   func(r *request) { r.sm.Scope().SetVersion("2.0.0") },
		"scope attribute": func(r *request) { r.sm.Scope().Attributes().PutStr("team", "a") },
		"metric unit":     func(r *request) { r.sm.Metrics().At(0).SetUnit("USD") },
		"monotonicity":    func(r *request) { r.sm.Metrics().At(0).Sum().SetIsMonotonic(false) },
		"point attribute type": func(r *request) {
			r.sm.Metrics().At(0).Sum().DataPoints().At(0).Attributes().PutInt("model", 1)
		},
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			e := newTestEngine(t)
			e.Apply(base().md)
			r := base()
			change(r)
			e.Apply(r.md)
			if e.Streams() != 2 {
				t.Fatalf("got %d streams, want 2", e.Streams())
			}
		})
	}
}

func TestPassthroughStaysInRequest(t *testing.T) {
	e := newTestEngine(t)
	req := newRequest().deltaSum("delta", 0, 10, 1)
	cum := req.sumMetric("cumulative", true, pmetric.AggregationTemporalityCumulative).DataPoints()
	cum.AppendEmpty().SetDoubleValue(4)
	cum.AppendEmpty().SetDoubleValue(5)
	g := req.sm.Metrics().AppendEmpty()
	g.SetName("gauge")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	sm := req.sm.Metrics().AppendEmpty()
	sm.SetName("summary")
	sm.SetEmptySummary().DataPoints().AppendEmpty().SetSum(3)
	// A second resource holding only delta data disappears entirely.
	other := req.md.ResourceMetrics().AppendEmpty()
	om := other.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	om.SetName("delta")
	os := om.SetEmptySum()
	os.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := os.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(at(0))
	dp.SetTimestamp(at(1))
	dp.SetIntValue(1)

	res := e.Apply(req.md)
	if res.Applied != 2 || res.Passthrough != 4 {
		t.Fatalf("got %+v, want 2 applied and 4 passthrough", res)
	}
	if n := req.md.ResourceMetrics().Len(); n != 1 {
		t.Fatalf("got %d resources left, want 1", n)
	}
	var names []string
	for _, m := range req.sm.Metrics().All() {
		names = append(names, m.Name())
	}
	if got := strings.Join(names, ","); got != "cumulative,gauge,summary" {
		t.Fatalf("left metrics %s", got)
	}
}

func TestEmitTimestampsStrictlyIncrease(t *testing.T) {
	e := newTestEngine(t)
	e.Apply(newRequest().deltaSum("c", 0, 10, 1).md)
	first := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Minute)))
	if first.ts != at(10) {
		t.Fatalf("first sample at %v, want %v", first.ts, at(10))
	}
	// An older second-writer interval leaves the newest end unchanged.
	e.Apply(newRequest().deltaSum("c", 2, 8, 1).md)
	second := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Minute)))
	if second.ts != at(10.001) || second.value != 2 {
		t.Fatalf("second sample %v at %v, want 2 at %v", second.value, second.ts, at(10.001))
	}
	out := pmetric.NewMetrics()
	e.EmitAll(epoch.Add(time.Minute), out)
	third := onlyPoint(t, collect(t, out))
	if third.ts != at(10.002) {
		t.Fatalf("EmitAll sample at %v, want %v", third.ts, at(10.002))
	}
	if len(emitPoints(t, e, epoch.Add(time.Minute))) != 0 {
		t.Fatal("Emit without updates emitted points")
	}
	// A sub-millisecond later end does not make a later millisecond.
	e.Apply(newRequest().deltaSum("c", 10, 10.0025, 1).md)
	fourth := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Minute)))
	if fourth.ts != at(10.003) {
		t.Fatalf("fourth sample at %v, want %v", fourth.ts, at(10.003))
	}
	e.Apply(newRequest().deltaSum("c", 10.0025, 20, 1).md)
	fifth := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Minute)))
	if fifth.ts != at(20) || fifth.value != 4 {
		t.Fatalf("fifth sample %v at %v, want 4 at %v", fifth.value, fifth.ts, at(20))
	}
}

func TestStaleStreamsAreForgotten(t *testing.T) {
	clock := &fakeClock{now: epoch}
	e := newTestEngine(t, withMaxStale(5*time.Minute), withClock(clock))
	e.Apply(newRequest().deltaSum("old", 0, 10, 1).md)
	clock.now = epoch.Add(4 * time.Minute)
	e.Apply(newRequest().deltaSum("fresh", 0, 10, 1).md)

	if r := e.Emit(epoch.Add(4*time.Minute), pmetric.NewMetrics()); r.Points != 2 || r.Expired != 0 {
		t.Fatalf("first emit %+v, want 2 points, none expired", r)
	}
	if r := e.Emit(epoch.Add(5*time.Minute), pmetric.NewMetrics()); r.Points != 0 || r.Expired != 1 {
		t.Fatalf("second emit %+v, want 1 expired", r)
	}
	if e.Streams() != 1 {
		t.Fatalf("got %d streams, want 1", e.Streams())
	}
	// The forgotten stream starts over with a new start time.
	clock.now = epoch.Add(6 * time.Minute)
	e.Apply(newRequest().deltaSum("old", 300, 310, 7).md)
	p := onlyPoint(t, emitPoints(t, e, clock.now))
	if p.value != 7 || p.start != at(300) {
		t.Fatalf("restarted stream %v from %v, want 7 from %v", p.value, p.start, at(300))
	}
	if n := e.interner.resources.live(); n != 1 {
		t.Fatalf("%d interned resources, want 1", n)
	}
}

func TestInternedDescriptorsAreReleasedWithTheirStreams(t *testing.T) {
	clock := &fakeClock{now: epoch}
	e := newTestEngine(t, withMaxStale(time.Minute), withClock(clock))
	e.Apply(newRequest().deltaSum("a", 0, 10, 1, withAttr("session.id", "s1")).md)
	e.Apply(newRequest().deltaSum("b", 0, 10, 1, withAttr("session.id", "s1")).md)
	if got := e.interner.attrs.live(); got != 1 {
		t.Fatalf("%d interned attributes, want 1 shared by both streams", got)
	}
	e.Emit(epoch.Add(2*time.Minute), pmetric.NewMetrics())
	in := e.interner
	if in.attrs.live()+in.metrics.live()+in.scopes.live()+in.resources.live() != 0 {
		t.Fatalf("interned values left after every stream expired")
	}
}

func TestStreamLimit(t *testing.T) {
	e := newTestEngine(t, withMaxStreams(2))
	req := newRequest().
		deltaSum("c", 0, 10, 1, withAttr("session.id", "a")).
		deltaSum("c", 0, 10, 1, withAttr("session.id", "b")).
		deltaSum("c", 0, 10, 1, withAttr("session.id", "c"))
	res := e.Apply(req.md)
	if res.Applied != 2 || res.Rejected[ReasonStreamLimit] != 1 {
		t.Fatalf("got %+v, want 2 applied and 1 refused for the stream limit", res)
	}
	if msg := res.Message(); !strings.Contains(msg, "1 points would start a new stream beyond the stream limit") {
		t.Fatalf("message %q does not name the stream limit", msg)
	}
	res = e.Apply(newRequest().deltaSum("c", 10, 20, 1, withAttr("session.id", "a")).md)
	if res.Applied != 1 || res.RejectedTotal() != 0 {
		t.Fatalf("existing stream refused: %+v", res)
	}
}

func TestMessage(t *testing.T) {
	if m := (Result{Applied: 3}).Message(); m != "" {
		t.Fatalf("message %q without refusals", m)
	}
	e := newTestEngine(t)
	res := e.Apply(newRequest().addSum("bad", false, 0, 10, math.NaN()).md)
	want := `delta conversion refused 1 points are invalid (first: metric "bad": sum delta is NaN or infinite)`
	if m := res.Message(); m != want {
		t.Fatalf("message %q, want %q", m, want)
	}
}

func TestNewEngineRejectsBadConfig(t *testing.T) {
	_, err := NewEngine(Config{MaxStreams: -1, MaxStale: -time.Second, LateDataWindow: -time.Second})
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"maxStreams", "maxStale", "lateDataWindow"} {
		if !strings.Contains(err.Error(), field) {
			t.Fatalf("error %q does not name %s", err, field)
		}
	}
}

func TestReasonNames(t *testing.T) {
	want := []string{"stream_limit", "out_of_order", "invalid"}
	for r := Reason(0); r < NumReasons; r++ {
		if r.String() != want[r] {
			t.Fatalf("reason %d is %q, want %q", r, r.String(), want[r])
		}
	}
}
