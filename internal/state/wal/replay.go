package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// Damage describes one place where replay stopped reading a segment.
type Damage struct {
	Segment uint64
	Offset  int64
	Reason  string
	// Tail is true when the damage is at the end of the newest segment,
	// which is what a crash in the middle of a write leaves behind.
	Tail bool
	// DroppedBytes is how much was cut off the segment.
	DroppedBytes int64
}

func (d Damage) String() string {
	where := "inside"
	if d.Tail {
		where = "at the torn tail of"
	}
	return fmt.Sprintf("%s %s segment %d at byte %d; %d bytes dropped", d.Reason, where, d.Segment, d.Offset, d.DroppedBytes)
}

// ReplayStats summarises a replay.
type ReplayStats struct {
	Segments int
	Records  int
	Bytes    int64
	Damage   []Damage
}

// Replay calls fn for every intact record of the segments numbered from
// onward, oldest first. The payload is only valid during the call.
//
// A record that is cut short or fails its checksum ends its segment and is
// listed in the stats. In the newest segment, where a crash mid-write leaves
// a torn tail, the file is truncated there so that the damage is reported
// once rather than at every start. An error from fn stops the
// replay and is returned.
func Replay(dir string, from uint64, fn func(seq uint64, payload []byte) error) (ReplayStats, error) {
	var stats ReplayStats
	seqs, err := Segments(dir)
	if err != nil {
		return stats, err
	}
	var todo []uint64
	for _, s := range seqs {
		if s >= from {
			todo = append(todo, s)
		}
	}
	for i, seq := range todo {
		last := i == len(todo)-1
		records, size, damage, err := replaySegment(filepath.Join(dir, SegmentName(seq)), seq, last, fn)
		stats.Segments++
		stats.Records += records
		stats.Bytes += size
		if damage != nil {
			stats.Damage = append(stats.Damage, *damage)
		}
		if err != nil {
			return stats, err
		}
	}
	return stats, nil
}

func replaySegment(path string, seq uint64, last bool, fn func(uint64, []byte) error) (records int, size int64, damage *Damage, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("opening write-ahead log segment %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("reading size of segment %s: %w", path, err)
	}
	size = info.Size()
	in := bufio.NewReaderSize(f, 1<<20)

	cut := func(at int64, reason string) (int, int64, *Damage, error) {
		d := &Damage{Segment: seq, Offset: at, Reason: reason, Tail: last, DroppedBytes: size - at}
		if !last {
			// Older segments were complete when sealed: this is media damage,
			// not a crash. Leave the file as it is for inspection; the next
			// checkpoint removes it.
			return records, size, d, nil
		}
		if at == 0 {
			// Not even a header survived: the file holds nothing, so it
			// goes, rather than staying as an empty file reported at every
			// start.
			if err := os.Remove(path); err != nil {
				return records, 0, d, fmt.Errorf("removing damaged segment %s: %w", path, err)
			}
			return records, 0, d, syncDir(filepath.Dir(path))
		}
		if err := f.Truncate(at); err != nil {
			return records, at, d, fmt.Errorf("truncating damaged segment %s at byte %d: %w", path, at, err)
		}
		if err := f.Sync(); err != nil {
			return records, at, d, fmt.Errorf("syncing truncated segment %s: %w", path, err)
		}
		return records, at, d, nil
	}

	var h [segmentHeaderSize]byte
	if _, err := io.ReadFull(in, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return cut(0, "incomplete segment header")
		}
		return 0, size, nil, fmt.Errorf("reading segment %s: %w", path, err)
	}
	switch {
	case string(h[0:8]) != segmentMagic:
		return cut(0, "bad segment magic")
	case binary.LittleEndian.Uint32(h[8:12]) != Version:
		// Not damage: a different format. Refuse rather than cut it.
		return 0, size, nil, fmt.Errorf("segment %s has format version %d, this worker reads version %d",
			path, binary.LittleEndian.Uint32(h[8:12]), Version)
	case binary.LittleEndian.Uint64(h[16:24]) != seq:
		return cut(0, fmt.Sprintf("header names segment %d", binary.LittleEndian.Uint64(h[16:24])))
	}

	offset := int64(segmentHeaderSize)
	var payload []byte
	for {
		var rh [recordHeaderSize]byte
		n, err := io.ReadFull(in, rh[:])
		if errors.Is(err, io.EOF) && n == 0 {
			return records, size, nil, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return cut(offset, "incomplete record header")
			}
			return records, size, nil, fmt.Errorf("reading segment %s: %w", path, err)
		}
		length := int64(binary.LittleEndian.Uint32(rh[0:4]))
		sum := binary.LittleEndian.Uint32(rh[4:8])
		if length == 0 || length > MaxRecordBytes || length > size-offset-recordHeaderSize {
			if length > size-offset-recordHeaderSize && length <= MaxRecordBytes {
				return cut(offset, "incomplete record")
			}
			return cut(offset, fmt.Sprintf("record declares an impossible length %d", length))
		}
		if int64(cap(payload)) < length {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if _, err := io.ReadFull(in, payload); err != nil {
			return records, size, nil, fmt.Errorf("reading segment %s: %w", path, err)
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			return cut(offset, "record checksum mismatch")
		}
		if err := fn(seq, payload); err != nil {
			return records, size, nil, fmt.Errorf("replaying record at byte %d of segment %s: %w", offset, path, err)
		}
		records++
		offset += recordHeaderSize + length
	}
}
