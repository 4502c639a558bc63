package convert

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// sumPoints renders every cumulative sum point of md as "session/type/model=value".
func sumPoints(md pmetric.Metrics) []string {
	var out []string
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				for _, dp := range m.Sum().DataPoints().All() {
					session, _ := dp.Attributes().Get("session.id")
					typ, _ := dp.Attributes().Get("type")
					model, _ := dp.Attributes().Get("model")
					out = append(out, fmt.Sprintf("%s/%s/%s=%d", session.Str(), typ.Str(), model.Str(), dp.IntValue()))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestEmitChunksMatchesEmitInBoundedParts(t *testing.T) {
	const streams, chunk = 5000, 700
	whole, chunked := newTestEngine(t), newTestEngine(t)
	for _, e := range []*Engine{whole, chunked} {
		for first := 0; first < streams; first += 1000 {
			e.Apply(claudeCodeBatch(first, 1000, 0, pmetric.MetricTypeSum))
		}
	}
	now := epoch.Add(time.Hour)
	want := pmetric.NewMetrics()
	if r := whole.Emit(now, want); r.Points != streams {
		t.Fatalf("Emit gave %d points", r.Points)
	}

	var parts []pmetric.Metrics
	res := chunked.EmitChunks(now, false, chunk, func(md pmetric.Metrics) { parts = append(parts, md) })
	if res.Points != streams {
		t.Fatalf("EmitChunks reported %d points, want %d", res.Points, streams)
	}
	got := pmetric.NewMetrics()
	for i, p := range parts {
		// Parts are cut between shards: at most one shard's streams over.
		if n := p.DataPointCount(); n == 0 || n >= chunk+streams/numShards*2 {
			t.Errorf("part %d has %d points, want 1..%d", i, n, chunk+streams/numShards*2)
		}
		p.ResourceMetrics().MoveAndAppendTo(got.ResourceMetrics())
	}
	if len(parts) < streams/(chunk+streams/numShards*2) {
		t.Errorf("%d parts for %d points in parts of about %d", len(parts), streams, chunk)
	}
	if w, g := sumPoints(want), sumPoints(got); !slices.Equal(w, g) {
		t.Errorf("chunked emit differs from a whole emit: %d vs %d points", len(g), len(w))
	}

	// Nothing was updated since: a second emit sends nothing and calls send never.
	calls := 0
	if r := chunked.EmitChunks(now.Add(time.Second), false, chunk, func(pmetric.Metrics) { calls++ }); r.Points != 0 || calls != 0 {
		t.Errorf("second emit without updates: %d points in %d calls", r.Points, calls)
	}
	// EmitAll semantics: every live stream again.
	if r := chunked.EmitChunks(now.Add(2*time.Second), true, chunk, func(pmetric.Metrics) {}); r.Points != streams {
		t.Errorf("emit of all streams gave %d points, want %d", r.Points, streams)
	}
}
