package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The fuzz targets keep every input small, so that one execution costs
// microseconds and the engine explores the format instead of copying
// kilobytes: a committed seed is a checkpoint of a few short records, an
// input longer than maxFuzzFileBytes is skipped, and an input turns into at
// most maxFuzzRecords records of at most maxFuzzRecordBytes each.
const (
	maxFuzzFileBytes   = 4 << 10
	maxFuzzRecords     = 16
	maxFuzzRecordBytes = 64
)

// fuzzFile is where one fuzz worker process writes its inputs. A worker
// runs one input at a time, so the file is reused rather than a directory
// created and removed per input.
func fuzzFile(f *testing.F) string { return filepath.Join(f.TempDir(), "state.ckpt") }

// rewrite replaces the content of path with data in place. It does not
// truncate to zero first, as os.WriteFile does: on ext4 truncating a written
// file to zero makes its close wait for writeback, milliseconds per input.
func rewrite(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// encode is the file Write would produce for records, built in memory: the
// targets need the bytes, not the fsync and rename around them, nor the
// 1 MiB block buffer Write starts with.
func encode(t testing.TB, meta Meta, records [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := &blockWriter{out: &buf, buf: make([]byte, blockHeaderSize, blockHeaderSize+maxFuzzRecords*(maxFuzzRecordBytes+1))}
	if err := w.writeHeader(meta); err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := w.add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readRecords reads the file at path and returns copies of the records
// delivered before Read returned.
func readRecords(path string) (Meta, [][]byte, error) {
	var delivered [][]byte
	meta, _, err := Read(path, func(r []byte) error {
		delivered = append(delivered, bytes.Clone(r))
		return nil
	})
	return meta, delivered, err
}

// FuzzRead feeds arbitrary bytes to the reader: it must refuse or accept
// them with an error, never panic, and never deliver records of a file it
// then refuses.
func FuzzRead(f *testing.F) {
	f.Add(encode(f, Meta{WALSegment: 7}, [][]byte{[]byte("session.id=a|7"), []byte("session.id=b|9")}))
	path := fuzzFile(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzFileBytes {
			t.Skip("larger than the fuzzed file size")
		}
		rewrite(t, path, data)
		_, delivered, err := readRecords(path)
		if err != nil && len(delivered) != 0 {
			t.Fatalf("%d records delivered from a refused file: %v", len(delivered), err)
		}
		var corrupt *CorruptError
		if err != nil && !errors.As(err, &corrupt) {
			t.Fatalf("refused with %v, want a *CorruptError", err)
		}
	})
}

// fuzzRecords cuts data into records: each starts with a length byte.
func fuzzRecords(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 1 && len(out) < maxFuzzRecords {
		n := min(1+int(data[0])%maxFuzzRecordBytes, len(data)-1)
		out = append(out, data[1:1+n])
		data = data[1+n:]
	}
	return out
}

// Damage applied to a written checkpoint by FuzzCorruptCheckpoint.
const (
	damageNone = iota
	damageFlip
	damageTruncate
	damageAppend
	damageOverwrite
	damageKinds
)

// damage applies the damage spec describes to a copy of file: spec[0] is
// the kind, spec[1:3] the position and spec[3:7] the value, little endian;
// missing bytes are zero.
func damage(file, spec []byte) (out []byte, kind int, pos int) {
	var raw [7]byte
	copy(raw[:], spec)
	kind = int(raw[0]) % damageKinds
	at := binary.LittleEndian.Uint16(raw[1:3])
	value := binary.LittleEndian.Uint32(raw[3:7])
	out = slices.Clone(file)
	pos = int(at) % len(out)
	switch kind {
	case damageFlip:
		out[pos] ^= byte(value)
	case damageTruncate:
		out = out[:pos]
	case damageAppend:
		out = append(out, byte(value))
	case damageOverwrite:
		pos = min(pos, len(out)-4)
		binary.LittleEndian.PutUint32(out[pos:], value)
	}
	return out, kind, pos
}

// FuzzCorruptCheckpoint writes a checkpoint of a few records derived from
// the input, damages it (a flipped byte, a truncation, a trailing byte, or
// a 32-bit field overwritten, headers and lengths included) and reads it
// back. An intact file must deliver exactly its records and metadata; a
// changed one must be refused as damaged with nothing delivered.
func FuzzCorruptCheckpoint(f *testing.F) {
	// Both arguments are bytes: the engine minimizes an interesting input
	// by cutting bytes, quickly, where it would count an integer argument
	// down one by one for its whole minimization time.
	f.Add([]byte("\x0dsession.id=a|7\x0dsession.id=b|9"), []byte{damageNone})
	path := fuzzFile(f)
	meta := Meta{WALSegment: 7, Created: time.Unix(0, 1_700_000_000_000_000_000).UTC()}
	f.Fuzz(func(t *testing.T, data, spec []byte) {
		if len(data) > maxFuzzFileBytes {
			t.Skip("larger than the fuzzed file size")
		}
		records := fuzzRecords(data)
		file := encode(t, meta, records)
		damaged, kind, pos := damage(file, spec)
		rewrite(t, path, damaged)
		gotMeta, delivered, err := readRecords(path)
		if bytes.Equal(damaged, file) {
			if err != nil {
				t.Fatalf("intact checkpoint of %d records refused: %v", len(records), err)
			}
			if gotMeta != meta {
				t.Fatalf("meta %+v, want %+v", gotMeta, meta)
			}
			if !slices.EqualFunc(delivered, records, bytes.Equal) {
				t.Fatalf("delivered %q, want %q", delivered, records)
			}
			return
		}
		var corrupt *CorruptError
		if !errors.As(err, &corrupt) {
			t.Fatalf("damaged checkpoint (damage %d at byte %d) read with error %v, want a *CorruptError", kind, pos, err)
		}
		if len(delivered) != 0 {
			t.Fatalf("%d records delivered from a damaged checkpoint: %v", len(delivered), err)
		}
	})
}
