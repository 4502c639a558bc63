package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// streamRecords returns n records shaped like the engine's stream records:
// an identity of attribute strings followed by numeric state, about 150 bytes.
func streamRecords(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		out[i] = streamRecord(rng, i)
	}
	return out
}

func streamRecord(rng *rand.Rand, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "service.name=claude-code|session.id=%08x-%04x|model=claude-sonnet|type=input|metric=claude_code.token.usage|", rng.Uint32(), i%65536)
	var num [8]byte
	for range 5 {
		binary.LittleEndian.PutUint64(num[:], rng.Uint64())
		b.Write(num[:])
	}
	return b.Bytes()
}

func marshalAll(records [][]byte) MarshalFunc {
	return func(emit func([]byte) error) error {
		for _, r := range records {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	}
}

func writeCheckpoint(t *testing.T, records [][]byte, meta Meta) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.ckpt")
	if _, err := Write(path, meta, marshalAll(records)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return path
}

func readAll(path string) (Meta, [][]byte, error) {
	var got [][]byte
	meta, _, err := Read(path, func(r []byte) error {
		got = append(got, bytes.Clone(r))
		return nil
	})
	return meta, got, err
}

func TestRoundTripKeepsEveryRecordAndTheHeader(t *testing.T) {
	// Enough records to span several blocks, plus one record larger than a block.
	records := streamRecords(20_000)
	records = append(records, bytes.Repeat([]byte{7}, targetBlockBytes+10))
	created := time.Date(2026, 11, 25, 8, 0, 0, 123, time.UTC)
	path := writeCheckpoint(t, records, Meta{WALSegment: 42, Created: created})

	meta, got, err := readAll(path)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if meta.WALSegment != 42 || !meta.Created.Equal(created) {
		t.Errorf("meta = %+v, want segment 42 created %v", meta, created)
	}
	if len(got) != len(records) {
		t.Fatalf("read %d records, wrote %d", len(got), len(records))
	}
	for i := range records {
		if !bytes.Equal(got[i], records[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}

func TestRoundTripWithoutRecords(t *testing.T) {
	path := writeCheckpoint(t, nil, Meta{WALSegment: 1})
	meta, got, err := readAll(path)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(got) != 0 || meta.WALSegment != 1 {
		t.Errorf("got %d records, meta %+v", len(got), meta)
	}
}

func TestWriteReplacesThePreviousCheckpoint(t *testing.T) {
	path := writeCheckpoint(t, streamRecords(3), Meta{WALSegment: 1})
	if _, err := Write(path, Meta{WALSegment: 2}, marshalAll(streamRecords(5))); err != nil {
		t.Fatal(err)
	}
	meta, got, err := readAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta.WALSegment != 2 || len(got) != 5 {
		t.Errorf("meta %+v with %d records, want segment 2 with 5", meta, len(got))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the checkpoint", len(entries))
	}
}

func TestFailedMarshalKeepsThePreviousCheckpointAndLeavesNoTemporary(t *testing.T) {
	path := writeCheckpoint(t, streamRecords(3), Meta{WALSegment: 1})
	boom := errors.New("engine stopped")
	_, err := Write(path, Meta{WALSegment: 2}, func(emit func([]byte) error) error {
		if err := emit([]byte("partial")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write error = %v, want it to wrap %v", err, boom)
	}
	meta, got, err := readAll(path)
	if err != nil || meta.WALSegment != 1 || len(got) != 3 {
		t.Errorf("previous checkpoint not intact: meta %+v, %d records, err %v", meta, len(got), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the checkpoint", len(entries))
	}
}

func TestEmptyRecordIsRefusedAtWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.ckpt")
	_, err := Write(path, Meta{}, marshalAll([][]byte{[]byte("a"), {}}))
	if err == nil || !strings.Contains(err.Error(), "record 1 is empty") {
		t.Fatalf("err = %v, want it to name the empty record", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkpoint exists after a failed write: %v", err)
	}
}

func TestMissingFileIsNotExistRatherThanCorrupt(t *testing.T) {
	_, _, err := Read(filepath.Join(t.TempDir(), "state.ckpt"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
	var corrupt *CorruptError
	if errors.As(err, &corrupt) {
		t.Errorf("a missing file is reported as corrupt: %v", err)
	}
}

func TestDamagedFilesAreRefusedBeforeAnyRecordIsDelivered(t *testing.T) {
	records := streamRecords(30_000)
	good := writeCheckpoint(t, records, Meta{WALSegment: 3})
	original, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	secondBlock := headerSize + blockHeaderSize + int(binary.LittleEndian.Uint32(original[headerSize:]))

	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   error
	}{
		{"empty file", func([]byte) []byte { return nil }, ErrEmpty},
		{"truncated in the header", func(b []byte) []byte { return b[:10] }, ErrTruncated},
		{"truncated in a block", func(b []byte) []byte { return b[:len(b)/2] }, ErrTruncated},
		{"truncated before the end marker", func(b []byte) []byte { return b[:len(b)-blockHeaderSize-endTrailerSize] }, ErrTruncated},
		{"truncated inside the end marker", func(b []byte) []byte { return b[:len(b)-3] }, ErrTruncated},
		{"flipped byte in the first block", flipAt(headerSize + blockHeaderSize + 100), ErrChecksum},
		{"flipped byte in the last block", flipAt(-(blockHeaderSize + endTrailerSize + 5)), ErrChecksum},
		{"flipped byte in the header", flipAt(20), ErrChecksum},
		{"flipped byte in the end marker", flipAt(-1), ErrChecksum},
		{"block length inflated", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[secondBlock:], maxBlockBytes+1)
			return b
		}, ErrMalformed},
		{"record count altered", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[secondBlock+4:], binary.LittleEndian.Uint32(b[secondBlock+4:])+1)
			return b
		}, ErrMalformed},
		{"wrong magic", func(b []byte) []byte { copy(b, "NOTSTATE"); return b }, ErrMagic},
		{"wrong version", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[8:12], Version+1)
			binary.LittleEndian.PutUint32(b[32:36], crc32Castagnoli(b[:32]))
			return b
		}, ErrVersion},
		{"data after the end", func(b []byte) []byte { return append(b, 0) }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.ckpt")
			if err := os.WriteFile(path, tc.damage(bytes.Clone(original)), 0o600); err != nil {
				t.Fatal(err)
			}
			delivered := 0
			_, _, err := Read(path, func([]byte) error { delivered++; return nil })
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var corrupt *CorruptError
			if !errors.As(err, &corrupt) || corrupt.Path != path {
				t.Errorf("err = %#v, want a *CorruptError naming %s", err, path)
			}
			if delivered != 0 {
				t.Errorf("%d records delivered from a damaged file", delivered)
			}
		})
	}
}

func flipAt(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x40
		return b
	}
}

func crc32Castagnoli(b []byte) uint32 {
	return crc32.Checksum(b, castagnoli)
}

func TestRecordErrorStopsTheReadAndNamesTheRecord(t *testing.T) {
	path := writeCheckpoint(t, streamRecords(10), Meta{})
	refused := errors.New("unknown stream kind")
	calls := 0
	_, _, err := Read(path, func([]byte) error {
		calls++
		if calls == 4 {
			return refused
		}
		return nil
	})
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "record 3") {
		t.Fatalf("err = %v, want it to wrap the refusal and name record 3", err)
	}
	if calls != 4 {
		t.Errorf("fn called %d times after refusing record 3", calls)
	}
}

func TestTemporaryFilesOfACrashedWriteAreIgnoredAndRemoved(t *testing.T) {
	path := writeCheckpoint(t, streamRecords(3), Meta{WALSegment: 9})
	leftover := path + tempMarker + "123456"
	if err := os.WriteFile(leftover, []byte("DPLSTATE half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	meta, got, err := readAll(path)
	if err != nil || meta.WALSegment != 9 || len(got) != 3 {
		t.Fatalf("checkpoint unreadable next to a leftover: meta %+v, %d records, err %v", meta, len(got), err)
	}
	removed, err := RemoveTemporary(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != leftover {
		t.Errorf("removed %v, want [%s]", removed, leftover)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover still present: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("checkpoint removed with the leftover: %v", err)
	}
}

func TestSetAsideKeepsTheDamagedFileForInspection(t *testing.T) {
	path := writeCheckpoint(t, streamRecords(3), Meta{})
	now := time.Date(2026, 11, 25, 9, 30, 0, 5, time.UTC)
	aside, err := SetAside(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".corrupt-20261125T093000.000000005Z"; aside != want {
		t.Errorf("set aside as %s, want %s", aside, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("original still present: %v", err)
	}
	if _, _, err := Verify(aside); err != nil {
		t.Errorf("set-aside file altered: %v", err)
	}
}

// BenchmarkCheckpoint1M writes and reads back a checkpoint of one million
// ~150-byte stream records, reporting bytes per checkpoint.
func BenchmarkCheckpoint1M(b *testing.B) {
	records := streamRecords(1_000_000)
	path := filepath.Join(b.TempDir(), "state.ckpt")
	b.Run("write", func(b *testing.B) {
		var stats Stats
		for b.Loop() {
			var err error
			if stats, err = Write(path, Meta{WALSegment: 1}, marshalAll(records)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(stats.Bytes), "bytes/checkpoint")
		b.ReportMetric(float64(stats.Bytes)/float64(stats.Records), "bytes/stream")
	})
	b.Run("read", func(b *testing.B) {
		if _, err := Write(path, Meta{WALSegment: 1}, marshalAll(records)); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			n := 0
			if _, _, err := Read(path, func([]byte) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
			if n != len(records) {
				b.Fatalf("read %d records", n)
			}
		}
	})
}

// A damaged block length is refused before anything of that length is
// allocated: a small file cannot make the reader reserve 256 MiB.
func TestDamagedBlockLengthAllocatesNothingLarge(t *testing.T) {
	path := writeCheckpoint(t, streamRecords(2), Meta{})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(data[headerSize:], maxBlockBytes)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = Verify(path)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Verify: %v, want ErrTruncated", err)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 1<<20 {
		t.Errorf("reading a %d-byte file allocated %d bytes", len(data), allocated)
	}
}
