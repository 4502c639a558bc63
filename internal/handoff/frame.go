package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A frame is what one peer call carries: the sender's ordinal and the
// membership epoch it acts on, then entries in the order the sender queued
// them. The order matters: a stream's record always precedes the points
// forwarded for it, and a done marker follows every record it covers.
//
//	frame   = version epoch sender count entry*
//	entry   = kind length payload
//	version = 0x01; epoch, sender, count, length = uvarint; kind = byte
//
// A frame is also a journal record (see IsFrame): its first byte is 0, so
// that it is never mistaken for an OTLP request, whose first byte is a
// protobuf tag with a field number of at least 1.
const (
	frameMarker  byte = 0x00
	frameVersion byte = 0x01
)

// entryKind is what an entry's payload is.
type entryKind byte

const (
	// entryRecord: one stream's self-contained record (convert's format).
	entryRecord entryKind = iota + 1
	// entryPoints: an OTLP ExportMetricsServiceRequest of forwarded points.
	entryPoints
	// entryDone: uvarint epoch; every record the sender had for the
	// receiver at that epoch came before it.
	entryDone
)

func (k entryKind) String() string {
	switch k {
	case entryRecord:
		return "record"
	case entryPoints:
		return "points"
	case entryDone:
		return "done"
	default:
		return fmt.Sprintf("kind %d", byte(k))
	}
}

type entry struct {
	kind    entryKind
	payload []byte
}

type frameHeader struct {
	epoch  uint64
	sender int
}

// IsFrame reports whether a journal record is a hand-over frame rather
// than an OTLP request.
func IsFrame(record []byte) bool { return len(record) > 1 && record[0] == frameMarker }

func appendFrame(b []byte, h frameHeader, entries []entry) []byte {
	b = append(b, frameMarker, frameVersion)
	b = binary.AppendUvarint(b, h.epoch)
	b = binary.AppendUvarint(b, uint64(h.sender))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, byte(e.kind))
		b = binary.AppendUvarint(b, uint64(len(e.payload)))
		b = append(b, e.payload...)
	}
	return b
}

// maxSender bounds a sender's ordinal to what a StatefulSet can have.
const maxSender = 1 << 20

var errTruncated = errors.New("frame is truncated")

// parseFrame decodes a frame; entries' payloads alias b.
func parseFrame(b []byte) (frameHeader, []entry, error) {
	if len(b) < 2 || b[0] != frameMarker {
		return frameHeader{}, nil, errors.New("not a hand-over frame")
	}
	if b[1] != frameVersion {
		return frameHeader{}, nil, fmt.Errorf("hand-over frame version %d is not supported (want %d)", b[1], frameVersion)
	}
	b = b[2:]
	next := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("reading the frame's %s: %w", what, errTruncated)
		}
		b = b[n:]
		return v, nil
	}
	var h frameHeader
	epoch, err := next("epoch")
	if err != nil {
		return h, nil, err
	}
	sender, err := next("sender")
	if err != nil {
		return h, nil, err
	}
	if sender >= maxSender {
		return h, nil, fmt.Errorf("frame sender ordinal %d is out of range", sender)
	}
	h = frameHeader{epoch: epoch, sender: int(sender)}
	count, err := next("entry count")
	if err != nil {
		return h, nil, err
	}
	// Every entry takes at least two bytes, which bounds the allocation
	// for a frame that lies about its count.
	if count > uint64(len(b)/2) {
		return h, nil, fmt.Errorf("frame claims %d entries in %d bytes: %w", count, len(b), errTruncated)
	}
	entries := make([]entry, 0, count)
	for i := range count {
		if len(b) == 0 {
			return h, nil, fmt.Errorf("entry %d: %w", i, errTruncated)
		}
		kind := entryKind(b[0])
		b = b[1:]
		if kind < entryRecord || kind > entryDone {
			return h, nil, fmt.Errorf("entry %d has unknown kind %d", i, byte(kind))
		}
		n, err := next("entry length")
		if err != nil {
			return h, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if n > uint64(len(b)) {
			return h, nil, fmt.Errorf("entry %d of %d bytes: %w", i, n, errTruncated)
		}
		entries = append(entries, entry{kind: kind, payload: b[:n:n]})
		b = b[n:]
	}
	if len(b) != 0 {
		return h, nil, fmt.Errorf("frame has %d bytes after its last entry", len(b))
	}
	return h, entries, nil
}

func donePayload(epoch uint64) []byte { return binary.AppendUvarint(nil, epoch) }

func parseDone(p []byte) (uint64, error) {
	epoch, n := binary.Uvarint(p)
	if n <= 0 || n != len(p) {
		return 0, errors.New("done marker does not hold one epoch")
	}
	return epoch, nil
}
