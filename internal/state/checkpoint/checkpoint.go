// Package checkpoint owns the on-disk format of a worker's state checkpoint:
// one file holding a self-contained record per stream, written atomically and
// verified by checksum when read.
//
// Layout (all integers little endian):
//
//	header   magic "DPLSTATE" | version u32 | flags u32 | walSegment u64 | createdUnixNano i64 | crc32c(previous 32 bytes) u32
//	block*   payloadLen u32 | records u32 | crc32c(payload) u32 | payload (records, each uvarint length + bytes)
//	end      0 u32 | 0 u32 | crc32c(totalRecords) u32 | totalRecords u64
//
// A file is accepted only when every block checksum matches, the declared
// record counts match, the end marker is present and nothing follows it: a
// checkpoint is either whole or reported as damaged, never half-restored by
// accident.
package checkpoint

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Version is the format version this package writes and reads.
const Version uint32 = 1

const (
	magic           = "DPLSTATE"
	headerSize      = 36
	blockHeaderSize = 12
	endTrailerSize  = 8
	// targetBlockBytes keeps a block small enough to checksum and buffer
	// cheaply and large enough that per-block overhead is negligible.
	targetBlockBytes = 1 << 20
	// maxBlockBytes bounds what a reader allocates for one block, so a
	// corrupted length field yields an error instead of an enormous allocation.
	maxBlockBytes = 256 << 20
	tempMarker    = ".tmp-"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors describing why a checkpoint file was refused. Read wraps one of them
// in a *CorruptError.
var (
	ErrEmpty     = errors.New("file is empty")
	ErrMagic     = errors.New("not a checkpoint file (bad magic)")
	ErrVersion   = errors.New("unsupported format version")
	ErrTruncated = errors.New("file is truncated")
	ErrChecksum  = errors.New("checksum mismatch")
	ErrMalformed = errors.New("malformed content")
)

// CorruptError reports a checkpoint that cannot be trusted, where it went
// wrong and why.
type CorruptError struct {
	Path   string
	Offset int64
	Err    error
	Detail string
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("checkpoint %s is damaged at byte %d: %v", e.Path, e.Offset, e.Err)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Meta is what the header says about the checkpoint.
type Meta struct {
	// WALSegment is the first write-ahead log segment whose records are not
	// (all) contained in this checkpoint and must be replayed after it.
	WALSegment uint64
	// Created is when the snapshot was taken.
	Created time.Time
}

// Stats describes a checkpoint that was written or read.
type Stats struct {
	Records int
	Bytes   int64
}

// MarshalFunc produces the records of a checkpoint by calling emit once per
// stream; the slice passed to emit may be reused after emit returns.
type MarshalFunc func(emit func(record []byte) error) error

// Write atomically replaces the checkpoint at path with the records produced
// by marshal: it writes a temporary file in the same directory, fsyncs it,
// renames it over path and fsyncs the directory, so a crash at any moment
// leaves either the old or the new checkpoint, never a mix.
func Write(path string, meta Meta, marshal MarshalFunc) (Stats, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+tempMarker+"*")
	if err != nil {
		return Stats{}, fmt.Errorf("creating temporary checkpoint in %s: %w", dir, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	w := newBlockWriter(f)
	if err := w.writeHeader(meta); err != nil {
		return Stats{}, fmt.Errorf("writing checkpoint header to %s: %w", tmp, err)
	}
	if err := marshal(w.add); err != nil {
		return Stats{}, fmt.Errorf("writing checkpoint records to %s: %w", tmp, err)
	}
	if err := w.finish(); err != nil {
		return Stats{}, fmt.Errorf("writing checkpoint end to %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return Stats{}, fmt.Errorf("syncing checkpoint %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return Stats{}, fmt.Errorf("closing checkpoint %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Stats{}, fmt.Errorf("replacing checkpoint %s: %w", path, err)
	}
	committed = true
	if err := SyncDir(dir); err != nil {
		return Stats{}, err
	}
	return Stats{Records: w.total, Bytes: w.written}, nil
}

// SyncDir fsyncs a directory so that a rename or create inside it survives a
// crash of the machine, not only of the process.
func SyncDir(dir string) error {
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

// RemoveTemporary deletes temporary files a crashed Write left next to path
// and returns their names.
func RemoveTemporary(path string) ([]string, error) {
	matches, err := filepath.Glob(escapeGlob(path) + tempMarker + "*")
	if err != nil {
		return nil, fmt.Errorf("listing temporary checkpoints of %s: %w", path, err)
	}
	var removed []string
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("removing temporary checkpoint %s: %w", m, err)
		}
		removed = append(removed, m)
	}
	return removed, nil
}

func escapeGlob(path string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(path)
}

type blockWriter struct {
	out     io.Writer
	buf     []byte // block header space followed by the payload being built
	records uint32
	total   int
	written int64
	scratch [binary.MaxVarintLen64]byte
}

func newBlockWriter(out io.Writer) *blockWriter {
	return &blockWriter{out: out, buf: make([]byte, blockHeaderSize, targetBlockBytes+blockHeaderSize)}
}

func (w *blockWriter) write(p []byte) error {
	n, err := w.out.Write(p)
	w.written += int64(n)
	return err
}

func (w *blockWriter) writeHeader(meta Meta) error {
	var h [headerSize]byte
	copy(h[0:8], magic)
	binary.LittleEndian.PutUint32(h[8:12], Version)
	binary.LittleEndian.PutUint32(h[12:16], 0)
	binary.LittleEndian.PutUint64(h[16:24], meta.WALSegment)
	created := int64(0)
	if !meta.Created.IsZero() {
		created = meta.Created.UnixNano()
	}
	binary.LittleEndian.PutUint64(h[24:32], uint64(created))
	binary.LittleEndian.PutUint32(h[32:36], crc32.Checksum(h[:32], castagnoli))
	return w.write(h[:])
}

func (w *blockWriter) add(record []byte) error {
	if len(record) == 0 {
		return fmt.Errorf("record %d is empty", w.total)
	}
	if len(record) > maxBlockBytes-binary.MaxVarintLen64 {
		return fmt.Errorf("record %d is %d bytes, more than the %d a block can hold", w.total, len(record), maxBlockBytes)
	}
	payload := len(w.buf) - blockHeaderSize
	if payload > 0 && payload+len(record)+binary.MaxVarintLen64 > targetBlockBytes {
		if err := w.flush(); err != nil {
			return err
		}
	}
	n := binary.PutUvarint(w.scratch[:], uint64(len(record)))
	w.buf = append(w.buf, w.scratch[:n]...)
	w.buf = append(w.buf, record...)
	w.records++
	w.total++
	return nil
}

func (w *blockWriter) flush() error {
	if w.records == 0 {
		return nil
	}
	payload := w.buf[blockHeaderSize:]
	binary.LittleEndian.PutUint32(w.buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(w.buf[4:8], w.records)
	binary.LittleEndian.PutUint32(w.buf[8:12], crc32.Checksum(payload, castagnoli))
	if err := w.write(w.buf); err != nil {
		return err
	}
	w.buf = w.buf[:blockHeaderSize]
	w.records = 0
	return nil
}

func (w *blockWriter) finish() error {
	if err := w.flush(); err != nil {
		return err
	}
	var end [blockHeaderSize + endTrailerSize]byte
	binary.LittleEndian.PutUint64(end[12:20], uint64(w.total))
	binary.LittleEndian.PutUint32(end[8:12], crc32.Checksum(end[12:20], castagnoli))
	return w.write(end[:])
}

// Read verifies the checkpoint at path and calls fn for every record. The
// record slice is only valid during the call.
//
// Verification and delivery are two passes: fn is called only after the
// whole file was found intact, so a damaged file delivers no record at all.
// A missing file is reported with an error matching os.ErrNotExist; damage
// with a *CorruptError. An error returned by fn stops the read and is
// returned wrapped with the record's position.
func Read(path string, fn func(record []byte) error) (Meta, Stats, error) {
	meta, stats, err := scan(path, nil)
	if err != nil {
		return meta, stats, err
	}
	if fn == nil {
		return meta, stats, nil
	}
	return scan(path, fn)
}

// Verify checks the checkpoint at path without delivering its records.
func Verify(path string) (Meta, Stats, error) {
	return scan(path, nil)
}

func scan(path string, fn func([]byte) error) (Meta, Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, Stats{}, fmt.Errorf("opening checkpoint: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Meta{}, Stats{}, fmt.Errorf("reading checkpoint: %w", err)
	}
	// A small checkpoint needs no 1 MiB buffer.
	r := &blockReader{path: path, size: info.Size(), in: bufio.NewReaderSize(f, int(min(info.Size(), 1<<20)))}
	meta, err := r.readHeader()
	if err != nil {
		return Meta{}, Stats{Bytes: r.offset}, err
	}
	for {
		done, err := r.readBlock(fn)
		if err != nil {
			return meta, Stats{Records: r.records, Bytes: r.offset}, err
		}
		if done {
			return meta, Stats{Records: r.records, Bytes: r.offset}, nil
		}
	}
}

type blockReader struct {
	path    string
	size    int64 // of the file when it was opened
	in      *bufio.Reader
	offset  int64
	records int
	blocks  int
	payload []byte
}

func (r *blockReader) corrupt(at int64, err error, format string, args ...any) error {
	return &CorruptError{Path: r.path, Offset: at, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// readFull reads exactly len(p) bytes, turning a short read into ErrTruncated.
func (r *blockReader) readFull(p []byte, what string) error {
	n, err := io.ReadFull(r.in, p)
	at := r.offset
	r.offset += int64(n)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if at == 0 && n == 0 {
			return r.corrupt(0, ErrEmpty, "")
		}
		return r.corrupt(at, ErrTruncated, "%s needs %d bytes, %d present", what, len(p), n)
	default:
		return fmt.Errorf("reading checkpoint %s: %w", r.path, err)
	}
}

func (r *blockReader) readHeader() (Meta, error) {
	var h [headerSize]byte
	if err := r.readFull(h[:], "header"); err != nil {
		return Meta{}, err
	}
	if string(h[0:8]) != magic {
		return Meta{}, r.corrupt(0, ErrMagic, "starts with %q", h[0:8])
	}
	if got := binary.LittleEndian.Uint32(h[32:36]); got != crc32.Checksum(h[:32], castagnoli) {
		return Meta{}, r.corrupt(0, ErrChecksum, "header")
	}
	if v := binary.LittleEndian.Uint32(h[8:12]); v != Version {
		return Meta{}, r.corrupt(8, ErrVersion, "file has version %d, this worker reads version %d", v, Version)
	}
	if flags := binary.LittleEndian.Uint32(h[12:16]); flags != 0 {
		return Meta{}, r.corrupt(12, ErrMalformed, "unknown header flags %#x", flags)
	}
	meta := Meta{WALSegment: binary.LittleEndian.Uint64(h[16:24])}
	if ns := int64(binary.LittleEndian.Uint64(h[24:32])); ns != 0 {
		meta.Created = time.Unix(0, ns).UTC()
	}
	return meta, nil
}

// readBlock reads one block and reports whether it was the end marker.
func (r *blockReader) readBlock(fn func([]byte) error) (bool, error) {
	start := r.offset
	var h [blockHeaderSize]byte
	if err := r.readFull(h[:], "block header"); err != nil {
		return false, err
	}
	size := binary.LittleEndian.Uint32(h[0:4])
	count := binary.LittleEndian.Uint32(h[4:8])
	sum := binary.LittleEndian.Uint32(h[8:12])
	if size == 0 {
		return true, r.readEnd(start, count, sum)
	}
	if size > maxBlockBytes {
		return false, r.corrupt(start, ErrMalformed, "block declares %d bytes, more than the %d allowed", size, maxBlockBytes)
	}
	// A damaged length must not cost an allocation of that length.
	if left := r.size - r.offset; int64(size) > left {
		return false, r.corrupt(r.offset, ErrTruncated, "block payload needs %d bytes, %d present", size, max(left, 0))
	}
	if cap(r.payload) < int(size) {
		r.payload = make([]byte, size)
	}
	payload := r.payload[:size]
	if err := r.readFull(payload, "block payload"); err != nil {
		return false, err
	}
	if crc32.Checksum(payload, castagnoli) != sum {
		return false, r.corrupt(start, ErrChecksum, "block %d", r.blocks)
	}
	var n uint32
	for rest := payload; len(rest) > 0; n++ {
		length, k := binary.Uvarint(rest)
		if k <= 0 || length == 0 || length > uint64(len(rest)-k) {
			return false, r.corrupt(start, ErrMalformed, "block %d: record %d has a bad length prefix", r.blocks, n)
		}
		record := rest[k : k+int(length)]
		rest = rest[k+int(length):]
		if fn != nil {
			if err := fn(record); err != nil {
				return false, fmt.Errorf("restoring record %d of checkpoint %s: %w", r.records, r.path, err)
			}
		}
		r.records++
	}
	if n != count {
		return false, r.corrupt(start, ErrMalformed, "block %d declares %d records, holds %d", r.blocks, count, n)
	}
	r.blocks++
	return false, nil
}

func (r *blockReader) readEnd(start int64, count, sum uint32) error {
	var t [endTrailerSize]byte
	if err := r.readFull(t[:], "end marker"); err != nil {
		return err
	}
	if count != 0 || crc32.Checksum(t[:], castagnoli) != sum {
		return r.corrupt(start, ErrChecksum, "end marker")
	}
	if total := binary.LittleEndian.Uint64(t[:]); total != uint64(r.records) {
		return r.corrupt(start, ErrMalformed, "end marker declares %d records, file holds %d", total, r.records)
	}
	if _, err := r.in.ReadByte(); err == nil {
		return r.corrupt(r.offset, ErrMalformed, "data after the end marker")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading checkpoint %s: %w", r.path, err)
	}
	return nil
}

// SetAside renames a damaged checkpoint to <path>.corrupt-<UTC timestamp> so
// that it can be inspected while the worker starts without it, and returns
// the new name.
func SetAside(path string, now time.Time) (string, error) {
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("setting damaged checkpoint %s aside: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return aside, err
	}
	return aside, nil
}
