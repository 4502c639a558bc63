// Package otlpwire reads and writes the protobuf encoding of OTLP messages
// one field at a time, without pdata. The worker reads the points of the
// streams it already holds this way (internal/convert), so that a request
// of known streams costs no allocation per point, and the gateway's router
// writes each worker's share of a request with it.
//
// It only reads and writes fields; what a field means is the caller's. The readers
// report a malformed encoding by returning ok false rather than an error:
// their callers then hand the bytes to the pdata decoder, whose error is
// the one a sender sees.
package otlpwire

import (
	"encoding/binary"
	"math"
)

// Type is a protobuf wire type.
type Type uint8

const (
	Varint  Type = 0
	Fixed64 Type = 1
	Bytes   Type = 2
	Fixed32 Type = 5
)

// Field is one field of a message: its number, its wire type and its value,
// Value for varint and fixed-width fields, Data for length-delimited ones.
type Field struct {
	Num   int
	Type  Type
	Value uint64
	Data  []byte
}

// maxFieldNum is protobuf's largest field number.
const maxFieldNum = 1<<29 - 1

// Next reads the field at the start of b and returns it with the bytes
// after it. ok is false when b does not start with a complete field of a
// known wire type (groups are deprecated and never used by OTLP, so they
// count as malformed here).
func Next(b []byte) (f Field, rest []byte, ok bool) {
	// Most fields of a metrics request are short length-delimited ones
	// with a one-byte tag and a one-byte length: read those inline.
	if len(b) >= 2 && b[0] < 0x80 && b[0]&7 == byte(Bytes) && b[0] > 7 && b[1] < 0x80 {
		if end := 2 + int(b[1]); end <= len(b) {
			return Field{Num: int(b[0] >> 3), Type: Bytes, Data: b[2:end:end]}, b[end:], true
		}
	}
	return next(b)
}

func next(b []byte) (f Field, rest []byte, ok bool) {
	tag, n := Uvarint(b)
	if n <= 0 {
		return Field{}, nil, false
	}
	b = b[n:]
	num := tag >> 3
	if num == 0 || num > maxFieldNum {
		return Field{}, nil, false
	}
	f.Num, f.Type = int(num), Type(tag&7)
	switch f.Type {
	case Varint:
		if f.Value, n = Uvarint(b); n <= 0 {
			return Field{}, nil, false
		}
		return f, b[n:], true
	case Fixed64:
		if len(b) < 8 {
			return Field{}, nil, false
		}
		f.Value = binary.LittleEndian.Uint64(b)
		return f, b[8:], true
	case Fixed32:
		if len(b) < 4 {
			return Field{}, nil, false
		}
		f.Value = uint64(binary.LittleEndian.Uint32(b))
		return f, b[4:], true
	case Bytes:
		size, n := Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return Field{}, nil, false
		}
		end := n + int(size)
		f.Data = b[n:end:end]
		return f, b[end:], true
	}
	return Field{}, nil, false
}

// Uvarint decodes a varint from the start of b and returns it with the
// number of bytes read, 0 when b ends first and -1 when it overflows 64 bits.
func Uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

// PackedFixed64 reports how many fixed64 values a packed repeated field
// holds, or ok false when its length is not a multiple of 8.
func PackedFixed64(data []byte) (n int, ok bool) {
	return len(data) / 8, len(data)%8 == 0
}

// Fixed64At is the i-th value of a packed repeated fixed64 field.
func Fixed64At(data []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(data[8*i:])
}

// DoubleAt is the i-th value of a packed repeated double field.
func DoubleAt(data []byte, i int) float64 {
	return math.Float64frombits(Fixed64At(data, i))
}
