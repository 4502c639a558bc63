package convert

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"

	"github.com/zeebo/xxh3"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// hash128 identifies a stream, a descriptor or an attribute. 128 bits make
// an accidental collision between two of even billions of streams so
// unlikely that the engine trusts the hash as the identity.
type hash128 struct{ hi, lo uint64 }

func hashBytes(b []byte) hash128 {
	h := xxh3.Hash128(b)
	return hash128{hi: h.Hi, lo: h.Lo}
}

func (h hash128) appendTo(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, h.hi)
	return binary.LittleEndian.AppendUint64(b, h.lo)
}

// Tags of the canonical value encoding. The encoding is used both to hash
// identities and to store them in stream records, so it must stay stable.
const (
	tagEmpty byte = iota
	tagStr
	tagBool
	tagInt
	tagDouble
	tagBytes
	tagSlice
	tagMap
)

// keyedValue is one attribute collected for sorting by key.
type keyedValue struct {
	key   string
	value pcommon.Value
}

// encoder builds canonical encodings in a reusable buffer. Attribute order
// never changes an encoding: map entries are written sorted by key.
type encoder struct {
	buf []byte
	// sorted is reused for the top-level map so that hashing the point
	// attributes of a known stream does not allocate.
	sorted []keyedValue
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (e *encoder) appendMap(b []byte, m pcommon.Map, depth int) []byte {
	var kvs []keyedValue
	if depth == 0 {
		kvs = e.sorted[:0]
	} else {
		kvs = make([]keyedValue, 0, m.Len())
	}
	for k, v := range m.All() {
		kvs = append(kvs, keyedValue{key: k, value: v})
	}
	sortByKey(kvs)
	collected := len(kvs)
	kvs = firstOfEachKey(kvs)
	if depth == 0 {
		e.sorted = kvs
	}
	b = binary.AppendUvarint(b, uint64(len(kvs)))
	for i := range kvs {
		b = appendString(b, kvs[i].key)
		b = e.appendValue(b, kvs[i].value, depth+1)
	}
	if depth == 0 {
		// Drop references to md so the pooled encoder does not retain it.
		clear(e.sorted[:collected])
	}
	return b
}

// sortByKey sorts attributes by key, keeping repeated keys in input order.
func sortByKey(kvs []keyedValue) {
	slices.SortStableFunc(kvs, compareKeys)
}

func compareKeys(a, b keyedValue) int { return strings.Compare(a.key, b.key) }

// firstOfEachKey drops repeated keys from sorted attributes, keeping the
// first occurrence as pcommon.Map.Get does. OTLP forbids repeated keys, but
// a request may still carry them.
func firstOfEachKey(kvs []keyedValue) []keyedValue {
	out := kvs[:0]
	for i := range kvs {
		if len(out) > 0 && out[len(out)-1].key == kvs[i].key {
			continue
		}
		out = append(out, kvs[i])
	}
	return out
}

func (e *encoder) appendValue(b []byte, v pcommon.Value, depth int) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b = append(b, tagStr)
		return appendString(b, v.Str())
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return append(b, tagBool, 1)
		}
		return append(b, tagBool, 0)
	case pcommon.ValueTypeInt:
		b = append(b, tagInt)
		return binary.LittleEndian.AppendUint64(b, uint64(v.Int()))
	case pcommon.ValueTypeDouble:
		b = append(b, tagDouble)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBytes:
		bs := v.Bytes()
		b = append(b, tagBytes)
		b = binary.AppendUvarint(b, uint64(bs.Len()))
		for _, c := range bs.All() {
			b = append(b, c)
		}
		return b
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		b = append(b, tagSlice)
		b = binary.AppendUvarint(b, uint64(s.Len()))
		for i := 0; i < s.Len(); i++ {
			b = e.appendValue(b, s.At(i), depth+1)
		}
		return b
	case pcommon.ValueTypeMap:
		b = append(b, tagMap)
		return e.appendMap(b, v.Map(), depth+1)
	default:
		return append(b, tagEmpty)
	}
}

// hashAttributes hashes a resource's attributes.
func (e *encoder) hashAttributes(m pcommon.Map) hash128 {
	e.buf = e.appendMap(e.buf[:0], m, 0)
	return hashBytes(e.buf)
}

func (e *encoder) hashScope(s pcommon.InstrumentationScope) hash128 {
	b := appendString(e.buf[:0], s.Name())
	b = appendString(b, s.Version())
	b = e.appendMap(b, s.Attributes(), 0)
	e.buf = b
	return hashBytes(b)
}

// metricShape is the part of a metric that belongs to stream identity.
type metricShape struct {
	name        string
	unit        string
	typ         pmetric.MetricType
	monotonic   bool
	temporality pmetric.AggregationTemporality
}

func (e *encoder) hashMetric(m metricShape) hash128 {
	b := appendString(e.buf[:0], m.name)
	b = appendString(b, m.unit)
	mono := byte(0)
	if m.monotonic {
		mono = 1
	}
	b = append(b, byte(m.typ), mono, byte(m.temporality))
	e.buf = b
	return hashBytes(b)
}

// streamPrefix is the identity of everything above the point: resource,
// scope and metric, each already hashed.
type streamPrefix struct {
	resource, scope, metric hash128
}

// hashStream hashes the full stream identity.
func (e *encoder) hashStream(p streamPrefix, attrs pcommon.Map) hash128 {
	b := p.resource.appendTo(e.buf[:0])
	b = p.scope.appendTo(b)
	b = p.metric.appendTo(b)
	b = e.appendMap(b, attrs, 0)
	e.buf = b
	return hashBytes(b)
}

// hashAttribute hashes one key/value pair for interning.
func (e *encoder) hashAttribute(key string, v pcommon.Value) hash128 {
	b := appendString(e.buf[:0], key)
	b = e.appendValue(b, v, 1)
	e.buf = b
	return hashBytes(b)
}

// sortedAttributes returns m's attributes sorted by key in a fresh slice
// (used only when a stream is created).
func sortedAttributes(m pcommon.Map) []keyedValue {
	kvs := make([]keyedValue, 0, m.Len())
	for k, v := range m.All() {
		kvs = append(kvs, keyedValue{key: k, value: v})
	}
	sortByKey(kvs)
	return firstOfEachKey(kvs)
}
