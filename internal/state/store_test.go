package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/state/checkpoint"
	"github.com/deltapipeline/deltapipeline/internal/state/wal"
)

// counters is a minimal converter behind the StreamSource/StreamSink ports:
// it sums delta Sum points per stream (metric name + "key" attribute) and,
// like the real engine, ignores a point whose interval ends no later than the
// last one applied to its stream.
type counters struct {
	mu      sync.Mutex
	streams map[string]*counter
	refuse  func(key string) error
	// onMarshal, if set, sees the totals when a snapshot starts.
	onMarshal func(map[string]float64)
}

type counter struct {
	total   float64
	lastEnd uint64
}

func newCounters() *counters { return &counters{streams: map[string]*counter{}} }

func (c *counters) apply(md pmetric.Metrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() != pmetric.MetricTypeSum || m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityDelta {
					continue
				}
				pts := m.Sum().DataPoints()
				for p := 0; p < pts.Len(); p++ {
					pt := pts.At(p)
					v, _ := pt.Attributes().Get("key")
					key := m.Name() + "/" + v.Str()
					s := c.streams[key]
					if s == nil {
						s = &counter{}
						c.streams[key] = s
					}
					if end := uint64(pt.Timestamp()); end > s.lastEnd {
						s.total += pt.DoubleValue()
						s.lastEnd = end
					}
				}
			}
		}
	}
}

func (c *counters) MarshalStreams(fn func([]byte) error) error {
	if c.onMarshal != nil {
		c.onMarshal(c.snapshot())
	}
	c.mu.Lock()
	type entry struct {
		key string
		counter
	}
	copied := make([]entry, 0, len(c.streams))
	for k, s := range c.streams {
		copied = append(copied, entry{k, *s})
	}
	c.mu.Unlock()
	var buf []byte
	for _, e := range copied {
		buf = binary.AppendUvarint(buf[:0], uint64(len(e.key)))
		buf = append(buf, e.key...)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(e.total))
		buf = binary.LittleEndian.AppendUint64(buf, e.lastEnd)
		if err := fn(buf); err != nil {
			return err
		}
	}
	return nil
}

func (c *counters) RestoreStream(record []byte) error {
	n, k := binary.Uvarint(record)
	if k <= 0 || len(record) != k+int(n)+16 {
		return fmt.Errorf("stream record of %d bytes is malformed", len(record))
	}
	key := string(record[k : k+int(n)])
	rest := record[k+int(n):]
	if c.refuse != nil {
		if err := c.refuse(key); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streams[key] = &counter{
		total:   math.Float64frombits(binary.LittleEndian.Uint64(rest[:8])),
		lastEnd: binary.LittleEndian.Uint64(rest[8:]),
	}
	return nil
}

func (c *counters) snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.streams))
	for k, s := range c.streams {
		out[k] = s.total
	}
	return out
}

// deltaRequest builds a request with one delta point per key for the
// interval ending at second end.
func deltaRequest(end int, value float64, keys ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	for _, key := range keys {
		pt := sum.DataPoints().AppendEmpty()
		pt.Attributes().PutStr("key", key)
		pt.SetStartTimestamp(pcommon.Timestamp(time.Duration(end-1) * time.Second))
		pt.SetTimestamp(pcommon.Timestamp(time.Duration(end) * time.Second))
		pt.SetDoubleValue(value)
	}
	return md
}

type fixture struct {
	dir string
	reg *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	return &fixture{dir: t.TempDir()}
}

// open opens the store and restores it into a fresh engine.
func (f *fixture) open(t *testing.T) (*Store, *counters, RestoreReport) {
	t.Helper()
	f.reg = prometheus.NewRegistry()
	s, err := Open(Options{Directory: f.dir, Registerer: f.reg})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	engine := newCounters()
	report, err := s.Restore(context.Background(), engine, engine.apply)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return s, engine, report
}

// ingest follows the worker's order: journal, apply, done.
func ingest(t *testing.T, s *Store, engine *counters, md pmetric.Metrics) {
	t.Helper()
	done, err := s.Record(context.Background(), md)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	engine.apply(md)
	done()
}

// crash releases the store the way a killed process would leave its disk:
// everything acknowledged is on disk, no final checkpoint is written.
func crash(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(context.Background(), nil); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func sameTotals(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored totals differ\n got: %v\nwant: %v", got, want)
	}
}

func TestFreshDirectoryStartsEmptyAndReady(t *testing.T) {
	f := newFixture(t)
	s, engine, report := f.open(t)
	defer s.Close(context.Background(), engine)
	if report.Streams != 0 || report.Damaged != nil || report.Replayed != 0 {
		t.Errorf("report = %+v", report)
	}
	if s.Status() != "ready" || s.Healthy() != nil {
		t.Errorf("status %q, healthy %v", s.Status(), s.Healthy())
	}
}

func TestCleanShutdownRestoresFromTheCheckpointAlone(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 2, "a", "b"))
	ingest(t, s, engine, deltaRequest(2, 3, "a"))
	want := engine.snapshot()
	if err := s.Close(context.Background(), engine); err != nil {
		t.Fatal(err)
	}

	s2, engine2, report := f.open(t)
	defer s2.Close(context.Background(), nil)
	sameTotals(t, engine2.snapshot(), want)
	if report.Streams != 2 || report.Replayed != 0 || report.CheckpointCreated.IsZero() {
		t.Errorf("report = %+v, want 2 streams from the checkpoint and nothing replayed", report)
	}
}

func TestCrashAfterACheckpointReplaysOnlyWhatCameAfterIt(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 2, "a", "b"))
	if _, err := s.Checkpoint(context.Background(), engine); err != nil {
		t.Fatal(err)
	}
	ingest(t, s, engine, deltaRequest(2, 5, "a"))
	ingest(t, s, engine, deltaRequest(3, 7, "c"))
	want := engine.snapshot()
	crash(t, s)

	s2, engine2, report := f.open(t)
	defer s2.Close(context.Background(), nil)
	sameTotals(t, engine2.snapshot(), want)
	if report.Streams != 2 || report.Replayed != 2 {
		t.Errorf("report = %+v, want 2 streams restored and 2 records replayed", report)
	}
	if got := testutil.ToFloat64(s2.metrics.walReplayedRecords); got != 2 {
		t.Errorf("replayed records metric = %v", got)
	}
}

func TestCrashWithoutAnyCheckpointReplaysEverything(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	for i := 1; i <= 5; i++ {
		ingest(t, s, engine, deltaRequest(i, float64(i), "a"))
	}
	want := engine.snapshot()
	crash(t, s)
	s2, engine2, report := f.open(t)
	defer s2.Close(context.Background(), nil)
	sameTotals(t, engine2.snapshot(), want)
	if report.Replayed != 5 {
		t.Errorf("replayed %d records, want 5", report.Replayed)
	}
}

func TestCheckpointRemovesTheSegmentsItCovers(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	defer s.Close(context.Background(), nil)
	ingest(t, s, engine, deltaRequest(1, 1, "a"))
	report, err := s.Checkpoint(context.Background(), engine)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := wal.Segments(filepath.Join(f.dir, WALDirectory))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != fmt.Sprint([]uint64{report.WALSegment}) {
		t.Errorf("segments %v left after a checkpoint replaying from %d", seqs, report.WALSegment)
	}
	if got := testutil.ToFloat64(s.metrics.checkpointStreams); got != 1 {
		t.Errorf("checkpoint streams metric = %v", got)
	}
	if testutil.ToFloat64(s.metrics.checkpointLastSuccess) == 0 {
		t.Error("last success timestamp not set")
	}
	if got := testutil.ToFloat64(s.metrics.checkpointBytes); got != float64(report.Bytes) || got == 0 {
		t.Errorf("checkpoint bytes metric = %v, report %d", got, report.Bytes)
	}
}

// Requests applied while checkpoints are being written are neither lost nor
// counted twice after a crash, restore and replay.
func TestCheckpointsDuringIngestionLoseAndDuplicateNothing(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	checkpoints := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			if _, err := s.Checkpoint(ctx, engine); err != nil && ctx.Err() == nil {
				t.Errorf("Checkpoint: %v", err)
			}
			n++
		}
		checkpoints <- n
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 1; i <= 150; i++ {
				md := deltaRequest(i, 1, fmt.Sprintf("w%d-a", w), fmt.Sprintf("w%d-b", w))
				done, err := s.Record(context.Background(), md)
				if err != nil {
					t.Error(err)
					return
				}
				// A slow Apply widens the window in which a checkpoint
				// could snapshot before an acknowledged request lands.
				time.Sleep(time.Duration(i%3) * time.Millisecond)
				engine.apply(md)
				done()
			}
		})
	}
	wg.Wait()
	cancel()
	if n := <-checkpoints; n < 2 {
		t.Fatalf("only %d checkpoints ran during ingestion", n)
	}
	want := engine.snapshot()
	for k, v := range want {
		if v != 150 {
			t.Fatalf("live total of %s is %v, want 150", k, v)
		}
	}
	crash(t, s)

	s2, engine2, _ := f.open(t)
	defer s2.Close(context.Background(), nil)
	sameTotals(t, engine2.snapshot(), want)
}

func TestCheckpointWaitsForAcknowledgedRequestsStillBeingApplied(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	slow := deltaRequest(1, 10, "slow")
	doneSlow, err := s.Record(context.Background(), slow)
	if err != nil {
		t.Fatal(err)
	}
	var seen map[string]float64
	engine.onMarshal = func(totals map[string]float64) { seen = totals }
	result := make(chan error, 1)
	go func() {
		_, err := s.Checkpoint(context.Background(), engine)
		result <- err
	}()
	// Once the log rotated, new requests land in the segment the
	// checkpoint will name as the replay start.
	waitUntil(t, func() bool { return s.walStats().Segments == 2 })
	ingest(t, s, engine, deltaRequest(1, 1, "during"))
	engine.apply(slow)
	doneSlow()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if seen["claude_code.token.usage/slow"] != 10 {
		t.Fatalf("snapshot started before an acknowledged request was applied: %v", seen)
	}
	want := engine.snapshot()
	crash(t, s)
	s2, engine2, _ := f.open(t)
	defer s2.Close(context.Background(), nil)
	sameTotals(t, engine2.snapshot(), want)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDamagedCheckpointIsSetAsideCountedAndTheLogStillReplayed(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 4, "a"))
	if _, err := s.Checkpoint(context.Background(), engine); err != nil {
		t.Fatal(err)
	}
	ingest(t, s, engine, deltaRequest(2, 6, "b"))
	crash(t, s)

	path := filepath.Join(f.dir, CheckpointFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	s2, engine2, report := f.open(t)
	defer s2.Close(context.Background(), nil)
	if !errors.Is(report.Damaged, checkpoint.ErrChecksum) {
		t.Errorf("Damaged = %v, want a checksum error", report.Damaged)
	}
	if !strings.HasPrefix(report.SetAside, path+".corrupt-") {
		t.Errorf("set aside as %q", report.SetAside)
	}
	if kept, err := os.ReadFile(report.SetAside); err != nil || !bytes.Equal(kept, data) {
		t.Errorf("damaged file not kept intact for inspection: %v", err)
	}
	if got := testutil.ToFloat64(s2.metrics.restoreFailures); got != 1 {
		t.Errorf("restore failures = %v, want 1", got)
	}
	// Only what the log still holds comes back: the series restarts.
	sameTotals(t, engine2.snapshot(), map[string]float64{"claude_code.token.usage/b": 6})
	if s2.Status() != "ready" {
		t.Errorf("status %q", s2.Status())
	}
}

func TestRefusedRecordAfterPartialRestoreAsksForAFreshEngine(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 1, "a", "b", "c", "d"))
	if err := s.Close(context.Background(), engine); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(Options{Directory: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(context.Background(), nil)
	tainted := newCounters()
	calls := 0
	tainted.refuse = func(string) error {
		if calls++; calls == 3 {
			return errors.New("unknown stream kind 9")
		}
		return nil
	}
	report, err := s2.Restore(context.Background(), tainted, tainted.apply)
	if !errors.Is(err, ErrDiscardSink) || !strings.Contains(err.Error(), "unknown stream kind 9") {
		t.Fatalf("Restore = %v, want ErrDiscardSink naming the refusal", err)
	}
	if report.Streams != 2 || report.SetAside == "" {
		t.Errorf("report = %+v", report)
	}
	fresh := newCounters()
	report, err = s2.Restore(context.Background(), fresh, fresh.apply)
	if err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	if len(fresh.snapshot()) != 0 || report.Damaged != nil {
		t.Errorf("fresh engine holds %v, report %+v", fresh.snapshot(), report)
	}
}

func TestRefusedFirstRecordStartsEmptyWithoutAskingForAFreshEngine(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 1, "a"))
	if err := s.Close(context.Background(), engine); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Directory: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(context.Background(), nil)
	refusing := newCounters()
	refusing.refuse = func(string) error { return errors.New("record from a newer engine") }
	report, err := s2.Restore(context.Background(), refusing, refusing.apply)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if report.Damaged == nil || report.Streams != 0 {
		t.Errorf("report = %+v", report)
	}
}

func TestTornLogTailIsReportedAndTheRestReplayed(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 1, "a"))
	ingest(t, s, engine, deltaRequest(2, 1, "a"))
	crash(t, s)
	walDir := filepath.Join(f.dir, WALDirectory)
	seqs, _ := wal.Segments(walDir)
	last := filepath.Join(walDir, wal.SegmentName(seqs[len(seqs)-1]))
	info, _ := os.Stat(last)
	if err := os.Truncate(last, info.Size()-3); err != nil {
		t.Fatal(err)
	}

	s2, engine2, report := f.open(t)
	defer s2.Close(context.Background(), nil)
	sameTotals(t, engine2.snapshot(), map[string]float64{"claude_code.token.usage/a": 1})
	if len(report.WALDamage) != 1 || !report.WALDamage[0].Tail {
		t.Errorf("WALDamage = %+v", report.WALDamage)
	}
	if got := testutil.ToFloat64(s2.metrics.walDamage.WithLabelValues("tail")); got != 1 {
		t.Errorf("torn tail metric = %v", got)
	}
}

func TestOnlyDeltaDataIsJournaled(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)

	gauges := pmetric.NewMetrics()
	g := gauges.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("process.memory")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(5)
	ingest(t, s, engine, gauges)
	if got := testutil.ToFloat64(s.metrics.walAppendedRecords); got != 0 {
		t.Fatalf("a request without delta data was journaled (%v records)", got)
	}

	mixed := deltaRequest(1, 2, "a")
	g.CopyTo(mixed.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty())
	cumulative := mixed.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	cumulative.SetName("requests")
	cumulative.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cumulative.Sum().DataPoints().AppendEmpty().SetIntValue(9)
	ingest(t, s, engine, mixed)
	crash(t, s)

	var journaled []pmetric.Metrics
	var unmarshal pmetric.ProtoUnmarshaler
	if _, err := wal.Replay(filepath.Join(f.dir, WALDirectory), 0, func(_ uint64, p []byte) error {
		md, err := unmarshal.UnmarshalMetrics(p)
		journaled = append(journaled, md)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(journaled) != 1 {
		t.Fatalf("%d records journaled, want 1", len(journaled))
	}
	md := journaled[0]
	if md.ResourceMetrics().Len() != 1 || md.MetricCount() != 1 {
		t.Fatalf("journaled %d resources, %d metrics; want only the delta metric", md.ResourceMetrics().Len(), md.MetricCount())
	}
	rm := md.ResourceMetrics().At(0)
	if v, _ := rm.Resource().Attributes().Get("service.name"); v.Str() != "claude-code" {
		t.Error("resource attributes of the journaled delta metric lost")
	}
	if name := rm.ScopeMetrics().At(0).Metrics().At(0).Name(); name != "claude_code.token.usage" {
		t.Errorf("journaled metric %q", name)
	}
}

func TestSecondProcessCannotOpenTheSameDirectory(t *testing.T) {
	f := newFixture(t)
	s, _, _ := f.open(t)
	defer s.Close(context.Background(), nil)
	_, err := Open(Options{Directory: f.dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another worker process") {
		t.Fatalf("second Open = %v", err)
	}
}

func TestRecordAndCheckpointBeforeRestoreAreRefused(t *testing.T) {
	s, err := Open(Options{Directory: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), nil)
	if _, err := s.Record(context.Background(), deltaRequest(1, 1, "a")); err == nil {
		t.Error("Record before Restore accepted")
	}
	if _, err := s.Checkpoint(context.Background(), newCounters()); err == nil {
		t.Error("Checkpoint before Restore accepted")
	}
	if !strings.Contains(s.Status(), "not restored") || s.Healthy() == nil {
		t.Errorf("status %q, healthy %v", s.Status(), s.Healthy())
	}
}

func TestLeftoverTemporaryCheckpointIsRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, CheckpointFile+".tmp-42")
	if err := os.WriteFile(leftover, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), nil)
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary checkpoint still present: %v", err)
	}
}

func TestEmptyDirectoryIsRefused(t *testing.T) {
	if _, err := Open(Options{}); err == nil || !strings.Contains(err.Error(), "state.directory") {
		t.Errorf("Open without a directory = %v", err)
	}
}

func TestSinkCanDeclineSingleStreamsWithoutRefusingTheCheckpoint(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	ingest(t, s, engine, deltaRequest(1, 1, "a", "b", "c"))
	if err := s.Close(context.Background(), engine); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Directory: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(context.Background(), nil)
	limited := newCounters()
	limited.refuse = func(key string) error {
		if strings.HasSuffix(key, "/b") {
			return fmt.Errorf("stream limit reached: %w", ErrSkipStream)
		}
		return nil
	}
	report, err := s2.Restore(context.Background(), limited, limited.apply)
	if err != nil {
		t.Fatal(err)
	}
	if report.Streams != 2 || report.Skipped != 1 || report.Damaged != nil {
		t.Errorf("report = %+v, want 2 restored, 1 skipped, no damage", report)
	}
	if got := testutil.ToFloat64(s2.metrics.skippedStreams); got != 1 {
		t.Errorf("skipped streams metric = %v", got)
	}
	if _, err := os.Stat(filepath.Join(f.dir, CheckpointFile)); err != nil {
		t.Errorf("checkpoint was set aside: %v", err)
	}
}

// failingSource is a stream source whose snapshot fails, as an engine
// would on a bug or an encoding error.
type failingSource struct{ err error }

func (f failingSource) MarshalStreams(func([]byte) error) error { return f.err }

func TestFailedCheckpointIsReportedUntilOneSucceedsWithoutRefusingRequests(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)
	defer s.Close(context.Background(), nil)
	ingest(t, s, engine, deltaRequest(10, 1, "a"))
	if err := s.CheckpointFailure(); err != nil {
		t.Fatalf("CheckpointFailure before any checkpoint = %v", err)
	}

	broken := failingSource{errors.New("snapshot refused")}
	for n := 1; n <= 2; n++ {
		if _, err := s.Checkpoint(context.Background(), broken); err == nil {
			t.Fatal("a checkpoint whose snapshot failed succeeded")
		}
		err := s.CheckpointFailure()
		if err == nil || !strings.Contains(err.Error(), "snapshot refused") || !strings.Contains(err.Error(), fmt.Sprintf("last %d checkpoint", n)) {
			t.Errorf("CheckpointFailure after %d failures = %v", n, err)
		}
		if got := testutil.ToFloat64(s.metrics.checkpointsFailing); got != float64(n) {
			t.Errorf("checkpoint_consecutive_failures after %d failures = %v", n, got)
		}
		if err := s.Healthy(); err != nil {
			t.Errorf("a failed checkpoint made the store unhealthy: %v", err)
		}
		ingest(t, s, engine, deltaRequest(10+10*n, 1, "a"))
	}

	if _, err := s.Checkpoint(context.Background(), engine); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckpointFailure(); err != nil {
		t.Errorf("CheckpointFailure after a success = %v", err)
	}
	if got := testutil.ToFloat64(s.metrics.checkpointsFailing); got != 0 {
		t.Errorf("checkpoint_consecutive_failures after a success = %v", got)
	}
	if got := testutil.ToFloat64(s.metrics.checkpointFailures); got != 2 {
		t.Errorf("checkpoint_failures_total = %v, want 2", got)
	}
}

func TestRunCheckpointsOnItsCadenceUntilTheContextEnds(t *testing.T) {
	f := newFixture(t)
	s, err := Open(Options{Directory: f.dir, CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), nil)
	engine := newCounters()
	if err := s.Run(context.Background(), engine); err == nil || !strings.Contains(err.Error(), "not restored") {
		t.Errorf("Run before Restore = %v, want a refusal", err)
	}
	if _, err := s.Restore(context.Background(), engine, engine.apply); err != nil {
		t.Fatal(err)
	}
	ingest(t, s, engine, deltaRequest(10, 4, "a"))

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, engine) }()
	waitUntil(t, func() bool { return testutil.ToFloat64(s.metrics.checkpointStreams) == 1 })
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run after its context ended = %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, CheckpointFile)); err != nil {
		t.Errorf("no checkpoint on disk after Run: %v", err)
	}
}

func TestRunWithoutACheckpointIntervalIsRefused(t *testing.T) {
	f := newFixture(t)
	s, _, _ := f.open(t)
	defer s.Close(context.Background(), nil)
	if err := s.Run(context.Background(), newCounters()); err == nil || !strings.Contains(err.Error(), "state.checkpointInterval") {
		t.Errorf("Run without an interval = %v, want an error naming state.checkpointInterval", err)
	}
	if _, err := Open(Options{Directory: t.TempDir(), CheckpointInterval: -time.Second}); err == nil || !strings.Contains(err.Error(), "state.checkpointInterval") {
		t.Errorf("Open with a negative interval = %v, want an error naming state.checkpointInterval", err)
	}
}
