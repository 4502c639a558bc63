package otlpwire

import "math/bits"

// Writing fields. The gateway's router encodes each worker's share of a
// request while it splits it, and the worker writes the rest of a request it
// read in place; both build nested messages whose lengths are known only at
// their end.

// Tag is the one-byte tag of a field numbered below 16, which every OTLP
// metrics field is.
func Tag(field int, t Type) byte { return byte(field<<3) | byte(t) }

// VarintLen is how many bytes AppendVarint writes for v.
func VarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// AppendVarint appends v as a varint.
func AppendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// AppendLenField appends the tag and the length of a length-delimited field
// of n bytes, whose body the caller appends next.
func AppendLenField(b []byte, field int, n int) []byte {
	return AppendVarint(append(b, Tag(field, Bytes)), uint64(n))
}

// BeginMessage starts a nested message of the given field with room for a
// length of reserve bytes, and returns where its body starts. Reserving the
// length's likely size lets EndMessage fill it in place instead of moving
// the body.
func BeginMessage(b []byte, field, reserve int) ([]byte, int) {
	b = append(b, Tag(field, Bytes))
	for range reserve {
		b = append(b, 0)
	}
	return b, len(b)
}

// EndMessage writes the length of the body that starts at start (as
// returned by BeginMessage with the same reserve), moving the body when the
// length needs more or fewer bytes than reserved.
func EndMessage(b []byte, start, reserve int) []byte {
	n := len(b) - start
	k := VarintLen(uint64(n))
	if k > reserve {
		grow := k - reserve
		for range grow {
			b = append(b, 0)
		}
		copy(b[start+grow:], b[start:start+n])
	} else if k < reserve {
		shrink := reserve - k
		copy(b[start-shrink:], b[start:start+n])
		b = b[:len(b)-shrink]
	}
	at := start - reserve
	v := uint64(n)
	for v >= 0x80 {
		b[at] = byte(v) | 0x80
		v >>= 7
		at++
	}
	b[at] = byte(v)
	return b
}
