package ring

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// point builds a one-point delta sum and returns its key under k.
type pointSpec struct {
	resource, scope, point map[string]any
	metric                 string
	cumulative             bool
}

func keyOf(t testing.TB, k *Keyer, s pointSpec) Key {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	if err := rm.Resource().Attributes().FromRaw(s.resource); err != nil {
		t.Fatal(err)
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	if err := sm.Scope().Attributes().FromRaw(s.scope); err != nil {
		t.Fatal(err)
	}
	m := sm.Metrics().AppendEmpty()
	m.SetName(s.metric)
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	if s.cumulative {
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	dp := sum.DataPoints().AppendEmpty()
	if err := dp.Attributes().FromRaw(s.point); err != nil {
		t.Fatal(err)
	}
	return k.Point(k.Metric(k.Scope(k.Resource(rm.Resource()), sm.Scope()), m), dp.Attributes())
}

func mustKeyer(t testing.TB, kind KeyKind, attrs ...string) *Keyer {
	t.Helper()
	k, err := NewKeyer(kind, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStreamIDKeySeesEveryPartOfTheIdentity(t *testing.T) {
	k := mustKeyer(t, KeyStreamID)
	base := pointSpec{
		resource: map[string]any{"service.name": "claude-code", "host.arch": "arm64"},
		point:    map[string]any{"session.id": "s1", "model": "opus", "n": int64(1)},
		metric:   "claude_code.token.usage",
	}
	want := keyOf(t, k, base)

	reordered := base
	reordered.resource = map[string]any{"host.arch": "arm64", "service.name": "claude-code"}
	if got := keyOf(t, k, reordered); got != want {
		t.Errorf("attribute order changed the key")
	}
	for name, change := range map[string]func(*pointSpec){
		"point attribute":    func(s *pointSpec) { s.point = map[string]any{"session.id": "s2", "model": "opus", "n": int64(1)} },
		"attribute type":     func(s *pointSpec) { s.point = map[string]any{"session.id": "s1", "model": "opus", "n": "1"} },
		"resource attribute": func(s *pointSpec) { s.resource = map[string]any{"service.name": "claude-code"} },
		"scope attribute":    func(s *pointSpec) { s.scope = map[string]any{"x": true} },
		"metric name":        func(s *pointSpec) { s.metric = "claude_code.cost.usage" },
		"temporality":        func(s *pointSpec) { s.cumulative = true },
		"key moved between levels": func(s *pointSpec) {
			s.resource = map[string]any{"service.name": "claude-code", "host.arch": "arm64", "model": "opus"}
			s.point = map[string]any{"session.id": "s1", "n": int64(1)}
		},
	} {
		s := base
		change(&s)
		if keyOf(t, k, s) == want {
			t.Errorf("changing the %s kept the key", name)
		}
	}
}

func TestAttributesKeyLooksUpMostSpecificValue(t *testing.T) {
	k := mustKeyer(t, KeyAttributes, "session.id")
	onPoint := keyOf(t, k, pointSpec{point: map[string]any{"session.id": "s1", "model": "a"}, metric: "m1"})
	onResource := keyOf(t, k, pointSpec{resource: map[string]any{"session.id": "s1"}, point: map[string]any{"model": "b"}, metric: "m2"})
	if onPoint != onResource {
		t.Errorf("session.id on the point and on the resource route differently")
	}
	shadowed := keyOf(t, k, pointSpec{resource: map[string]any{"session.id": "s9"}, point: map[string]any{"session.id": "s1"}, metric: "m1"})
	if shadowed != onPoint {
		t.Errorf("a point's attribute does not take precedence over its resource's")
	}
	if other := keyOf(t, k, pointSpec{point: map[string]any{"session.id": "s2"}, metric: "m1"}); other == onPoint {
		t.Errorf("different sessions share a key")
	}
	missing := keyOf(t, k, pointSpec{point: map[string]any{"model": "a"}, metric: "m1"})
	if missing == onPoint {
		t.Errorf("a point without the attribute routes as if it had it")
	}
	if _, err := NewKeyer(KeyAttributes, nil); err == nil {
		t.Errorf("attributes key without attributes accepted")
	}
	if _, err := NewKeyer("metric", nil); err == nil {
		t.Errorf("unknown key accepted")
	}
}

func TestResourceAndServiceKeysIgnorePoints(t *testing.T) {
	res := map[string]any{"service.name": "claude-code", "host.arch": "arm64"}
	for _, kind := range []KeyKind{KeyResource, KeyService} {
		k := mustKeyer(t, kind)
		a := keyOf(t, k, pointSpec{resource: res, point: map[string]any{"session.id": "s1"}, metric: "a"})
		b := keyOf(t, k, pointSpec{resource: res, point: map[string]any{"session.id": "s2"}, metric: "b"})
		if a != b {
			t.Errorf("%s: points of one resource route differently", kind)
		}
		if k.PerPoint() {
			t.Errorf("%s: PerPoint is true", kind)
		}
	}
	svc := mustKeyer(t, KeyService)
	if keyOf(t, svc, pointSpec{resource: map[string]any{"service.name": "x", "host.arch": "a"}, metric: "m"}) !=
		keyOf(t, svc, pointSpec{resource: map[string]any{"service.name": "x", "host.arch": "b"}, metric: "m"}) {
		t.Errorf("service key hashes more than service.name")
	}
}

func TestKeysDoNotAllocate(t *testing.T) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	sm := rm.ScopeMetrics().AppendEmpty()
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	dp := m.SetEmptySum().DataPoints().AppendEmpty()
	dp.Attributes().PutStr("session.id", "s1")
	dp.Attributes().PutInt("n", 3)
	dp.Attributes().PutEmptySlice("list").AppendEmpty().SetBool(true)
	for _, k := range []*Keyer{mustKeyer(t, KeyStreamID), mustKeyer(t, KeyAttributes, "session.id", "n")} {
		allocs := testing.AllocsPerRun(100, func() {
			_ = k.Point(k.Metric(k.Scope(k.Resource(rm.Resource()), sm.Scope()), m), dp.Attributes())
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per key", k.Kind(), allocs)
		}
	}
}

func BenchmarkStreamIDKey(b *testing.B) {
	k := mustKeyer(b, KeyStreamID)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	sm := rm.ScopeMetrics().AppendEmpty()
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	dp := m.SetEmptySum().DataPoints().AppendEmpty()
	for _, a := range []string{"session.id", "user.id", "model", "type", "organization.id"} {
		dp.Attributes().PutStr(a, a+"-value-0123456789")
	}
	ml := k.Metric(k.Scope(k.Resource(rm.Resource()), sm.Scope()), m)
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Point(ml, dp.Attributes())
	}
}
