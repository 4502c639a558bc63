package convert

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"unsafe"

	"github.com/deltapipeline/deltapipeline/internal/otlpwire"
)

// Stream identities from the wire: the canonical encoding of identity.go
// (attributes sorted by key, the first of a repeated key kept, values
// tagged), built from encoded KeyValues and AnyValues, byte for byte.

// validKeyValue checks an attribute that is not part of an identity.
func (r *EncodedRequest) validKeyValue(b []byte) bool {
	base := len(r.kvs)
	if !r.collectKeyValue(b) {
		r.kvs = r.kvs[:base]
		return false
	}
	var ok bool
	r.buf, ok = r.appendMap(r.buf[:0], base)
	return ok
}

// hashPoint is encoder.hashStream from the wire, for the attributes
// collected in r.kvs from attrs on.
func (r *EncodedRequest) hashPoint(prefix streamPrefix, attrs int) (hash128, bool) {
	b := prefix.resource.appendTo(r.buf[:0])
	b = prefix.scope.appendTo(b)
	b = prefix.metric.appendTo(b)
	b, ok := r.appendMap(b, attrs)
	r.buf = b
	return hashBytes(b), ok
}

// collectKeyValue appends one encoded KeyValue to r.kvs. r.kvs is a stack:
// a map's entries are those from where its reader started collecting, and
// appendMap pops them.
func (r *EncodedRequest) collectKeyValue(b []byte) bool {
	// The usual encoding: the key and the value, each shorter than 128
	// bytes, in field order (protobuf's encoders) or in reverse (pdata's).
	if len(b) >= 4 && b[1] < 0x80 {
		second := 2 + int(b[1])
		if second+2 <= len(b) && b[second+1] < 0x80 && second+2+int(b[second+1]) == len(b) {
			first, last := b[2:second:second], b[second+2:]
			switch {
			case b[0] == tagKeyValueKey && b[second] == tagKeyValueValue:
				r.kvs = append(r.kvs, wireKeyValue{key: first, value: last})
				return true
			case b[0] == tagKeyValueValue && b[second] == tagKeyValueKey:
				r.kvs = append(r.kvs, wireKeyValue{key: last, value: first})
				return true
			}
		}
	}
	var seen once
	var kv wireKeyValue
	for len(b) > 0 {
		f, next, ok := otlpwire.Next(b)
		if !ok || f.Type != otlpwire.Bytes {
			return false
		}
		switch f.Num {
		case fieldKeyValueKey:
			kv.key = f.Data
		case fieldKeyValueValue:
			kv.value = f.Data
		default:
			return false
		}
		if !seen.first(f.Num) {
			return false
		}
		b = next
	}
	r.kvs = append(r.kvs, kv)
	return true
}

// appendMap is encoder.appendMap for the entries collected in r.kvs from
// base on: sorted by key, the first of a repeated key kept. It pops them.
func (r *EncodedRequest) appendMap(b []byte, base int) ([]byte, bool) {
	defer func() { r.kvs = r.kvs[:base] }()
	unique := r.kvs[base:]
	if !strictlySorted(unique) && !r.order.reorder(unique, &r.sortScratch) {
		sortWireKeys(unique)
		unique = firstOfEachWireKey(unique)
	}
	end := base + len(unique)
	r.kvs = r.kvs[:end]
	b = binary.AppendUvarint(b, uint64(len(unique)))
	for i := base; i < end; i++ {
		// Indexed afresh: a nested map's entries may grow r.kvs.
		kv := r.kvs[i]
		b = appendBytesString(b, kv.key)
		var ok bool
		if b, ok = r.appendValue(b, kv.value); !ok {
			return b, false
		}
	}
	return b, true
}

// strictlySorted reports whether keys increase, as they do when a sender
// writes every point's attributes in the same sorted order: then there is
// nothing to sort and no repeated key.
func strictlySorted(kvs []wireKeyValue) bool {
	for i := 1; i < len(kvs); i++ {
		if bytes.Compare(kvs[i-1].key, kvs[i].key) >= 0 {
			return false
		}
	}
	return true
}

// keyOrder remembers how the last attributes that came unsorted sort: the
// points of a metric usually list the same keys in the same order, so the
// next point's attributes sort the same way without a comparison.
type keyOrder struct {
	keys [][]byte
	// perm[i] is the position, as received, of the i-th key in order.
	perm []uint8
}

// reorder sorts kvs as the last attributes were sorted if they have the
// same keys in the same order, and otherwise learns how kvs sorts (unless
// it repeats a key or is long) and sorts it. It reports whether kvs is now
// sorted without repeated keys.
func (o *keyOrder) reorder(kvs []wireKeyValue, scratch *[]wireKeyValue) bool {
	same := len(kvs) == len(o.keys)
	for i := 0; same && i < len(kvs); i++ {
		same = bytes.Equal(kvs[i].key, o.keys[i])
	}
	if !same {
		if len(kvs) > math.MaxUint8 || !o.learn(kvs) {
			o.keys = o.keys[:0]
			return false
		}
	}
	*scratch = append((*scratch)[:0], kvs...)
	for i, from := range o.perm {
		kvs[i] = (*scratch)[from]
	}
	return true
}

// learn records the order of kvs's keys, or reports that a key repeats.
func (o *keyOrder) learn(kvs []wireKeyValue) bool {
	o.keys = o.keys[:0]
	o.perm = o.perm[:0]
	for i, kv := range kvs {
		o.keys = append(o.keys, kv.key)
		o.perm = append(o.perm, uint8(i))
	}
	for i := 1; i < len(o.perm); i++ {
		for j := i; j > 0 && bytes.Compare(o.keys[o.perm[j]], o.keys[o.perm[j-1]]) < 0; j-- {
			o.perm[j], o.perm[j-1] = o.perm[j-1], o.perm[j]
		}
	}
	for i := 1; i < len(o.perm); i++ {
		if bytes.Equal(o.keys[o.perm[i]], o.keys[o.perm[i-1]]) {
			return false
		}
	}
	return true
}

// sortWireKeys sorts attributes by key, repeated keys in input order (as
// sortByKey does): an insertion sort, the fastest for the few attributes a
// point has.
func sortWireKeys(kvs []wireKeyValue) {
	if len(kvs) > 12 {
		slices.SortStableFunc(kvs, func(x, y wireKeyValue) int { return bytes.Compare(x.key, y.key) })
		return
	}
	for i := 1; i < len(kvs); i++ {
		for j := i; j > 0 && bytes.Compare(kvs[j].key, kvs[j-1].key) < 0; j-- {
			kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
		}
	}
}

// firstOfEachWireKey is firstOfEachKey for sorted wire attributes.
func firstOfEachWireKey(kvs []wireKeyValue) []wireKeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		if len(out) > 0 && bytes.Equal(out[len(out)-1].key, kv.key) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// appendValue is encoder.appendValue from an encoded AnyValue. Nested maps
// collect their entries behind the caller's, in r.kvs's spare capacity.
func (r *EncodedRequest) appendValue(b []byte, value []byte) ([]byte, bool) {
	if len(value) == 0 {
		return append(b, tagEmpty), true
	}
	if len(value) >= 2 && value[0] == tagAnyString && value[1] < 0x80 && 2+int(value[1]) == len(value) {
		return appendBytesString(append(b, tagStr), value[2:]), true
	}
	f, rest, ok := otlpwire.Next(value)
	if !ok || len(rest) != 0 {
		// pdata keeps the last of several values; none is read here.
		return b, false
	}
	switch {
	case f.Num == fieldAnyString && f.Type == otlpwire.Bytes:
		return appendBytesString(append(b, tagStr), f.Data), true
	case f.Num == fieldAnyBool && f.Type == otlpwire.Varint:
		v := byte(0)
		if f.Value != 0 {
			v = 1
		}
		return append(b, tagBool, v), true
	case f.Num == fieldAnyInt && f.Type == otlpwire.Varint:
		return binary.LittleEndian.AppendUint64(append(b, tagInt), f.Value), true
	case f.Num == fieldAnyDouble && f.Type == otlpwire.Fixed64:
		return binary.LittleEndian.AppendUint64(append(b, tagDouble), f.Value), true
	case f.Num == fieldAnyBytes && f.Type == otlpwire.Bytes:
		return appendBytesString(append(b, tagBytes), f.Data), true
	case (f.Num == fieldAnyArray || f.Num == fieldAnyKVList) && r.depth >= maxEncodedDepth:
		return b, false
	case f.Num == fieldAnyArray && f.Type == otlpwire.Bytes:
		r.depth++
		defer func() { r.depth-- }()
		n := 0
		for list := f.Data; len(list) > 0; n++ {
			e, next, ok := otlpwire.Next(list)
			if !ok || e.Num != fieldListValues || e.Type != otlpwire.Bytes {
				return b, false
			}
			list = next
		}
		b = binary.AppendUvarint(append(b, tagSlice), uint64(n))
		for list := f.Data; len(list) > 0; {
			e, next, _ := otlpwire.Next(list)
			if b, ok = r.appendValue(b, e.Data); !ok {
				return b, false
			}
			list = next
		}
		return b, true
	case f.Num == fieldAnyKVList && f.Type == otlpwire.Bytes:
		r.depth++
		defer func() { r.depth-- }()
		base := len(r.kvs)
		for list := f.Data; len(list) > 0; {
			e, next, ok := otlpwire.Next(list)
			if !ok || e.Num != fieldListValues || e.Type != otlpwire.Bytes || !r.collectKeyValue(e.Data) {
				r.kvs = r.kvs[:base]
				return b, false
			}
			list = next
		}
		return r.appendMap(append(b, tagMap), base)
	}
	return b, false
}

func appendBytesString(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// unsafeString views b as a string for hashing, which does not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
