package convert

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/otlpwire"
)

// Reading a request from its protobuf encoding. Decoding a request into
// pdata allocates every string and slice of every point, and collecting
// that garbage costs more than the conversion itself; but a point of a
// stream the engine already holds needs nothing but its identity and its
// values, both readable from the bytes in place. ReadEncoded reads those,
// ApplyHeld folds the points of held streams and returns the rest, which
// the caller decodes and applies as before: points that start a stream,
// that belong elsewhere, that are invalid or that carry no recorded value.
//
// ReadEncoded accepts only encodings whose meaning it knows exactly as the
// pdata decoder gives it: a field it does not read, a singular field given
// twice, a value that pdata would decode differently make it decline, and
// the caller decodes the whole request with pdata instead. The identities it
// computes are the canonical encodings of identity.go, byte for byte, so a
// stream read either way is the same stream.

// OTLP metrics field numbers (opentelemetry-proto metrics/v1, common/v1,
// resource/v1).
const (
	fieldRequestResourceMetrics = 1

	fieldRMResource     = 1
	fieldRMScopeMetrics = 2
	fieldRMSchemaURL    = 3

	fieldResourceAttributes = 1
	fieldResourceDropped    = 2
	fieldResourceEntityRefs = 3

	fieldSMScope     = 1
	fieldSMMetrics   = 2
	fieldSMSchemaURL = 3

	fieldScopeName       = 1
	fieldScopeVersion    = 2
	fieldScopeAttributes = 3
	fieldScopeDropped    = 4

	fieldMetricName        = 1
	fieldMetricDescription = 2
	fieldMetricUnit        = 3
	fieldMetricGauge       = 5
	fieldMetricSum         = 7
	fieldMetricHistogram   = 9
	fieldMetricExpHist     = 10
	fieldMetricSummary     = 11
	fieldMetricMetadata    = 12

	fieldDataPoints      = 1
	fieldDataTemporality = 2
	fieldSumMonotonic    = 3

	fieldNumberStart      = 2
	fieldNumberTime       = 3
	fieldNumberDouble     = 4
	fieldNumberExemplars  = 5
	fieldNumberInt        = 6
	fieldNumberAttributes = 7
	fieldNumberFlags      = 8

	fieldHistStart      = 2
	fieldHistTime       = 3
	fieldHistCount      = 4
	fieldHistSum        = 5
	fieldHistCounts     = 6
	fieldHistBounds     = 7
	fieldHistExemplars  = 8
	fieldHistAttributes = 9
	fieldHistFlags      = 10
	fieldHistMin        = 11
	fieldHistMax        = 12

	fieldExemplarTime       = 2
	fieldExemplarDouble     = 3
	fieldExemplarSpanID     = 4
	fieldExemplarTraceID    = 5
	fieldExemplarInt        = 6
	fieldExemplarAttributes = 7

	fieldKeyValueKey   = 1
	fieldKeyValueValue = 2

	fieldAnyString = 1
	fieldAnyBool   = 2
	fieldAnyInt    = 3
	fieldAnyDouble = 4
	fieldAnyArray  = 5
	fieldAnyKVList = 6
	fieldAnyBytes  = 7

	fieldListValues = 1

	fieldEntityRefSchemaURL       = 1
	fieldEntityRefType            = 2
	fieldEntityRefIDKeys          = 3
	fieldEntityRefDescriptionKeys = 4
)

// One-byte tags of the length-delimited fields read most often.
const (
	tagKeyValueKey   = fieldKeyValueKey<<3 | byte(otlpwire.Bytes)
	tagKeyValueValue = fieldKeyValueValue<<3 | byte(otlpwire.Bytes)
	tagAnyString     = fieldAnyString<<3 | byte(otlpwire.Bytes)
)

// maxEncodedDepth bounds the nesting of attribute values read in place; a
// deeper value is left to pdata's decoder.
const maxEncodedDepth = 32

// temporalityDelta is AGGREGATION_TEMPORALITY_DELTA on the wire.
const temporalityDelta = 1

// flagNoRecordedValue is DataPointFlags.FLAG_NO_RECORDED_VALUE.
const flagNoRecordedValue = 1

// EncodedRequest is a request read by ReadEncoded. It refers to the bytes it
// was read from and to buffers of its own, reused once it is released.
type EncodedRequest struct {
	encoded   []byte
	resources []encodedParent
	scopes    []encodedParent
	metrics   []encodedParent
	points    []encodedPoint
	// deferred holds the streams of which a point went to the rest, so that
	// their later points of the same request follow it there in order.
	deferred map[hash128]struct{}
	buf      []byte
	kvs      []wireKeyValue
	rest     []byte
	// depth is how deeply the value being read is nested in arrays and maps.
	depth int
	// order and sortScratch sort attributes that do not come sorted.
	order       keyOrder
	sortScratch []wireKeyValue
}

// encodedParent is a resource, scope or metric of the request: its bytes,
// the index of its own parent, and whether a point below it is in the rest.
type encodedParent struct {
	raw    []byte
	parent int32
	// dataField is a metric's data field number (sum or histogram).
	dataField int
	inRest    bool
}

// encodedPoint is one data point of a delta sum or histogram read from the
// wire: its identity and the values ApplyHeld folds.
type encodedPoint struct {
	key    hash128
	raw    []byte
	metric int32
	kind   streamKind
	// slow points are left to the pdata path, which has the rules and the
	// messages for them: invalid points and points without a value.
	slow   bool
	inRest bool
	iv     interval
	// A sum's delta: an int64 or float64's bits.
	isInt bool
	value uint64
	// A histogram's delta; counts and bounds are packed fixed64 fields.
	count                  uint64
	sum, min, max          float64
	hasSum, hasMin, hasMax bool
	counts, bounds         []byte
}

type wireKeyValue struct{ key, value []byte }

var encodedRequestPool = sync.Pool{New: func() any { return &EncodedRequest{} }}

// ReadEncoded reads an OTLP ExportMetricsServiceRequest (or MetricsData)
// from its protobuf encoding, for ApplyHeld. It returns ok false, having
// kept nothing, when the request holds anything but DELTA sums and
// histograms (passthrough metrics, exponential histograms) or anything it
// does not read exactly as pdata would; the caller then decodes the request
// whole. encoded must stay unchanged until the request is released.
func ReadEncoded(encoded []byte) (r *EncodedRequest, ok bool) {
	r = encodedRequestPool.Get().(*EncodedRequest)
	r.encoded = encoded
	for b := encoded; len(b) > 0; {
		f, rest, ok := otlpwire.Next(b)
		if !ok || f.Num != fieldRequestResourceMetrics || f.Type != otlpwire.Bytes || !r.readResourceMetrics(f.Data) {
			r.Release()
			return nil, false
		}
		b = rest
	}
	return r, true
}

// Points is the number of data points in the request.
func (r *EncodedRequest) Points() int { return len(r.points) }

// Metrics is the number of metrics in the request, every one of them a
// DELTA sum or histogram.
func (r *EncodedRequest) Metrics() int { return len(r.metrics) }

// Release returns the request's buffers for reuse; neither the request nor
// the rest ApplyHeld returned may be used afterwards.
func (r *EncodedRequest) Release() {
	const keepPoints = 1 << 14
	if cap(r.points) > keepPoints || cap(r.rest) > 64<<20 {
		return
	}
	// The slices are truncated, not cleared: what they still point into is
	// a receive buffer that its pool reuses anyway, and clearing a thousand
	// points per request would cost more than the reading saves.
	r.encoded = nil
	r.resources = r.resources[:0]
	r.scopes = r.scopes[:0]
	r.metrics = r.metrics[:0]
	r.points = r.points[:0]
	r.kvs = r.kvs[:0]
	r.depth = 0
	r.order.keys = r.order.keys[:0]
	clear(r.deferred)
	r.rest = r.rest[:0]
	encodedRequestPool.Put(r)
}

// once tracks the singular fields of a message already met: pdata keeps the
// last of a repeated scalar and merges a repeated message, and the readers
// below would rather not guess.
type once uint32

func (o *once) first(field int) bool {
	bit := once(1) << field
	seen := *o&bit != 0
	*o |= bit
	return !seen
}

func (r *EncodedRequest) readResourceMetrics(b []byte) bool {
	var seen once
	var resource []byte
	for rest := b; len(rest) > 0; {
		f, next, ok := otlpwire.Next(rest)
		if !ok || f.Type != otlpwire.Bytes {
			return false
		}
		switch f.Num {
		case fieldRMResource:
			resource = f.Data
		case fieldRMScopeMetrics:
			rest = next
			continue
		case fieldRMSchemaURL:
		default:
			return false
		}
		if !seen.first(f.Num) {
			return false
		}
		rest = next
	}
	var prefix streamPrefix
	var ok bool
	if prefix.resource, ok = r.hashResource(resource); !ok {
		return false
	}
	r.resources = append(r.resources, encodedParent{raw: b, parent: -1})
	index := int32(len(r.resources) - 1)
	for rest := b; len(rest) > 0; {
		f, next, _ := otlpwire.Next(rest)
		if f.Num == fieldRMScopeMetrics && !r.readScopeMetrics(f.Data, index, prefix) {
			return false
		}
		rest = next
	}
	return true
}

func (r *EncodedRequest) hashResource(b []byte) (hash128, bool) {
	attrs := len(r.kvs)
	for len(b) > 0 {
		f, next, ok := otlpwire.Next(b)
		if !ok {
			return hash128{}, false
		}
		switch {
		case f.Num == fieldResourceAttributes && f.Type == otlpwire.Bytes:
			if !r.collectKeyValue(f.Data) {
				return hash128{}, false
			}
		case f.Num == fieldResourceDropped && f.Type == otlpwire.Varint:
		case f.Num == fieldResourceEntityRefs && f.Type == otlpwire.Bytes:
			if !validEntityRef(f.Data) {
				return hash128{}, false
			}
		default:
			return hash128{}, false
		}
		b = next
	}
	var ok bool
	if r.buf, ok = r.appendMap(r.buf[:0], attrs); !ok {
		return hash128{}, false
	}
	return hashBytes(r.buf), true
}

func validEntityRef(b []byte) bool {
	for len(b) > 0 {
		f, next, ok := otlpwire.Next(b)
		if !ok || f.Type != otlpwire.Bytes || f.Num < fieldEntityRefSchemaURL || f.Num > fieldEntityRefDescriptionKeys {
			return false
		}
		b = next
	}
	return true
}

func (r *EncodedRequest) readScopeMetrics(b []byte, resource int32, prefix streamPrefix) bool {
	var seen once
	var scope []byte
	for rest := b; len(rest) > 0; {
		f, next, ok := otlpwire.Next(rest)
		if !ok || f.Type != otlpwire.Bytes {
			return false
		}
		switch f.Num {
		case fieldSMScope:
			scope = f.Data
		case fieldSMMetrics:
			rest = next
			continue
		case fieldSMSchemaURL:
		default:
			return false
		}
		if !seen.first(f.Num) {
			return false
		}
		rest = next
	}
	var ok bool
	if prefix.scope, ok = r.hashScope(scope); !ok {
		return false
	}
	r.scopes = append(r.scopes, encodedParent{raw: b, parent: resource})
	index := int32(len(r.scopes) - 1)
	for rest := b; len(rest) > 0; {
		f, next, _ := otlpwire.Next(rest)
		if f.Num == fieldSMMetrics && !r.readMetric(f.Data, index, prefix) {
			return false
		}
		rest = next
	}
	return true
}

func (r *EncodedRequest) hashScope(b []byte) (hash128, bool) {
	var seen once
	var name, version []byte
	attrs := len(r.kvs)
	for len(b) > 0 {
		f, next, ok := otlpwire.Next(b)
		if !ok {
			return hash128{}, false
		}
		switch {
		case f.Num == fieldScopeName && f.Type == otlpwire.Bytes:
			name = f.Data
		case f.Num == fieldScopeVersion && f.Type == otlpwire.Bytes:
			version = f.Data
		case f.Num == fieldScopeAttributes && f.Type == otlpwire.Bytes:
			if !r.collectKeyValue(f.Data) {
				return hash128{}, false
			}
			b = next
			continue
		case f.Num == fieldScopeDropped && f.Type == otlpwire.Varint:
		default:
			return hash128{}, false
		}
		if !seen.first(f.Num) {
			return hash128{}, false
		}
		b = next
	}
	buf := appendBytesString(r.buf[:0], name)
	buf = appendBytesString(buf, version)
	buf, ok := r.appendMap(buf, attrs)
	r.buf = buf
	return hashBytes(buf), ok
}

func (r *EncodedRequest) readMetric(b []byte, scope int32, prefix streamPrefix) bool {
	var seen once
	var name, unit, data []byte
	dataField := 0
	for rest := b; len(rest) > 0; {
		f, next, ok := otlpwire.Next(rest)
		if !ok || f.Type != otlpwire.Bytes {
			return false
		}
		switch f.Num {
		case fieldMetricName:
			name = f.Data
		case fieldMetricDescription:
		case fieldMetricUnit:
			unit = f.Data
		case fieldMetricSum, fieldMetricHistogram:
			if dataField != 0 {
				return false
			}
			dataField, data = f.Num, f.Data
		case fieldMetricMetadata:
			if !r.validKeyValue(f.Data) {
				return false
			}
			rest = next
			continue
		default:
			// Gauges, summaries and exponential histograms, or a field
			// not read here: the request is decoded whole.
			return false
		}
		if !seen.first(f.Num) {
			return false
		}
		rest = next
	}
	if dataField == 0 {
		return false
	}
	shape := metricShape{name: unsafeString(name), unit: unsafeString(unit), temporality: pmetric.AggregationTemporalityDelta}
	kind := kindSum
	shape.typ = pmetric.MetricTypeSum
	if dataField == fieldMetricHistogram {
		kind, shape.typ = kindHistogram, pmetric.MetricTypeHistogram
	}
	var seenData once
	temporality := uint64(0)
	for rest := data; len(rest) > 0; {
		f, next, ok := otlpwire.Next(rest)
		if !ok {
			return false
		}
		switch {
		case f.Num == fieldDataPoints && f.Type == otlpwire.Bytes:
			rest = next
			continue
		case f.Num == fieldDataTemporality && f.Type == otlpwire.Varint:
			temporality = f.Value
		case f.Num == fieldSumMonotonic && f.Type == otlpwire.Varint && kind == kindSum:
			shape.monotonic = f.Value != 0
		default:
			return false
		}
		if !seenData.first(f.Num) {
			return false
		}
		rest = next
	}
	if temporality != temporalityDelta {
		return false
	}
	prefix.metric = hashMetricShape(r.buf[:0], shape)
	r.metrics = append(r.metrics, encodedParent{raw: b, parent: scope, dataField: dataField})
	index := int32(len(r.metrics) - 1)
	for rest := data; len(rest) > 0; {
		f, next, _ := otlpwire.Next(rest)
		if f.Num == fieldDataPoints {
			r.points = append(r.points, encodedPoint{raw: f.Data, metric: index, kind: kind})
			p := &r.points[len(r.points)-1]
			ok := false
			if kind == kindSum {
				ok = r.readNumberPoint(p, prefix, shape.monotonic)
			} else {
				ok = r.readHistogramPoint(p, prefix)
			}
			if !ok {
				return false
			}
		}
		rest = next
	}
	return true
}

// hashMetricShape is encoder.hashMetric in a caller's buffer.
func hashMetricShape(buf []byte, m metricShape) hash128 {
	e := encoder{buf: buf}
	return e.hashMetric(m)
}

func (r *EncodedRequest) readNumberPoint(p *encodedPoint, prefix streamPrefix, monotonic bool) bool {
	var seen once
	var start, end, flags uint64
	hasValue := false
	attrs := len(r.kvs)
	for b := p.raw; len(b) > 0; {
		f, next, ok := otlpwire.Next(b)
		if !ok {
			return false
		}
		switch {
		case f.Num == fieldNumberAttributes && f.Type == otlpwire.Bytes:
			if !r.collectKeyValue(f.Data) {
				return false
			}
			b = next
			continue
		case f.Num == fieldNumberExemplars && f.Type == otlpwire.Bytes:
			if !r.validExemplar(f.Data) {
				return false
			}
			b = next
			continue
		case f.Num == fieldNumberStart && f.Type == otlpwire.Fixed64:
			start = f.Value
		case f.Num == fieldNumberTime && f.Type == otlpwire.Fixed64:
			end = f.Value
		case (f.Num == fieldNumberDouble || f.Num == fieldNumberInt) && f.Type == otlpwire.Fixed64:
			if hasValue {
				return false
			}
			hasValue, p.isInt, p.value = true, f.Num == fieldNumberInt, f.Value
		case f.Num == fieldNumberFlags && f.Type == otlpwire.Varint && f.Value <= math.MaxUint32:
			flags = f.Value
		default:
			return false
		}
		if !seen.first(f.Num) {
			return false
		}
		b = next
	}
	var ok bool
	if p.key, ok = r.hashPoint(prefix, attrs); !ok {
		return false
	}
	p.iv, p.slow = interval{start: start, end: end}, start == 0 || end < start || flags&flagNoRecordedValue != 0 || !hasValue
	switch {
	case p.slow:
	case p.isInt:
		p.slow = monotonic && int64(p.value) < 0
	default:
		v := math.Float64frombits(p.value)
		p.slow = !isFinite(v) || monotonic && v < 0
	}
	return true
}

func (r *EncodedRequest) readHistogramPoint(p *encodedPoint, prefix streamPrefix) bool {
	var seen once
	var start, end, flags uint64
	attrs := len(r.kvs)
	for b := p.raw; len(b) > 0; {
		f, next, ok := otlpwire.Next(b)
		if !ok {
			return false
		}
		switch {
		case f.Num == fieldHistAttributes && f.Type == otlpwire.Bytes:
			if !r.collectKeyValue(f.Data) {
				return false
			}
			b = next
			continue
		case f.Num == fieldHistExemplars && f.Type == otlpwire.Bytes:
			if !r.validExemplar(f.Data) {
				return false
			}
			b = next
			continue
		case f.Num == fieldHistStart && f.Type == otlpwire.Fixed64:
			start = f.Value
		case f.Num == fieldHistTime && f.Type == otlpwire.Fixed64:
			end = f.Value
		case f.Num == fieldHistCount && f.Type == otlpwire.Fixed64:
			p.count = f.Value
		case f.Num == fieldHistSum && f.Type == otlpwire.Fixed64:
			p.sum, p.hasSum = math.Float64frombits(f.Value), true
		case f.Num == fieldHistMin && f.Type == otlpwire.Fixed64:
			p.min, p.hasMin = math.Float64frombits(f.Value), true
		case f.Num == fieldHistMax && f.Type == otlpwire.Fixed64:
			p.max, p.hasMax = math.Float64frombits(f.Value), true
		case f.Num == fieldHistCounts && f.Type == otlpwire.Bytes:
			if _, ok := otlpwire.PackedFixed64(f.Data); !ok {
				return false
			}
			p.counts = f.Data
		case f.Num == fieldHistBounds && f.Type == otlpwire.Bytes:
			if _, ok := otlpwire.PackedFixed64(f.Data); !ok {
				return false
			}
			p.bounds = f.Data
		case f.Num == fieldHistFlags && f.Type == otlpwire.Varint && f.Value <= math.MaxUint32:
			flags = f.Value
		default:
			return false
		}
		if !seen.first(f.Num) {
			return false
		}
		b = next
	}
	var ok bool
	if p.key, ok = r.hashPoint(prefix, attrs); !ok {
		return false
	}
	p.iv = interval{start: start, end: end}
	p.slow = start == 0 || end < start || flags&flagNoRecordedValue != 0 || !p.validHistogram()
	return true
}

// validHistogram is validateHistogram on the wire: a point it refuses goes
// to the pdata path, which refuses it with the reason.
func (p *encodedPoint) validHistogram() bool {
	counts, _ := otlpwire.PackedFixed64(p.counts)
	bounds, _ := otlpwire.PackedFixed64(p.bounds)
	if counts != 0 && counts != bounds+1 || counts == 0 && bounds != 0 {
		return false
	}
	for i := range bounds {
		b := otlpwire.DoubleAt(p.bounds, i)
		if math.IsNaN(b) || i > 0 && b <= otlpwire.DoubleAt(p.bounds, i-1) {
			return false
		}
	}
	if counts > 0 {
		var total uint64
		for i := range counts {
			total += otlpwire.Fixed64At(p.counts, i)
		}
		if total != p.count {
			return false
		}
	}
	return !(p.hasSum && !isFinite(p.sum)) && !(p.hasMin && math.IsNaN(p.min)) && !(p.hasMax && math.IsNaN(p.max))
}

func (r *EncodedRequest) validExemplar(b []byte) bool {
	for len(b) > 0 {
		f, next, ok := otlpwire.Next(b)
		if !ok {
			return false
		}
		switch {
		case f.Num == fieldExemplarAttributes && f.Type == otlpwire.Bytes:
			if !r.validKeyValue(f.Data) {
				return false
			}
		case (f.Num == fieldExemplarTime || f.Num == fieldExemplarDouble || f.Num == fieldExemplarInt) && f.Type == otlpwire.Fixed64:
		case f.Num == fieldExemplarSpanID && f.Type == otlpwire.Bytes && (len(f.Data) == 0 || len(f.Data) == 8):
		case f.Num == fieldExemplarTraceID && f.Type == otlpwire.Bytes && (len(f.Data) == 0 || len(f.Data) == 16):
		default:
			return false
		}
		b = next
	}
	return true
}

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

// ApplyHeld folds every point of r that belongs to a stream the engine
// holds (and is not handing over) into its state, as Apply would, and
// returns the other points as the encoding of a request for the caller to
// decode and apply: points that start a stream, that belong to a stream on
// its way elsewhere, that change a histogram's buckets, that are invalid or
// carry no recorded value, and every later point of their streams, in order.
// rest is nil when every point was applied here, r's own encoding when none
// was, and otherwise valid until r is released.
func (e *Engine) ApplyHeld(r *EncodedRequest) (res Result, rest []byte) {
	now := e.clock().UnixNano()
	applied := 0
	for i := range r.points {
		p := &r.points[i]
		if p.slow || r.isDeferred(p.key) {
			r.deferPoint(p)
			continue
		}
		sh := e.shardFor(p.key)
		sh.mu.Lock()
		s := sh.lookup(p.key)
		if s == nil || s.has(flagMoving) || s.kind != p.kind ||
			p.kind == kindHistogram && !s.ext.histogram.sameEncodedLayout(p) {
			sh.mu.Unlock()
			r.deferPoint(p)
			continue
		}
		applied++
		if e.admit(s, p.iv, now, &res) {
			switch {
			case p.kind == kindHistogram:
				s.ext.histogram.addEncoded(p)
			case p.isInt:
				s.addInt(int64(p.value))
			default:
				s.addDouble(math.Float64frombits(p.value))
			}
			s.noteApplied(p.iv, now)
			res.Applied++
		}
		sh.mu.Unlock()
	}
	switch {
	case applied == len(r.points):
		return res, nil
	case applied == 0:
		return res, r.encoded
	}
	return res, r.encodeRest()
}

func (r *EncodedRequest) isDeferred(key hash128) bool {
	if len(r.deferred) == 0 {
		return false
	}
	_, ok := r.deferred[key]
	return ok
}

func (r *EncodedRequest) deferPoint(p *encodedPoint) {
	if r.deferred == nil {
		r.deferred = make(map[hash128]struct{})
	}
	r.deferred[p.key] = struct{}{}
	p.inRest = true
	m := &r.metrics[p.metric]
	m.inRest = true
	sc := &r.scopes[m.parent]
	sc.inRest = true
	r.resources[sc.parent].inRest = true
}

// sameEncodedLayout is sameLayout for a point read from the wire.
func (h *histogramState) sameEncodedLayout(p *encodedPoint) bool {
	counts, _ := otlpwire.PackedFixed64(p.counts)
	bounds, _ := otlpwire.PackedFixed64(p.bounds)
	if bounds != len(h.bounds) || counts != len(h.counts) {
		return false
	}
	for i, b := range h.bounds {
		if otlpwire.DoubleAt(p.bounds, i) != b {
			return false
		}
	}
	return true
}

// addEncoded is add for a point read from the wire.
func (h *histogramState) addEncoded(p *encodedPoint) {
	for i := range h.counts {
		h.counts[i] += otlpwire.Fixed64At(p.counts, i)
	}
	h.count += p.count
	h.sum += p.sum // 0 when the point has none, as pdata's Sum() gives
	h.hasSum = h.hasSum && p.hasSum
	h.min, h.hasMin = mergeMin(h.min, h.hasMin, p.min, p.hasMin)
	h.max, h.hasMax = mergeMax(h.max, h.hasMax, p.max, p.hasMax)
}

// encodeRest writes the request of the points in the rest: each resource,
// scope and metric above one of them with all its other fields as received,
// and below it only those points.
func (r *EncodedRequest) encodeRest() []byte {
	b := r.rest[:0]
	point := 0
	metric, scope := 0, 0
	for ri := range r.resources {
		res := &r.resources[ri]
		if !res.inRest {
			continue
		}
		var rmStart int
		b, rmStart = beginLen(b, fieldRequestResourceMetrics)
		b = appendFieldsExcept(b, res.raw, fieldRMScopeMetrics)
		for ; scope < len(r.scopes) && r.scopes[scope].parent <= int32(ri); scope++ {
			sc := &r.scopes[scope]
			if int(sc.parent) != ri || !sc.inRest {
				continue
			}
			var smStart int
			b, smStart = beginLen(b, fieldRMScopeMetrics)
			b = appendFieldsExcept(b, sc.raw, fieldSMMetrics)
			for ; metric < len(r.metrics) && r.metrics[metric].parent <= int32(scope); metric++ {
				m := &r.metrics[metric]
				if int(m.parent) != scope || !m.inRest {
					continue
				}
				var mStart, dataStart int
				b, mStart = beginLen(b, fieldSMMetrics)
				b = appendFieldsExcept(b, m.raw, m.dataField)
				b, dataStart = beginLen(b, m.dataField)
				b = appendFieldsExcept(b, metricData(m), fieldDataPoints)
				for ; point < len(r.points) && r.points[point].metric <= int32(metric); point++ {
					p := &r.points[point]
					if int(p.metric) == metric && p.inRest {
						b = appendLenPrefixed(b, fieldDataPoints, p.raw)
					}
				}
				b = endLen(b, dataStart)
				b = endLen(b, mStart)
			}
			b = endLen(b, smStart)
		}
		b = endLen(b, rmStart)
	}
	r.rest = b
	return b
}

// metricData is the body of a metric's data field.
func metricData(m *encodedParent) []byte {
	for b := m.raw; len(b) > 0; {
		f, next, _ := otlpwire.Next(b)
		if f.Num == m.dataField {
			return f.Data
		}
		b = next
	}
	return nil
}

// appendFieldsExcept copies every field of the message body msg but those
// numbered skip, as encoded.
func appendFieldsExcept(b, msg []byte, skip int) []byte {
	for len(msg) > 0 {
		f, next, _ := otlpwire.Next(msg)
		if f.Num != skip {
			b = append(b, msg[:len(msg)-len(next)]...)
		}
		msg = next
	}
	return b
}

func appendLenPrefixed(b []byte, field int, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|uint64(otlpwire.Bytes))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// lenReserve is room for the length of any message shorter than 4 GiB.
const lenReserve = 5

// beginLen starts a length-delimited field whose length endLen fills in,
// and returns where its body starts.
func beginLen(b []byte, field int) ([]byte, int) {
	b = binary.AppendUvarint(b, uint64(field)<<3|uint64(otlpwire.Bytes))
	b = append(b, make([]byte, lenReserve)...)
	return b, len(b)
}

// endLen writes the length of the body that starts at start and moves the
// body back over the unused part of the reserved room.
func endLen(b []byte, start int) []byte {
	n := len(b) - start
	var length [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(length[:], uint64(n))
	at := start - lenReserve
	copy(b[at:], length[:k])
	copy(b[at+k:], b[start:])
	return b[:at+k+n]
}
