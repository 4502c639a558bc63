package state_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// These tests run the store against the real conversion engine: what the
// engine writes into its stream records must be enough to continue every
// series exactly.

var epoch = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// clock is the engine's wall clock, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func newEngine(t testing.TB, c *clock) *convert.Engine {
	t.Helper()
	e, err := convert.NewEngine(convert.Config{MaxStale: 10 * time.Minute, LateDataWindow: workerconfig.GatewayRetryBudget, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type worker struct {
	store  *state.Store
	engine *convert.Engine
}

// startWorker opens dir and restores it into a new engine.
func startWorker(t testing.TB, dir string, c *clock) (*worker, state.RestoreReport) {
	t.Helper()
	s, err := state.Open(state.Options{Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, c)
	report, err := s.Restore(context.Background(), e, func(md pmetric.Metrics) { e.Apply(md) })
	if err != nil {
		t.Fatal(err)
	}
	return &worker{store: s, engine: e}, report
}

// ingest follows the worker's ingest order: journal, apply, done.
func (w *worker) ingest(t testing.TB, md pmetric.Metrics) convert.Result {
	t.Helper()
	done, err := w.store.Record(context.Background(), md)
	if err != nil {
		t.Fatal(err)
	}
	res := w.engine.Apply(md)
	done()
	return res
}

func (w *worker) crash(t testing.TB) {
	t.Helper()
	if err := w.store.Close(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func (w *worker) stop(t testing.TB) {
	t.Helper()
	if err := w.store.Close(context.Background(), w.engine); err != nil {
		t.Fatal(err)
	}
}

// claudeCodeRequest is one export of a Claude Code process: token and cost
// counters per model and type, and a request duration histogram, for the
// interval (step-1, step] seconds after epoch.
func claudeCodeRequest(session string, step int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	rm.Resource().Attributes().PutStr("host.arch", "arm64")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	sm.Scope().SetVersion("2.1.0")
	start := pcommon.NewTimestampFromTime(epoch.Add(time.Duration(step-1) * time.Second))
	end := pcommon.NewTimestampFromTime(epoch.Add(time.Duration(step) * time.Second))

	tokens := sm.Metrics().AppendEmpty()
	tokens.SetName("claude_code.token.usage")
	tokens.SetUnit("tokens")
	sum := tokens.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	for _, typ := range []string{"input", "output", "cacheRead"} {
		pt := sum.DataPoints().AppendEmpty()
		pt.Attributes().PutStr("session.id", session)
		pt.Attributes().PutStr("model", "claude-sonnet-4-5")
		pt.Attributes().PutStr("type", typ)
		pt.SetStartTimestamp(start)
		pt.SetTimestamp(end)
		pt.SetDoubleValue(float64(step*len(typ)) + 0.25)
	}

	duration := sm.Metrics().AppendEmpty()
	duration.SetName("claude_code.api_request.duration")
	duration.SetUnit("ms")
	hist := duration.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	pt := hist.DataPoints().AppendEmpty()
	pt.Attributes().PutStr("session.id", session)
	pt.SetStartTimestamp(start)
	pt.SetTimestamp(end)
	pt.ExplicitBounds().FromRaw([]float64{100, 1000, 10000})
	pt.BucketCounts().FromRaw([]uint64{uint64(step % 2), 1, uint64(step % 3), 0})
	pt.SetCount(uint64(step%2 + 1 + step%3))
	pt.SetSum(float64(step) * 321)
	return md
}

// flatten renders every point of md as one line, sorted, so outputs of two
// engines compare regardless of the order they were built in.
func flatten(md pmetric.Metrics) []string {
	var out []string
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			prefix := fmt.Sprint(rm.Resource().Attributes().AsRaw(), sm.Scope().Name(), sm.Scope().Version())
			ms := sm.Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					pts := m.Sum().DataPoints()
					for p := 0; p < pts.Len(); p++ {
						pt := pts.At(p)
						out = append(out, fmt.Sprintf("%s %s %s %v start=%d ts=%d value=%v", prefix, m.Name(),
							m.Sum().AggregationTemporality(), pt.Attributes().AsRaw(), pt.StartTimestamp(), pt.Timestamp(), pt.DoubleValue()))
					}
				case pmetric.MetricTypeHistogram:
					pts := m.Histogram().DataPoints()
					for p := 0; p < pts.Len(); p++ {
						pt := pts.At(p)
						out = append(out, fmt.Sprintf("%s %s %s %v start=%d ts=%d count=%d sum=%v buckets=%v", prefix, m.Name(),
							m.Histogram().AggregationTemporality(), pt.Attributes().AsRaw(), pt.StartTimestamp(), pt.Timestamp(),
							pt.Count(), pt.Sum(), pt.BucketCounts().AsRaw()))
					}
				default:
					out = append(out, fmt.Sprintf("%s %s unexpected type %s", prefix, m.Name(), m.Type()))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func emit(e *convert.Engine, now time.Time, all bool) []string {
	out := pmetric.NewMetrics()
	if all {
		e.EmitAll(now, out)
	} else {
		e.Emit(now, out)
	}
	return flatten(out)
}

func sameOutput(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: reference emitted nothing", what)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s differs from the run without restart\n got: %q\nwant: %q", what, got, want)
	}
}

func TestRestoreThenContinueEmitsWhatARunWithoutRestartEmits(t *testing.T) {
	c := &clock{now: epoch}
	reference := newEngine(t, c)
	dir := t.TempDir()
	w, _ := startWorker(t, dir, c)
	sessions := []string{"s-1", "s-2", "s-3"}
	// idle only writes in step 1: its state comes from the checkpoint alone.
	idle := "s-idle"

	for step := 1; step <= 10; step++ {
		c.Set(epoch.Add(time.Duration(step) * time.Second))
		for _, session := range sessions {
			reference.Apply(claudeCodeRequest(session, step))
			w.ingest(t, claudeCodeRequest(session, step))
		}
		if step == 1 {
			reference.Apply(claudeCodeRequest(idle, step))
			w.ingest(t, claudeCodeRequest(idle, step))
		}
		now := c.Now().Add(500 * time.Millisecond)
		want := emit(reference, now, false)
		got := emit(w.engine, now, false)
		sameOutput(t, fmt.Sprintf("emit after step %d", step), got, want)

		switch step {
		case 4:
			if _, err := w.store.Checkpoint(context.Background(), w.engine); err != nil {
				t.Fatal(err)
			}
		case 6:
			// Killed after step 6: steps 5 and 6 exist only in the log.
			w.crash(t)
			var report state.RestoreReport
			w, report = startWorker(t, dir, c)
			if report.Streams != 4*4 || report.Replayed != 2*len(sessions) {
				t.Fatalf("restore = %+v, want 16 streams from the checkpoint and 6 requests replayed", report)
			}
		}
	}
	defer w.stop(t)
	end := c.Now().Add(time.Second)
	sameOutput(t, "final emit of every stream", emit(w.engine, end, true), emit(reference, end, true))
}

func TestRedeliveryAfterRestoreIsStillADuplicate(t *testing.T) {
	for _, shutdown := range []string{"clean", "crash"} {
		t.Run(shutdown, func(t *testing.T) {
			c := &clock{now: epoch.Add(time.Second)}
			dir := t.TempDir()
			w, _ := startWorker(t, dir, c)
			first := w.ingest(t, claudeCodeRequest("s-1", 1))
			if first.Applied != 4 {
				t.Fatalf("first delivery applied %d points, want 4", first.Applied)
			}
			before := emit(w.engine, c.Now(), true)
			if shutdown == "clean" {
				w.stop(t)
			} else {
				w.crash(t)
			}

			w, _ = startWorker(t, dir, c)
			defer w.stop(t)
			again := w.ingest(t, claudeCodeRequest("s-1", 1))
			if again.Duplicates != 4 || again.Applied != 0 {
				t.Fatalf("redelivery after restore: %+v, want 4 duplicates and nothing applied", again)
			}
			after := emit(w.engine, c.Now(), true)
			if len(before) != len(after) {
				t.Fatalf("stream count changed: %d before, %d after", len(before), len(after))
			}
			for i := range before {
				// EmitAll moves a repeated sample 1 ms later; values and start
				// times must be those from before the restart.
				if trimTimestamp(before[i]) != trimTimestamp(after[i]) {
					t.Errorf("point changed by the redelivery\nbefore: %s\n after: %s", before[i], after[i])
				}
			}
		})
	}
}

var sampleTime = regexp.MustCompile(` ts=\d+`)

func trimTimestamp(line string) string { return sampleTime.ReplaceAllString(line, "") }

func TestRequestsAppliedDuringCheckpointsAreNeitherLostNorDoubledWithTheRealEngine(t *testing.T) {
	c := &clock{now: epoch}
	dir := t.TempDir()
	w, _ := startWorker(t, dir, c)
	ctx, cancel := context.WithCancel(context.Background())
	checkpoints := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			if _, err := w.store.Checkpoint(ctx, w.engine); err != nil && ctx.Err() == nil {
				t.Errorf("Checkpoint: %v", err)
			}
			n++
		}
		checkpoints <- n
	}()
	var wg sync.WaitGroup
	for writer := range 6 {
		wg.Go(func() {
			for step := 1; step <= 60; step++ {
				md := claudeCodeRequest(fmt.Sprintf("writer-%d", writer), step)
				done, err := w.store.Record(context.Background(), md)
				if err != nil {
					t.Error(err)
					return
				}
				if step%7 == 0 {
					time.Sleep(time.Millisecond)
				}
				if res := w.engine.Apply(md); res.Applied != 4 {
					t.Errorf("step %d applied %d points", step, res.Applied)
				}
				done()
			}
		})
	}
	wg.Wait()
	cancel()
	if n := <-checkpoints; n < 2 {
		t.Fatalf("only %d checkpoints ran during ingestion", n)
	}
	now := epoch.Add(2 * time.Minute)
	want := emit(w.engine, now, true)
	w.crash(t)

	restored, _ := startWorker(t, dir, c)
	defer restored.stop(t)
	sameOutput(t, "state after crash, restore and replay", emit(restored.engine, now, true), want)
}

func TestStaleStreamIsNotResurrectedByARestore(t *testing.T) {
	c := &clock{now: epoch.Add(time.Second)}
	dir := t.TempDir()
	w, _ := startWorker(t, dir, c)
	w.ingest(t, claudeCodeRequest("s-1", 1))
	emit(w.engine, c.Now(), false)
	w.stop(t)

	// Down for 11 minutes: longer than maxStale since the last point.
	c.Set(epoch.Add(11 * time.Minute))
	w, report := startWorker(t, dir, c)
	defer w.stop(t)
	if report.Streams != 4 {
		t.Fatalf("restored %d streams, want 4", report.Streams)
	}
	res := w.engine.Emit(c.Now(), pmetric.NewMetrics())
	if res.Expired != 4 || w.engine.Streams() != 0 {
		t.Errorf("emit after restore: %+v, %d streams left; want all 4 forgotten", res, w.engine.Streams())
	}
}

func TestFirstSampleAfterRestoreIsLaterThanTheLastBeforeIt(t *testing.T) {
	c := &clock{now: epoch.Add(time.Second)}
	dir := t.TempDir()
	w, _ := startWorker(t, dir, c)
	w.ingest(t, claudeCodeRequest("s-1", 1))
	// Repeated emits of an unchanged stream move its sample time forward.
	emit(w.engine, c.Now(), true)
	before := pmetric.NewMetrics()
	w.engine.EmitAll(c.Now(), before)
	w.stop(t)

	w, _ = startWorker(t, dir, c)
	defer w.stop(t)
	after := pmetric.NewMetrics()
	w.engine.EmitAll(c.Now(), after)
	last := timestamps(before)
	first := timestamps(after)
	if len(last) != 4 || len(first) != 4 {
		t.Fatalf("emitted %d points before, %d after", len(last), len(first))
	}
	for key, ts := range first {
		if ts <= last[key] {
			t.Errorf("%s: first sample after restore at %d, not after the last before it at %d", key, ts, last[key])
		}
	}
}

func timestamps(md pmetric.Metrics) map[string]pcommon.Timestamp {
	out := map[string]pcommon.Timestamp{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for p := 0; p < m.Sum().DataPoints().Len(); p++ {
						pt := m.Sum().DataPoints().At(p)
						out[fmt.Sprint(m.Name(), pt.Attributes().AsRaw())] = pt.Timestamp()
					}
				case pmetric.MetricTypeHistogram:
					for p := 0; p < m.Histogram().DataPoints().Len(); p++ {
						pt := m.Histogram().DataPoints().At(p)
						out[fmt.Sprint(m.Name(), pt.Attributes().AsRaw())] = pt.Timestamp()
					}
				}
			}
		}
	}
	return out
}
