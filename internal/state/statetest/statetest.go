//go:build linux

// Package statetest makes a worker's state directory fail the way a failing
// volume does, for the tests of the packages that have to notice and report
// it. It works on the real files and descriptors of a store opened by the
// test's own process; nothing is simulated.
package statetest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/state/wal"
)

// BreakJournal makes the write-ahead log that this process has open in
// stateDir fail its next write, the way a volume that turned read-only
// does, and keeps it failing: the open segment's descriptor is replaced by
// a read-only descriptor of the same file, and a directory takes the path
// of the segment the log would move to, so that it cannot start one.
// repair removes that directory; the log then recovers at its next request
// or checkpoint.
func BreakJournal(t testing.TB, stateDir string) (repair func()) {
	t.Helper()
	walDir := filepath.Join(stateDir, state.WALDirectory)
	seqs, err := wal.Segments(walDir)
	if err != nil || len(seqs) == 0 {
		t.Fatalf("breaking the journal: no write-ahead log segment in %s (%v)", walDir, err)
	}
	current := seqs[len(seqs)-1]
	segment, err := filepath.EvalSymlinks(filepath.Join(walDir, wal.SegmentName(current)))
	if err != nil {
		t.Fatalf("breaking the journal: %v", err)
	}
	fd := openDescriptor(t, segment)

	readOnly, err := os.Open(segment)
	if err != nil {
		t.Fatalf("breaking the journal: %v", err)
	}
	defer readOnly.Close()
	blocker := filepath.Join(walDir, wal.SegmentName(current+1))
	if err := os.Mkdir(blocker, 0o750); err != nil {
		t.Fatalf("breaking the journal: blocking the next segment: %v", err)
	}
	// Dup3 swaps the description behind the log's descriptor in one step,
	// so the log never writes to a descriptor number another file reuses.
	if err := syscall.Dup3(int(readOnly.Fd()), fd, syscall.O_CLOEXEC); err != nil {
		t.Fatalf("breaking the journal: replacing descriptor %d of %s: %v", fd, segment, err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(blocker); err != nil {
			t.Fatalf("repairing the journal: %v", err)
		}
	}
}

// openDescriptor finds the descriptor of this process open on path.
func openDescriptor(t testing.TB, path string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("breaking the journal: listing open descriptors: %v", err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != path {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err == nil {
			return fd
		}
	}
	t.Fatalf("breaking the journal: %s is not open in this process", path)
	return -1
}
