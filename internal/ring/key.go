package ring

import (
	"fmt"
	"math"

	"github.com/zeebo/xxh3"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Key is a stream's routing key: the hash of the parts of its identity that
// the pipeline's routing key names.
type Key uint64

// KeyKind names what the routing key hashes; the values are those of the
// DeltaPipeline API's spec.routing.key.
type KeyKind string

const (
	// KeyStreamID hashes the whole stream identity: resource, scope, metric
	// and point attributes.
	KeyStreamID KeyKind = "streamID"
	// KeyAttributes hashes the values of a list of attributes, looked up on
	// the point first, then on its scope, then on its resource.
	KeyAttributes KeyKind = "attributes"
	// KeyResource hashes the resource attributes.
	KeyResource KeyKind = "resource"
	// KeyService hashes the resource attribute service.name.
	KeyService KeyKind = "service"
)

const serviceNameKey = "service.name"

// Keyer computes routing keys level by level, so a request's resource,
// scope and metric are hashed once, not once per point. A Keyer is
// immutable and safe for concurrent use; computing a key does not allocate.
type Keyer struct {
	kind       KeyKind
	attributes []string
}

// NewKeyer returns the Keyer of a routing key; attributes are used only by
// KeyAttributes and must then be non-empty.
func NewKeyer(kind KeyKind, attributes []string) (*Keyer, error) {
	switch kind {
	case KeyStreamID, KeyResource, KeyService:
		return &Keyer{kind: kind}, nil
	case KeyAttributes:
		if len(attributes) == 0 {
			return nil, fmt.Errorf("routing key %q needs at least one attribute", kind)
		}
		return &Keyer{kind: kind, attributes: append([]string(nil), attributes...)}, nil
	default:
		return nil, fmt.Errorf("unknown routing key %q: want %s, %s, %s or %s", kind, KeyStreamID, KeyAttributes, KeyResource, KeyService)
	}
}

// Kind is what the Keyer hashes.
func (k *Keyer) Kind() KeyKind { return k.kind }

// PerPoint reports whether points of one metric can have different keys.
// With KeyResource and KeyService, every point of a resource has its key.
func (k *Keyer) PerPoint() bool { return k.kind == KeyStreamID || k.kind == KeyAttributes }

// ResourceLevel is what a key needs from a resource.
type ResourceLevel struct {
	attrs pcommon.Map
	hash  uint64
}

// ScopeLevel is what a key needs from a resource and a scope.
type ScopeLevel struct {
	resource ResourceLevel
	attrs    pcommon.Map
	hash     uint64
}

// MetricLevel is what a key needs from everything above a point.
type MetricLevel struct {
	scope ScopeLevel
	hash  uint64
}

// Resource starts the key of the points of one resource.
func (k *Keyer) Resource(r pcommon.Resource) ResourceLevel {
	return k.ResourceAttributes(r.Attributes())
}

// ResourceAttributes is Resource for a resource known by its attributes, as
// a worker knows the resources of the streams it holds.
func (k *Keyer) ResourceAttributes(attrs pcommon.Map) ResourceLevel {
	l := ResourceLevel{attrs: attrs}
	switch k.kind {
	case KeyStreamID, KeyResource:
		l.hash = hashMap(l.attrs)
	case KeyService:
		if v, ok := l.attrs.Get(serviceNameKey); ok {
			l.hash = hashValue(v)
		}
	}
	return l
}

// Scope continues a key with an instrumentation scope.
func (k *Keyer) Scope(r ResourceLevel, s pcommon.InstrumentationScope) ScopeLevel {
	return k.ScopeParts(r, s.Name(), s.Version(), s.Attributes())
}

// ScopeParts is Scope for a scope known by its parts.
func (k *Keyer) ScopeParts(r ResourceLevel, name, version string, attrs pcommon.Map) ScopeLevel {
	l := ScopeLevel{resource: r, attrs: attrs, hash: r.hash}
	if k.kind == KeyStreamID {
		h := mix(r.hash, xxh3.HashString(name))
		h = mix(h, xxh3.HashString(version))
		l.hash = mix(h, hashMap(l.attrs))
	}
	return l
}

// Metric continues a key with a metric. The temporality and monotonicity
// belong to the identity: a delta and a cumulative metric of one name are
// different streams.
func (k *Keyer) Metric(s ScopeLevel, m pmetric.Metric) MetricLevel {
	temporality, monotonic := shape(m)
	return k.MetricParts(s, m.Name(), m.Unit(), m.Type(), temporality, monotonic)
}

// MetricParts is Metric for a metric known by its parts.
func (k *Keyer) MetricParts(s ScopeLevel, name, unit string, typ pmetric.MetricType, temporality pmetric.AggregationTemporality, monotonic bool) MetricLevel {
	l := MetricLevel{scope: s, hash: s.hash}
	if k.kind == KeyStreamID {
		h := mix(s.hash, xxh3.HashString(name))
		h = mix(h, xxh3.HashString(unit))
		mono := uint64(0)
		if monotonic {
			mono = 1
		}
		l.hash = mix(h, uint64(typ)<<16|uint64(temporality)<<8|mono)
	}
	return l
}

func shape(m pmetric.Metric) (pmetric.AggregationTemporality, bool) {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().AggregationTemporality(), m.Sum().IsMonotonic()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().AggregationTemporality(), false
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().AggregationTemporality(), false
	default:
		return pmetric.AggregationTemporalityUnspecified, false
	}
}

// Point finishes the key of one data point from its attributes.
func (k *Keyer) Point(m MetricLevel, attrs pcommon.Map) Key {
	switch k.kind {
	case KeyStreamID:
		return Key(mix(m.hash, hashMap(attrs)))
	case KeyAttributes:
		h := uint64(0)
		for _, name := range k.attributes {
			h = mix(h, k.lookup(m.scope, attrs, name))
		}
		return Key(h)
	default:
		return Key(m.hash)
	}
}

// lookup hashes the most specific value of an attribute: the point's, else
// the scope's, else the resource's; an attribute found nowhere hashes as
// absent, so points without it still share a key.
func (k *Keyer) lookup(s ScopeLevel, point pcommon.Map, name string) uint64 {
	for _, m := range [...]pcommon.Map{point, s.attrs, s.resource.attrs} {
		if v, ok := m.Get(name); ok {
			return hashValue(v)
		}
	}
	return absent
}

// Value tags keep values of different types apart (the string "1" and the
// integer 1 are different attributes).
const (
	tagEmpty uint64 = iota + 1
	tagStr
	tagBool
	tagInt
	tagDouble
	tagBytes
	tagSlice
	tagMap
	absent
)

// hashMap is independent of the order of the entries, as attribute identity
// is: entry hashes are combined by addition, so no sorting (and no buffer)
// is needed.
func hashMap(m pcommon.Map) uint64 {
	sum := uint64(m.Len())
	for key, v := range m.All() {
		sum += mix(xxh3.HashString(key), hashValue(v))
	}
	return sum
}

func hashValue(v pcommon.Value) uint64 {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return mix(tagStr, xxh3.HashString(v.Str()))
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return mix(tagBool, 1)
		}
		return mix(tagBool, 0)
	case pcommon.ValueTypeInt:
		return mix(tagInt, uint64(v.Int()))
	case pcommon.ValueTypeDouble:
		return mix(tagDouble, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBytes:
		return mix(tagBytes, xxh3.Hash(v.Bytes().AsRaw()))
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		h := mix(tagSlice, uint64(s.Len()))
		for i := range s.Len() {
			h = mix(h, hashValue(s.At(i)))
		}
		return h
	case pcommon.ValueTypeMap:
		return mix(tagMap, hashMap(v.Map()))
	default:
		return tagEmpty
	}
}

// mix combines two hashes, in order (mix(a, b) != mix(b, a)), with the
// 128-to-64-bit reduction of CityHash: cheap, and every input bit reaches
// every output bit, which jump hashing needs from its key.
func mix(a, b uint64) uint64 {
	const k = 0x9ddfea08eb382d69
	x := (b ^ a) * k
	x ^= x >> 47
	y := (a ^ x) * k
	y ^= y >> 47
	return y * k
}

// ResourceKey is the key of every point of a resource when the Keyer does
// not key per point (PerPoint is false).
func (k *Keyer) ResourceKey(r ResourceLevel) Key { return Key(r.hash) }
