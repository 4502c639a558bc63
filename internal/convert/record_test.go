package convert

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// mixedBatch is round n of a workload holding every stream kind, a second
// writer and attribute values of several types.
func mixedBatch(n int) pmetric.Metrics {
	start, end := float64(10*n), float64(10*n+10)
	req := newRequest().
		deltaSum("tokens", start, end, float64(n+1), withAttr("session.id", "s1"), withAttr("type", "input")).
		deltaIntSum("commits", start, end, int64(n), withAttr("session.id", "s1")).
		deltaHistogram("latency", start, end, histogramSpec{bounds: []float64{1, 10}, counts: []uint64{1, uint64(n), 2}, sum: float64(5 + n), min: 0.5, max: 20}).
		deltaExpHistogram("duration", start, end, expSpec{scale: int32(3 - n%3), posOffset: int32(n), pos: []uint64{1, 2}, zeroCount: 1, sum: 9, min: 0, max: 4})
	// A second writer with intervals offset by half a period.
	req.addSum("tokens", true, start+5, end+5, 0.25, withAttr("session.id", "s1"), withAttr("type", "input"))
	attrs := req.sm.Metrics().At(0).Sum().DataPoints().At(0).Attributes()
	attrs.PutInt("retries", 3)
	attrs.PutEmptySlice("tags").AppendEmpty().SetStr("x")
	attrs.PutEmptyMap("nested").PutBool("ok", true)
	return req.md
}

func sortedEmitted(t testing.TB, e *Engine, now time.Time, all bool) []string {
	t.Helper()
	out := pmetric.NewMetrics()
	if all {
		e.EmitAll(now, out)
	} else {
		e.Emit(now, out)
	}
	var lines []string
	for _, p := range collect(t, out) {
		line := fmt.Sprintf("%s{%s} start=%d ts=%d value=%v", p.metric, p.attrs, p.start, p.ts, p.value)
		switch {
		case p.hist != nil:
			line += fmt.Sprintf(" counts=%v sum=%v", p.hist.BucketCounts().AsRaw(), p.hist.Sum())
		case p.exp != nil:
			line += fmt.Sprintf(" scale=%d pos=%d%v zero=%d", p.exp.Scale(), p.exp.Positive().Offset(), p.exp.Positive().BucketCounts().AsRaw(), p.exp.ZeroCount())
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	return lines
}

func restoreInto(t testing.TB, from, to *Engine) {
	t.Helper()
	records := 0
	err := from.MarshalStreams(func(record []byte) error {
		records++
		return to.RestoreStream(record)
	})
	if err != nil {
		t.Fatalf("handing over streams: %v", err)
	}
	if records != from.Streams() || to.Streams() != from.Streams() {
		t.Fatalf("%d records for %d streams, %d restored", records, from.Streams(), to.Streams())
	}
}

func TestRestoreContinuesAsWithoutRestart(t *testing.T) {
	now := epoch.Add(time.Hour)
	steady := newTestEngine(t)
	before := newTestEngine(t)
	for n := 0; n < 6; n++ {
		steady.Apply(mixedBatch(n))
		before.Apply(mixedBatch(n))
		if n%2 == 0 {
			sortedEmitted(t, steady, now, false)
			sortedEmitted(t, before, now, false)
		}
	}
	restarted := newTestEngine(t)
	restoreInto(t, before, restarted)

	// Updated but not yet emitted streams are still emitted after restore.
	if got, want := sortedEmitted(t, restarted, now, false), sortedEmitted(t, steady, now, false); !reflect.DeepEqual(got, want) {
		t.Fatalf("first emit after restore differs:\n got %q\nwant %q", got, want)
	}
	// Rounds 5 and 4 are redeliveries: only duplicates.
	for i, round := range []int{5, 4, 6} {
		a, b := steady.Apply(mixedBatch(round)), restarted.Apply(mixedBatch(round))
		if i < 2 && (a.Duplicates == 0 || a.Applied != 0) {
			t.Fatalf("redelivered round %d: %+v, want only duplicates", i, a)
		}
		if a != b {
			t.Fatalf("step %d: results differ: %+v vs %+v", i, a, b)
		}
		// Emitting everything exercises the timestamps after restore.
		if got, want := sortedEmitted(t, restarted, now, true), sortedEmitted(t, steady, now, true); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: output differs:\n got %q\nwant %q", i, got, want)
		}
	}
}

func TestRestoreRejectsExistingStream(t *testing.T) {
	e := newTestEngine(t)
	e.Apply(newRequest().deltaSum("c", 0, 10, 1).md)
	err := e.MarshalStreams(e.RestoreStream)
	if !errors.Is(err, ErrStreamExists) {
		t.Fatalf("got %v, want ErrStreamExists", err)
	}
}

func TestRestoreRespectsStreamLimit(t *testing.T) {
	from := newTestEngine(t)
	from.Apply(newRequest().deltaSum("a", 0, 10, 1).deltaSum("b", 0, 10, 1).md)
	to := newTestEngine(t, withMaxStreams(1))
	err := from.MarshalStreams(to.RestoreStream)
	if err == nil || !strings.Contains(err.Error(), "stream limit") || to.Streams() != 1 {
		t.Fatalf("got %v with %d streams, want a stream limit error after 1", err, to.Streams())
	}
}

func TestRestoreRejectsDamagedRecords(t *testing.T) {
	src := newTestEngine(t)
	src.Apply(mixedBatch(0))
	src.Apply(mixedBatch(1))
	var records [][]byte
	if err := src.MarshalStreams(func(r []byte) error {
		records = append(records, slices.Clone(r))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range records {
		for cut := 0; cut < len(rec); cut++ {
			if err := newTestEngine(t).RestoreStream(rec[:cut]); err == nil {
				t.Fatalf("record truncated to %d of %d bytes accepted", cut, len(rec))
			}
		}
		if err := newTestEngine(t).RestoreStream(append(slices.Clone(rec), 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("record with a trailing byte: %v", err)
		}
		bad := slices.Clone(rec)
		bad[0] = 9
		if err := newTestEngine(t).RestoreStream(bad); err == nil || !strings.Contains(err.Error(), "version") {
			t.Fatalf("record with version 9: %v", err)
		}
	}
}

// newestSample is the latest sample time among points.
func newestSample(points []emitted) pcommon.Timestamp {
	var newest pcommon.Timestamp
	for _, p := range points {
		newest = max(newest, p.ts)
	}
	return newest
}

func TestEmitAfterKeepsSamplesLaterThanEmitsLostWithTheProcess(t *testing.T) {
	now := epoch.Add(time.Hour)
	crashed := newTestEngine(t)
	crashed.Apply(mixedBatch(0))
	emitPoints(t, crashed, now)

	// The checkpoint is taken here; what the process emits after it is
	// sent to the backend but never recorded.
	checkpoint := newTestEngine(t)
	restoreInto(t, crashed, checkpoint)
	var lost []emitted
	for range 3 {
		out := pmetric.NewMetrics()
		crashed.EmitAll(now, out)
		lost = append(lost, collect(t, out)...)
	}
	newestLost := newestSample(lost)

	withoutFloor := newTestEngine(t)
	restoreInto(t, checkpoint, withoutFloor)
	out := pmetric.NewMetrics()
	withoutFloor.EmitAll(now, out)
	if newestSample(collect(t, out)) > newestLost {
		t.Fatalf("the scenario does not reproduce a sample older than a lost one")
	}

	restarted := newTestEngine(t)
	restoreInto(t, checkpoint, restarted)
	restarted.EmitAfter(newestLost.AsTime())
	out = pmetric.NewMetrics()
	restarted.EmitAll(now, out)
	for _, p := range collect(t, out) {
		if p.ts <= newestLost {
			t.Errorf("%s%s: sample at %s is not later than the lost sample at %s", p.metric, p.attrs, p.ts, newestLost)
		}
	}

	// New data later than the floor keeps its own time: the end of the
	// round's interval, or of the second writer's, offset by 5 s.
	restarted.Apply(mixedBatch(400))
	for _, p := range emitPoints(t, restarted, now) {
		if p.ts != at(4010) && p.ts != at(4015) {
			t.Errorf("%s%s: sample at %s, want the point's own end %s or %s", p.metric, p.attrs, p.ts, at(4010), at(4015))
		}
	}
}
