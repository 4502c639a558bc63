package wal

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Whether or not the segment is written with direct I/O in whole blocks,
// after every commit it ends exactly where its last record does: a crash
// leaves no padding that a replay would take for a torn record.
func TestSegmentEndsAtItsLastRecordAfterEveryCommit(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	path := filepath.Join(dir, SegmentName(l.cur.seq))
	want := int64(segmentHeaderSize)
	var sent [][]byte
	for i, n := range []int{1, blockSize - recordHeaderSize - segmentHeaderSize - 1, 1, blockSize, 3 * blockSize / 2, 17, 5 * blockSize} {
		payload := bytes.Repeat([]byte{byte('a' + i)}, n)
		mustAppend(t, l, string(payload))()
		sent = append(sent, payload)
		want += int64(recordHeaderSize + n)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() != want {
			t.Fatalf("after record %d (%d bytes) the segment is %d bytes, want %d (direct I/O: %t)", i, n, info.Size(), want, l.direct)
		}
	}
	got, stats := replayAll(t, dir, 0)
	if len(got) != len(sent) || len(stats.Damage) != 0 {
		t.Fatalf("replayed %d records with damage %+v, want %d and none", len(got), stats.Damage, len(sent))
	}
	for i := range sent {
		if got[i].payload != string(sent[i]) {
			t.Errorf("record %d replayed as %d bytes, want %d", i, len(got[i].payload), len(sent[i]))
		}
	}
}

// A caller whose context ends while its record waits may reuse the payload's
// memory at once: the writer never reads a payload it did not claim, so the
// reused bytes are never journaled.
func TestAbandonedPayloadIsNeverRead(t *testing.T) {
	release := make(chan struct{})
	var syncs atomic.Int32
	dir := t.TempDir()
	l := openLog(t, dir, Options{OnSync: func(time.Duration, int, int) {
		if syncs.Add(1) == 1 {
			<-release // hold the writer while the next request queues
		}
	}})
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), []byte("holds the writer"))
		first <- err
	}()
	waitFor(t, func() bool { return syncs.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	payload := []byte("original")
	result := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, payload)
		result <- err
	}()
	waitFor(t, func() bool { return len(l.queue) == 1 })
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append after cancel = %v, want context.Canceled", err)
	}
	copy(payload, "reused!!")
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, "after")()
	got, _ := replayAll(t, dir, 0)
	for _, r := range got {
		if r.payload == "reused!!" || r.payload == "original" {
			t.Fatalf("journaled %q, a payload its caller had given up on", r.payload)
		}
	}
	if payloads(got) != "[holds the writer after]" {
		t.Errorf("replayed %v", payloads(got))
	}
}
