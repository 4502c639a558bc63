// Package wal owns the worker's write-ahead log: numbered segment files of
// length-prefixed, CRC-checked records, appended with group commit (one fsync
// serves every request waiting at that moment), rotated by the checkpointer
// and replayed at start.
//
// Records are appended with O_DIRECT where the file system supports it
// (direct_linux.go): a page-cache write costs the kernel several times the
// CPU of a direct one, and the journal is never read back except at start.
// Direct writes go in whole blocks, so a commit rewrites the segment's last
// partial block together with the new records and then cuts the file back
// to the records' end: after every commit the segment on disk is exactly
// its records, as with ordinary writes.
//
// Segment layout (little endian):
//
//	header  magic "DPLWALSG" | version u32 | reserved u32 | sequence u64
//	record* payloadLen u32 | crc32c(payload) u32 | payload
//
// Only the newest segment is ever written, so after a crash only its tail can
// be torn; replay truncates it there and reports it.
package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Version is the segment format version this package writes and reads.
const Version uint32 = 1

const (
	segmentMagic      = "DPLWALSG"
	segmentHeaderSize = 24
	recordHeaderSize  = 8
	segmentSuffix     = ".wal"
	// MaxRecordBytes bounds one record, so that a corrupted length field is
	// recognised as damage instead of causing an enormous allocation.
	MaxRecordBytes = 256 << 20
	// maxBatchBytes bounds how much one group commit writes before its fsync,
	// keeping the latency of the requests in it predictable.
	maxBatchBytes = 8 << 20
	queueLength   = 4096
	// blockSize aligns direct writes: their offset, length and memory must
	// be multiples of the device's logical block size, which is 512 or 4096
	// bytes.
	blockSize = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("write-ahead log is closed")

// Options configures a Log.
type Options struct {
	// OnSync, if set, observes every group commit: how long the fsync took,
	// how many records and bytes it made durable.
	OnSync func(fsync time.Duration, records, bytes int)
}

// Log appends records to the newest segment of a directory.
type Log struct {
	dir  string
	opts Options

	// sendMu lets Close wait for requests being enqueued; it is never held
	// while a request waits for its fsync.
	sendMu  sync.RWMutex
	closed  bool
	queue   chan *request
	stopped chan struct{}

	// fileMu serialises the writer with Rotate, so a segment is sealed only
	// between group commits.
	fileMu sync.Mutex
	file   *os.File
	cur    *segment
	// direct is set when file was opened with O_DIRECT; then every write
	// starts at the beginning of the segment's last block, whose bytes
	// (the segment's end modulo blockSize) begin buf.
	direct bool
	// buf is the block-aligned commit buffer, kept between commits.
	buf []byte
	// broken is the write or fsync failure that made the current segment
	// unusable; the next commit or rotation moves to a fresh segment.
	// failure mirrors it for Err, which must not wait behind an fsync.
	broken  error
	failure atomic.Pointer[error]

	// mu guards segments and their pending counts; applied waits on it.
	mu       sync.Mutex
	applied  *sync.Cond
	segments map[uint64]*segment
}

// segment tracks one file: its size and the records written to it that were
// acknowledged but not yet reported applied.
type segment struct {
	seq     uint64
	bytes   int64
	pending int64
}

type request struct {
	payload []byte
	crc     uint32
	result  chan error
	// state moves from waiting to claimed (by the writer, before it reads
	// payload) or abandoned (by a caller whose context ended first);
	// whoever loses the race knows the other side's outcome. A caller
	// therefore never returns while the writer reads its payload, so the
	// payload may be a buffer the caller reuses afterwards.
	state atomic.Int32
	seg   *segment
}

const (
	waiting int32 = iota
	claimed
	abandoned
)

// SegmentName is the file name of segment seq.
func SegmentName(seq uint64) string {
	return fmt.Sprintf("%020d%s", seq, segmentSuffix)
}

// Segments lists the segment numbers present in dir, oldest first.
func Segments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing write-ahead log segments in %s: %w", dir, err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// Open starts a new segment in dir, numbered after every existing segment
// and at least minSeq, and starts the group-commit writer. Existing segments
// are kept (they are removed by RemoveBefore once a checkpoint covers them).
func Open(dir string, minSeq uint64, opts Options) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating write-ahead log directory %s: %w", dir, err)
	}
	existing, err := Segments(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:      dir,
		opts:     opts,
		queue:    make(chan *request, queueLength),
		stopped:  make(chan struct{}),
		segments: make(map[uint64]*segment),
	}
	l.applied = sync.NewCond(&l.mu)
	next := max(minSeq, 1)
	for _, seq := range existing {
		size := int64(0)
		if info, err := os.Stat(filepath.Join(dir, SegmentName(seq))); err == nil {
			size = info.Size()
		}
		l.segments[seq] = &segment{seq: seq, bytes: size}
		next = max(next, seq+1)
	}
	if err := l.startSegment(next); err != nil {
		return nil, err
	}
	go l.write()
	return l, nil
}

// startSegment creates segment seq durably and makes it current. The caller
// holds fileMu or is the only user of l.
func (l *Log) startSegment(seq uint64) error {
	path := filepath.Join(l.dir, SegmentName(seq))
	f, direct, err := createSegment(path)
	if err != nil {
		return fmt.Errorf("creating write-ahead log segment %s: %w", path, err)
	}
	// A segment that could not be started is removed, so that a retry can
	// create it again.
	discard := func(err error) error {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	// The header has a block of its own: l.buf still begins with the
	// current segment's last block, which stays current if this fails.
	buf := alignedBlocks(1)
	copy(buf[0:8], segmentMagic)
	binary.LittleEndian.PutUint32(buf[8:12], Version)
	binary.LittleEndian.PutUint64(buf[16:24], seq)
	if err := writeFrom(f, direct, buf, 0, segmentHeaderSize); err != nil {
		return discard(fmt.Errorf("writing header of segment %s: %w", path, err))
	}
	if err := f.Sync(); err != nil {
		return discard(fmt.Errorf("syncing segment %s: %w", path, err))
	}
	if err := syncDir(l.dir); err != nil {
		return discard(err)
	}
	if l.file != nil {
		if err := l.file.Close(); err != nil {
			return discard(fmt.Errorf("closing segment %d: %w", l.cur.seq, err))
		}
	}
	seg := &segment{seq: seq, bytes: segmentHeaderSize}
	l.mu.Lock()
	l.segments[seq] = seg
	l.mu.Unlock()
	l.file, l.cur, l.direct = f, seg, direct
	// The header is the new segment's last block so far.
	copy(l.grow(segmentHeaderSize, 0), buf[:segmentHeaderSize])
	return nil
}

// alignedBlocks returns n zeroed blocks, block-aligned in memory.
func alignedBlocks(n int) []byte {
	raw := make([]byte, (n+1)*blockSize)
	off := 0
	if rem := int(uintptr(unsafe.Pointer(&raw[0])) % blockSize); rem != 0 {
		off = blockSize - rem
	}
	return raw[off : off+n*blockSize]
}

// grow returns l.buf with room for n bytes, keeping its first keep bytes.
// The buffer is block-aligned in memory, as direct writes require.
func (l *Log) grow(n, keep int) []byte {
	if len(l.buf) < n+blockSize {
		// A quarter more than asked, so that slowly growing commits do not
		// reallocate each time.
		grown := alignedBlocks((n+n/4)/blockSize + 2)
		copy(grown, l.buf[:keep])
		l.buf = grown
	}
	return l.buf
}

// writeFrom writes buf[:end] at offset, where offset is the file position
// of buf[0]. A direct file is written in whole blocks, zero-padded, and then
// cut back to offset+end, so the file ends where its data does.
func writeFrom(f *os.File, direct bool, buf []byte, offset int64, end int) error {
	if !direct {
		_, err := f.WriteAt(buf[:end], offset)
		return err
	}
	padded := (end + blockSize - 1) / blockSize * blockSize
	clear(buf[end:padded])
	if _, err := f.WriteAt(buf[:padded], offset); err != nil {
		return err
	}
	if padded == end {
		return nil
	}
	return f.Truncate(offset + int64(end))
}

// Append makes payload durable and returns once it is on stable storage,
// with done, which the caller must call once the record was applied: a
// checkpoint waits for it before dropping the segment. When Append returns
// an error the record must be treated as not accepted (it may still be
// replayed after a crash, which idempotent application makes harmless).
func (l *Log) Append(ctx context.Context, payload []byte) (done func(), err error) {
	if len(payload) == 0 {
		return nil, errors.New("appending to the write-ahead log: empty record")
	}
	if len(payload) > MaxRecordBytes {
		return nil, fmt.Errorf("appending to the write-ahead log: record of %d bytes exceeds the %d-byte limit", len(payload), MaxRecordBytes)
	}
	// The checksum is computed here, by the caller, so that concurrent
	// requests compute theirs in parallel rather than one after the other
	// in the writer.
	req := &request{payload: payload, crc: crc32.Checksum(payload, castagnoli), result: make(chan error, 1)}
	if err := l.enqueue(ctx, req); err != nil {
		return nil, err
	}
	select {
	case err := <-req.result:
		return l.outcome(req, err)
	case <-ctx.Done():
		if req.state.CompareAndSwap(waiting, abandoned) {
			return nil, fmt.Errorf("waiting for the write-ahead log to sync: %w", ctx.Err())
		}
		// The writer claimed the record: it may be reading the payload, and
		// its answer says whether the record is durable.
		return l.outcome(req, <-req.result)
	}
}

func (l *Log) enqueue(ctx context.Context, req *request) error {
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.queue <- req:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for room in the write-ahead log queue: %w", ctx.Err())
	}
}

func (l *Log) outcome(req *request, err error) (func(), error) {
	if err != nil {
		return nil, err
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			l.release(req.seg, 1)
		}
	}, nil
}

func (l *Log) release(seg *segment, n int64) {
	l.mu.Lock()
	seg.pending -= n
	if seg.pending == 0 {
		l.applied.Broadcast()
	}
	l.mu.Unlock()
}

// write is the group-commit loop: it takes every request queued at the
// moment, writes them in one go, fsyncs once and answers them all.
// Requests arriving meanwhile wait in the queue for the next commit, while
// their senders' receivers go on decoding.
func (l *Log) write() {
	defer close(l.stopped)
	var batch []*request
	for {
		req, ok := <-l.queue
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		size := len(req.payload)
	drain:
		for size < maxBatchBytes {
			select {
			case r, ok := <-l.queue:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				size += len(r.payload)
			default:
				break drain
			}
		}
		l.commit(batch)
		clear(batch)
	}
}

func (l *Log) commit(batch []*request) {
	// Claim every request before reading its payload; one whose caller gave
	// up is left out, so nothing reads a buffer its caller may reuse.
	live := batch[:0]
	size := 0
	for _, r := range batch {
		if r.state.CompareAndSwap(waiting, claimed) {
			live = append(live, r)
			size += recordHeaderSize + len(r.payload)
		}
	}
	batch = live

	l.fileMu.Lock()
	err := l.recover()
	seg := l.cur
	written := int64(0)
	if err == nil {
		// Counted before the fsync and under fileMu, so a rotation that
		// follows this commit waits for these records to be applied.
		l.mu.Lock()
		seg.pending += int64(len(batch))
		l.mu.Unlock()
		written, err = l.writeAndSync(batch, size)
		if err != nil {
			l.abandon(seg, err)
			l.release(seg, int64(len(batch)))
		} else {
			l.mu.Lock()
			seg.bytes += written
			l.mu.Unlock()
		}
	}
	l.fileMu.Unlock()

	for _, r := range batch {
		r.seg = seg
		r.result <- err
	}
}

// writeAndSync appends the records of batch (size bytes with their
// headers) to the current segment and fsyncs it. The caller holds fileMu.
func (l *Log) writeAndSync(batch []*request, size int) (int64, error) {
	end := l.cur.bytes
	// With direct writes the commit starts at the last block's beginning,
	// whose bytes the previous commit left at the front of l.buf.
	keep := 0
	if l.direct {
		keep = int(end % blockSize)
	}
	buf := l.grow(keep+size, keep)
	n := keep
	for _, r := range batch {
		binary.LittleEndian.PutUint32(buf[n:], uint32(len(r.payload)))
		binary.LittleEndian.PutUint32(buf[n+4:], r.crc)
		n += recordHeaderSize
		n += copy(buf[n:], r.payload)
	}
	if err := writeFrom(l.file, l.direct, buf, end-int64(keep), n); err != nil {
		return 0, fmt.Errorf("writing to write-ahead log segment %d: %w", l.cur.seq, err)
	}
	start := time.Now()
	if err := datasync(l.file); err != nil {
		return 0, fmt.Errorf("syncing write-ahead log segment %d: %w", l.cur.seq, err)
	}
	if l.opts.OnSync != nil {
		l.opts.OnSync(time.Since(start), len(batch), size)
	}
	if l.direct {
		// The new last block's bytes begin the next commit.
		last := int((end - int64(keep) + int64(n)) / blockSize * blockSize)
		from := last - int(end-int64(keep))
		copy(buf, buf[from:n])
	}
	return int64(size), nil
}

// abandon stops writing to seg after a failed write or fsync. After a
// failed fsync the kernel may have dropped the pages it could not write, so
// nothing more is trusted to that file: it is cut back to its last durable
// record (everything before was fsynced successfully and acknowledged) and
// the next commit starts a fresh segment. The failed batch itself was never
// acknowledged, so its senders still hold it and retry. The caller holds
// fileMu.
func (l *Log) abandon(seg *segment, cause error) {
	l.setBroken(cause)
	// Best effort: if the cut fails too, replay reports the leftover as
	// damage inside this segment and skips it.
	_ = l.file.Truncate(seg.bytes)
	_ = l.file.Close()
	l.file = nil
}

// recover moves to a fresh segment after a failure, so that a full volume
// that gets space again, or a transient I/O error, does not need a restart.
// The caller holds fileMu.
func (l *Log) recover() error {
	if l.broken == nil {
		if l.file == nil {
			return ErrClosed
		}
		return nil
	}
	if err := l.startSegment(l.cur.seq + 1); err != nil {
		return fmt.Errorf("write-ahead log unavailable since %w; starting a new segment failed: %w", l.broken, err)
	}
	l.setBroken(nil)
	return nil
}

// setBroken records the failure the log has to recover from, nil once it
// did. The caller holds fileMu.
func (l *Log) setBroken(err error) {
	l.broken = err
	if err == nil {
		l.failure.Store(nil)
	} else {
		l.failure.Store(&err)
	}
}

// Err reports the write or fsync failure that the log has not recovered from
// yet: it recovers at the next request or rotation that can start a new
// segment. It does not wait for a commit in progress, so a readiness probe
// or a scrape never stalls behind a slow fsync.
func (l *Log) Err() error {
	if err := l.failure.Load(); err != nil {
		return *err
	}
	return nil
}

// Rotate seals the current segment and starts the next one, returning its
// number: every record acknowledged from now on lands in it or later.
func (l *Log) Rotate() (uint64, error) {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.broken != nil {
		// Recovering is a rotation already.
		if err := l.recover(); err != nil {
			return 0, fmt.Errorf("rotating the write-ahead log: %w", err)
		}
		return l.cur.seq, nil
	}
	if l.file == nil {
		return 0, ErrClosed
	}
	next := l.cur.seq + 1
	if err := l.startSegment(next); err != nil {
		return 0, fmt.Errorf("rotating the write-ahead log: %w", err)
	}
	return next, nil
}

// WaitApplied returns once every record acknowledged in segments older than
// seq was reported applied, or when ctx ends.
func (l *Log) WaitApplied(ctx context.Context, seq uint64) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.applied.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		busy := false
		for s, seg := range l.segments {
			if s < seq && seg.pending > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for write-ahead log records to be applied: %w", err)
		}
		l.applied.Wait()
	}
}

// RemoveBefore deletes every segment older than seq.
func (l *Log) RemoveBefore(seq uint64) error {
	l.mu.Lock()
	var old []uint64
	for s := range l.segments {
		if s < seq {
			old = append(old, s)
		}
	}
	l.mu.Unlock()
	slices.Sort(old)
	var errs []error
	for _, s := range old {
		path := filepath.Join(l.dir, SegmentName(s))
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing write-ahead log segment %s: %w", path, err))
			continue
		}
		l.mu.Lock()
		delete(l.segments, s)
		l.mu.Unlock()
	}
	if len(old) > 0 {
		if err := syncDir(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats is the log's current size on disk.
type Stats struct {
	Segments int
	Bytes    int64
}

// Stats reports how many segments the log holds and their total size.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Segments: len(l.segments)}
	for _, seg := range l.segments {
		s.Bytes += seg.bytes
	}
	return s
}

// Close stops accepting records, commits those already queued and closes the
// current segment. Records still to be applied keep their segments on disk.
func (l *Log) Close() error {
	l.sendMu.Lock()
	if l.closed {
		l.sendMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.sendMu.Unlock()
	<-l.stopped

	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	l.setBroken(nil) // nothing is written any more, so nothing to recover
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	if err != nil {
		return fmt.Errorf("closing write-ahead log segment %d: %w", l.cur.seq, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
