package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type replayed struct {
	seq     uint64
	payload string
}

func replayAll(t *testing.T, dir string, from uint64) ([]replayed, ReplayStats) {
	t.Helper()
	var got []replayed
	stats, err := Replay(dir, from, func(seq uint64, p []byte) error {
		got = append(got, replayed{seq, string(p)})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got, stats
}

func openLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, 1, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func mustAppend(t *testing.T, l *Log, payload string) func() {
	t.Helper()
	done, err := l.Append(context.Background(), []byte(payload))
	if err != nil {
		t.Fatalf("Append(%q): %v", payload, err)
	}
	return done
}

func TestAppendRotateReplayInOrder(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	mustAppend(t, l, "a")()
	mustAppend(t, l, "b")()
	next, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if next != 2 {
		t.Fatalf("Rotate returned segment %d, want 2", next)
	}
	mustAppend(t, l, "c")()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	got, stats := replayAll(t, dir, 1)
	want := []replayed{{1, "a"}, {1, "b"}, {2, "c"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replayed %v, want %v", got, want)
	}
	if stats.Segments != 2 || stats.Records != 3 || len(stats.Damage) != 0 {
		t.Errorf("stats = %+v", stats)
	}
	got, _ = replayAll(t, dir, 2)
	if fmt.Sprint(got) != fmt.Sprint([]replayed{{2, "c"}}) {
		t.Errorf("replay from segment 2 gave %v", got)
	}
}

func TestOpenStartsAfterExistingSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	mustAppend(t, l, "before restart")()
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, Options{})
	mustAppend(t, l2, "after restart")()
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err := Segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[1 2 3]" {
		t.Errorf("segments %v, want [1 2 3]", seqs)
	}
	got, _ := replayAll(t, dir, 0)
	if fmt.Sprint(got) != fmt.Sprint([]replayed{{1, "before restart"}, {3, "after restart"}}) {
		t.Errorf("replayed %v", got)
	}
	if s := l2.Stats(); s.Segments != 3 {
		t.Errorf("Stats = %+v, want 3 segments", s)
	}
}

func TestConcurrentWritersAreAllDurableExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	synced, syncs := 0, 0
	l := openLog(t, dir, Options{OnSync: func(_ time.Duration, records, _ int) {
		mu.Lock()
		synced += records
		syncs++
		mu.Unlock()
	}})
	const writers, each = 16, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				done, err := l.Append(context.Background(), fmt.Appendf(nil, "w%02d-%03d", w, i))
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				done()
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, dir, 0)
	if len(got) != writers*each {
		t.Fatalf("replayed %d records, appended %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	next := map[string]int{}
	for _, r := range got {
		if seen[r.payload] {
			t.Fatalf("record %s replayed twice", r.payload)
		}
		seen[r.payload] = true
		var w, i int
		if _, err := fmt.Sscanf(r.payload, "w%02d-%03d", &w, &i); err != nil {
			t.Fatalf("record %q: %v", r.payload, err)
		}
		key := fmt.Sprint(w)
		if i != next[key] {
			t.Fatalf("writer %d: record %d replayed where %d was expected: order lost", w, i, next[key])
		}
		next[key]++
	}
	if synced != writers*each {
		t.Errorf("fsyncs covered %d records, want %d", synced, writers*each)
	}
	if syncs > writers*each {
		t.Errorf("%d fsyncs for %d records", syncs, writers*each)
	}
}

func TestOneFsyncServesEveryRequestWaitingForIt(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	var mu sync.Mutex
	var batches []int
	commits := func() int { mu.Lock(); defer mu.Unlock(); return len(batches) }
	l := openLog(t, dir, Options{OnSync: func(_ time.Duration, records, _ int) {
		mu.Lock()
		batches = append(batches, records)
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			// Hold the writer until the other requests are queued behind it.
			<-release
		}
	}})
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), []byte("first"))
		first <- err
	}()
	const waiting = 10
	results := make(chan error, waiting)
	waitFor(t, func() bool { return commits() == 1 })
	for i := range waiting {
		go func() {
			_, err := l.Append(context.Background(), fmt.Appendf(nil, "queued-%d", i))
			results <- err
		}()
	}
	waitFor(t, func() bool { return len(l.queue) == waiting })
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range waiting {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(batches) != fmt.Sprint([]int{1, waiting}) {
		t.Errorf("group commits wrote %v records, want [1 %d]", batches, waiting)
	}
}

// waitFor polls a condition that another goroutine makes true; it bounds the
// wait so a broken implementation fails instead of hanging.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCheckpointWaitsForRecordsOfOlderSegmentsToBeApplied(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	done := mustAppend(t, l, "not yet applied")
	next, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, "newer segment, not applied either")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.WaitApplied(cancelled, next); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied with an unapplied record returned %v", err)
	}

	result := make(chan error, 1)
	go func() { result <- l.WaitApplied(context.Background(), next) }()
	done()
	done() // a second call must not release another record
	if err := <-result; err != nil {
		t.Fatalf("WaitApplied after done: %v", err)
	}
	if err := l.WaitApplied(cancelled, next); err != nil {
		t.Errorf("records of the newer segment held up the wait: %v", err)
	}
	if err := l.WaitApplied(cancelled, next+1); err == nil {
		t.Error("the unapplied record of the current segment was not waited for")
	}
}

func TestAbandonedRequestDoesNotHoldUpCheckpoints(t *testing.T) {
	release := make(chan struct{})
	var syncs atomic.Int32
	l := openLog(t, t.TempDir(), Options{OnSync: func(time.Duration, int, int) {
		if syncs.Add(1) == 1 {
			<-release
		}
	}})
	first := make(chan func(), 1)
	go func() {
		done, err := l.Append(context.Background(), []byte("holds the writer"))
		if err != nil {
			t.Error(err)
		}
		first <- done
	}()
	waitFor(t, func() bool { return syncs.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, []byte("caller gives up"))
		result <- err
	}()
	waitFor(t, func() bool { return len(l.queue) == 1 })
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append after cancel = %v, want context.Canceled", err)
	}
	close(release)
	(<-first)()
	waitFor(t, func() bool { return syncs.Load() == 2 })
	next, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := l.WaitApplied(wait, next); err != nil {
		t.Fatalf("the abandoned record is still waited for: %v", err)
	}
}

func TestRemoveBeforeDeletesOnlyOlderSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	mustAppend(t, l, "old")()
	next, _ := l.Rotate()
	mustAppend(t, l, "new")()
	if err := l.RemoveBefore(next); err != nil {
		t.Fatal(err)
	}
	seqs, _ := Segments(dir)
	if fmt.Sprint(seqs) != fmt.Sprint([]uint64{next}) {
		t.Errorf("segments after RemoveBefore(%d): %v", next, seqs)
	}
	if s := l.Stats(); s.Segments != 1 || s.Bytes != segmentHeaderSize+recordHeaderSize+3 {
		t.Errorf("Stats = %+v", s)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, dir, 0)
	if fmt.Sprint(got) != fmt.Sprint([]replayed{{next, "new"}}) {
		t.Errorf("replayed %v", got)
	}
}

func TestAppendRefusesBadRecordsAndAppendsAfterClose(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	if _, err := l.Append(context.Background(), nil); err == nil {
		t.Error("empty record accepted")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), []byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Rotate(); !errors.Is(err, ErrClosed) {
		t.Errorf("Rotate after Close = %v, want ErrClosed", err)
	}
}

// writeSegments leaves a closed log in dir with the given records in
// segment 1 and, if more is set, one record in segment 2.
func writeSegments(t *testing.T, dir string, records []string, more bool) {
	t.Helper()
	l, err := Open(dir, 1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		mustAppend(t, l, r)()
	}
	if more {
		if _, err := l.Rotate(); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, "in segment 2")()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailIsTruncatedAndReportedOnce(t *testing.T) {
	records := []string{"one", "two", "three"}
	lastRecord := int64(segmentHeaderSize + 2*recordHeaderSize + len("one") + len("two"))
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   []string
		cutAt  int64
	}{
		{"record cut short", func(t *testing.T, path string) { truncateBy(t, path, 2) }, records[:2], lastRecord},
		{"record header cut short", func(t *testing.T, path string) { truncateBy(t, path, int64(len("three"))+3) }, records[:2], lastRecord},
		{"garbage after the last record", func(t *testing.T, path string) { appendBytes(t, path, []byte{5, 0, 0, 0, 1, 2}) }, records, lastRecord + recordHeaderSize + 5},
		{"last record's payload flipped", func(t *testing.T, path string) { flipByte(t, path, -1) }, records[:2], lastRecord},
		{"zero length record", func(t *testing.T, path string) { appendBytes(t, path, make([]byte, recordHeaderSize)) }, records, lastRecord + recordHeaderSize + 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSegments(t, dir, records, false)
			path := filepath.Join(dir, SegmentName(1))
			tc.damage(t, path)

			got, stats := replayAll(t, dir, 0)
			if payloads(got) != fmt.Sprint(tc.want) {
				t.Errorf("replayed %v, want %v", payloads(got), tc.want)
			}
			if len(stats.Damage) != 1 || !stats.Damage[0].Tail || stats.Damage[0].Offset != tc.cutAt {
				t.Fatalf("damage = %+v, want one torn tail at byte %d", stats.Damage, tc.cutAt)
			}
			if info, _ := os.Stat(path); info.Size() != tc.cutAt {
				t.Errorf("segment is %d bytes, want truncated to %d", info.Size(), tc.cutAt)
			}
			got, stats = replayAll(t, dir, 0)
			if payloads(got) != fmt.Sprint(tc.want) || len(stats.Damage) != 0 {
				t.Errorf("second replay: %v, damage %+v", payloads(got), stats.Damage)
			}
		})
	}
}

func TestDamageInsideAnOlderSegmentIsReportedWithoutCuttingItOrStopping(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, []string{"one", "two"}, true)
	path := filepath.Join(dir, SegmentName(1))
	flipByte(t, path, segmentHeaderSize+recordHeaderSize)
	before, _ := os.ReadFile(path)

	got, stats := replayAll(t, dir, 0)
	if payloads(got) != "[in segment 2]" {
		t.Errorf("replayed %v", payloads(got))
	}
	if len(stats.Damage) != 1 || stats.Damage[0].Tail || stats.Damage[0].Segment != 1 {
		t.Errorf("damage = %+v, want one inside segment 1", stats.Damage)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a damaged older segment was modified")
	}
}

func TestSegmentOfAnotherVersionIsRefused(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, []string{"one"}, false)
	path := filepath.Join(dir, SegmentName(1))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{9}, 8); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Replay(dir, 0, func(uint64, []byte) error { return nil })
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("format version 9")) {
		t.Errorf("err = %v, want it to name version 9", err)
	}
}

func TestReplayStopsOnCallbackError(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, []string{"one", "two"}, false)
	stop := errors.New("engine refused")
	_, err := Replay(dir, 0, func(uint64, []byte) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("err = %v, want it to wrap %v", err, stop)
	}
}

func payloads(rs []replayed) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.payload)
	}
	return fmt.Sprint(out)
}

func truncateBy(t *testing.T, path string, n int64) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += int64(len(b))
	}
	b[at] ^= 0x20
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkAppendParallel measures group-committed appends of 1 KiB records
// from many concurrent requests.
func BenchmarkAppendParallel(b *testing.B) {
	l, err := Open(b.TempDir(), 1, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	payload := bytes.Repeat([]byte("x"), 1024)
	b.SetParallelism(32)
	b.SetBytes(int64(len(payload)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := l.Append(context.Background(), payload)
			if err != nil {
				b.Error(err)
				return
			}
			done()
		}
	})
}

// FuzzReplay feeds arbitrary bytes as the newest segment: replay must never
// panic, and what remains after its truncation must replay cleanly.
func FuzzReplay(f *testing.F) {
	seedDir := f.TempDir()
	l, err := Open(seedDir, 1, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"one", "two", "three"} {
		done, err := l.Append(context.Background(), []byte(p))
		if err != nil {
			f.Fatal(err)
		}
		done()
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(seedDir, SegmentName(1)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:segmentHeaderSize+3])
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SegmentName(1)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		first, err := Replay(dir, 0, func(uint64, []byte) error { return nil })
		if err != nil {
			return // a segment of another format version is refused, not cut
		}
		second, err := Replay(dir, 0, func(uint64, []byte) error { return nil })
		if err != nil || len(second.Damage) != 0 || second.Records != first.Records {
			t.Fatalf("second replay after truncation: %+v, %v (first %+v)", second, err, first)
		}
	})
}

func TestFailedWriteIsRefusedAndTheLogContinuesInANewSegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	mustAppend(t, l, "before")()

	// Make the next write fail the way a full or failing volume does.
	l.fileMu.Lock()
	_ = l.file.Close()
	l.fileMu.Unlock()
	if _, err := l.Append(context.Background(), []byte("refused")); err == nil {
		t.Fatal("a record whose write failed was acknowledged")
	}
	if l.Err() == nil {
		t.Error("Err does not report the failure")
	}

	mustAppend(t, l, "after")()
	if err := l.Err(); err != nil {
		t.Errorf("Err after recovery = %v", err)
	}
	next, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := l.WaitApplied(wait, next); err != nil {
		t.Fatalf("the refused record is still waited for: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, stats := replayAll(t, dir, 0)
	if payloads(got) != "[before after]" || len(stats.Damage) != 0 {
		t.Errorf("replayed %v with damage %+v, want [before after] and none", payloads(got), stats.Damage)
	}
	if got[1].seq == got[0].seq {
		t.Errorf("the record after the failure went to the broken segment %d", got[0].seq)
	}
}
