package state_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/state/statetest"
)

func walWritable(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "deltapipeline_worker_wal_writable" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("deltapipeline_worker_wal_writable is not registered")
	return 0
}

func TestFailedJournalWriteMakesTheStoreUnhealthyUntilTheLogRecovers(t *testing.T) {
	c := &clock{now: epoch.Add(time.Second)}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := state.Open(state.Options{Directory: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if got := walWritable(t, reg); got != 0 {
		t.Errorf("wal_writable before restore = %v, want 0", got)
	}
	e := newEngine(t, c)
	if _, err := s.Restore(context.Background(), e, func(md pmetric.Metrics) { e.Apply(md) }); err != nil {
		t.Fatal(err)
	}
	w := &worker{store: s, engine: e}
	w.ingest(t, claudeCodeRequest("s-1", 1))
	if err := s.Healthy(); err != nil || walWritable(t, reg) != 1 {
		t.Fatalf("healthy store: Healthy %v, wal_writable %v", err, walWritable(t, reg))
	}

	repair := statetest.BreakJournal(t, dir)
	for attempt := range 2 {
		if _, err := s.Record(context.Background(), claudeCodeRequest("s-1", 2)); err == nil {
			t.Fatalf("attempt %d: a request the log could not write was acknowledged", attempt)
		}
		err := s.Healthy()
		if err == nil || !strings.Contains(err.Error(), "write-ahead log") {
			t.Errorf("attempt %d: Healthy = %v, want the write-ahead log failure", attempt, err)
		}
		if got := walWritable(t, reg); got != 0 {
			t.Errorf("attempt %d: wal_writable = %v, want 0", attempt, got)
		}
		if !strings.Contains(s.Status(), "write-ahead log") {
			t.Errorf("attempt %d: Status = %q", attempt, s.Status())
		}
	}

	repair()
	w.ingest(t, claudeCodeRequest("s-1", 3))
	if err := s.Healthy(); err != nil || walWritable(t, reg) != 1 {
		t.Errorf("after repair: Healthy %v, wal_writable %v", err, walWritable(t, reg))
	}
	want := streamRecords(t, e)
	w.crash(t)
	restored, report := startWorker(t, dir, c)
	defer restored.stop(t)
	if report.Replayed != 2 {
		t.Errorf("replayed %d requests, want the 2 acknowledged ones", report.Replayed)
	}
	if got := streamRecords(t, restored.engine); strings.Join(got, "") != strings.Join(want, "") {
		t.Error("the state restored after the failure differs from the state before the crash")
	}
}
