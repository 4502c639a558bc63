package handoff_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// A rescale from one worker to two while points keep arriving, routed to
// the owners of the new ring: once the hand-over is complete, every stream
// is held by exactly one worker, its owner at the new epoch, and its total
// counts every delta exactly once, whichever worker applied it.
func TestHandOverUnderLoadKeepsEveryTotal(t *testing.T) {
	const streams, rounds = 4000, 6
	p := newPair(t, streams)
	m := ring.Membership{Epoch: 2, Members: p.members, Previous: p.members[:1]}
	var owned [2][]int
	for first := 0; first < streams; first += pointsPerRequest {
		ids := span(first, pointsPerRequest)
		md := tokenUsage(ids, 0)
		for i, k := range pointKeys(p.keyer, md) {
			o := m.Owner(k)
			owned[o] = append(owned[o], ids[i])
		}
	}
	if len(owned[0]) == 0 || len(owned[1]) == 0 {
		t.Fatalf("epoch 2 gives worker 0 %d and worker 1 %d of %d streams", len(owned[0]), len(owned[1]), streams)
	}
	p.grow(t)
	// Rounds 1..rounds arrive while the streams move: the first ones
	// reach worker 1 before the records of its streams do.
	for round := 1; round <= rounds; round++ {
		for o, ids := range owned {
			for first := 0; first < len(ids); first += pointsPerRequest {
				md := tokenUsage(ids[first:min(first+pointsPerRequest, len(ids))], round)
				applyRetrying(t, p.workers[o].h, md)
			}
		}
	}
	p.awaitComplete(t, 2, time.Minute)
	defer p.close(t)

	want := make(map[string]int64, streams)
	for n := range streams {
		name := sessionID(n/streamsPerSession) + "/" + tokenTypes[n%len(tokenTypes)] + "/" + models[(n/len(tokenTypes))%len(models)]
		want[name] = int64(rounds+1) * int64(100+n%50)
	}
	seen := make(map[string]int, streams)
	for o, w := range p.workers {
		out := pmetric.NewMetrics()
		w.engine.EmitAll(time.Now(), out)
		dps := cumulativePoints(t, out)
		if len(dps) != len(owned[o]) {
			t.Errorf("worker %d emits %d streams, owns %d at epoch 2", o, len(dps), len(owned[o]))
		}
		for _, dp := range dps {
			name := streamName(dp.Attributes().AsRaw())
			seen[name]++
			total, ok := want[name]
			switch {
			case !ok:
				t.Errorf("worker %d emits a stream never sent: %s", o, name)
			case dp.IntValue() != total:
				t.Errorf("worker %d: %s totals %d, want %d (every delta of %d rounds once)", o, name, dp.IntValue(), total, rounds+1)
			}
		}
	}
	for name := range want {
		if seen[name] != 1 {
			t.Errorf("%s is emitted by %d workers, want exactly 1", name, seen[name])
		}
	}
}

// applyRetrying applies md as a gateway delivers it: a request refused
// because a forwarding queue is full is sent again.
func applyRetrying(t *testing.T, h *handoff.Handoff, md pmetric.Metrics) {
	t.Helper()
	var encoded pmetric.ProtoMarshaler
	var decode pmetric.ProtoUnmarshaler
	// Apply moves forwarded points out of md: a retry sends the request as
	// it was first sent.
	body, err := encoded.MarshalMetrics(md)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := decode.UnmarshalMetrics(body)
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.Apply(context.Background(), req)
		if err == nil {
			if n := res.RejectedTotal(); n > 0 {
				t.Fatalf("%d points rejected: %s", n, res.Message())
			}
			return
		}
		if !errors.Is(err, handoff.ErrForwardQueueFull) || time.Now().After(deadline) {
			t.Fatalf("applying a request: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pointKeys are the routing keys of md's points, in order.
func pointKeys(keyer *ring.Keyer, md pmetric.Metrics) []ring.Key {
	rm := md.ResourceMetrics().At(0)
	sm := rm.ScopeMetrics().At(0)
	metric := sm.Metrics().At(0)
	level := keyer.Metric(keyer.Scope(keyer.Resource(rm.Resource()), sm.Scope()), metric)
	dps := metric.Sum().DataPoints()
	keys := make([]ring.Key, dps.Len())
	for i := range keys {
		keys[i] = keyer.Point(level, dps.At(i).Attributes())
	}
	return keys
}

// cumulativePoints are the points of an emit's output, which must be the
// token counter as cumulative sums.
func cumulativePoints(t *testing.T, md pmetric.Metrics) []pmetric.NumberDataPoint {
	t.Helper()
	var out []pmetric.NumberDataPoint
	for i := range md.ResourceMetrics().Len() {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				if m.Type() != pmetric.MetricTypeSum || m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
					t.Fatalf("emitted %s as %s, want a cumulative sum", m.Name(), m.Type())
				}
				dps := m.Sum().DataPoints()
				for l := range dps.Len() {
					out = append(out, dps.At(l))
				}
			}
		}
	}
	return out
}

// streamName identifies a token counter stream by its point attributes.
func streamName(attrs map[string]any) string {
	return fmt.Sprint(attrs["session.id"], "/", attrs["type"], "/", attrs["model"])
}
