package convert

import (
	"math"
	"sync"

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

	fieldRMScopeMetrics = 2

	fieldResourceAttributes = 1
	fieldResourceDropped    = 2
	fieldResourceEntityRefs = 3

	fieldSMMetrics = 2

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
	hasValue, isInt bool
	value           uint64
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

// ResourceMetrics and ScopeMetrics have one shape: the resource or scope
// (1), the scope metrics or metrics below it (2), a schema URL (3).
const (
	fieldLevelHeader    = 1
	fieldLevelChildren  = 2
	fieldLevelSchemaURL = 3
)

// levelHeader finds the resource or scope of a ResourceMetrics or
// ScopeMetrics and checks its other fields. The header may follow the
// children on the wire, and every point below needs its identity, so it is
// found first.
func levelHeader(b []byte) (header []byte, ok bool) {
	var seen once
	for len(b) > 0 {
		f, next, ok := otlpwire.Next(b)
		if !ok || f.Type != otlpwire.Bytes {
			return nil, false
		}
		switch f.Num {
		case fieldLevelHeader:
			header = f.Data
		case fieldLevelChildren:
			b = next
			continue
		case fieldLevelSchemaURL:
		default:
			return nil, false
		}
		if !seen.first(f.Num) {
			return nil, false
		}
		b = next
	}
	return header, true
}

// eachChild calls read for each child of a ResourceMetrics or ScopeMetrics
// that levelHeader checked, until one fails.
func eachChild(b []byte, read func(child []byte) bool) bool {
	for len(b) > 0 {
		f, next, _ := otlpwire.Next(b)
		if f.Num == fieldLevelChildren && !read(f.Data) {
			return false
		}
		b = next
	}
	return true
}

func (r *EncodedRequest) readResourceMetrics(b []byte) bool {
	resource, ok := levelHeader(b)
	if !ok {
		return false
	}
	var prefix streamPrefix
	if prefix.resource, ok = r.hashResource(resource); !ok {
		return false
	}
	r.resources = append(r.resources, encodedParent{raw: b, parent: -1})
	index := int32(len(r.resources) - 1)
	return eachChild(b, func(sm []byte) bool { return r.readScopeMetrics(sm, index, prefix) })
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
	scope, ok := levelHeader(b)
	if !ok {
		return false
	}
	if prefix.scope, ok = r.hashScope(scope); !ok {
		return false
	}
	r.scopes = append(r.scopes, encodedParent{raw: b, parent: resource})
	index := int32(len(r.scopes) - 1)
	return eachChild(b, func(m []byte) bool { return r.readMetric(m, index, prefix) })
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
			if !r.readPoint(&r.points[len(r.points)-1], prefix, shape.monotonic) {
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

// pointFields are the field numbers of what every kind of data point has.
type pointFields struct{ attributes, exemplars, start, time, flags int }

var pointFieldsOf = [...]pointFields{
	kindSum:       {attributes: fieldNumberAttributes, exemplars: fieldNumberExemplars, start: fieldNumberStart, time: fieldNumberTime, flags: fieldNumberFlags},
	kindHistogram: {attributes: fieldHistAttributes, exemplars: fieldHistExemplars, start: fieldHistStart, time: fieldHistTime, flags: fieldHistFlags},
}

// readPoint reads one data point: its identity, its interval and its
// values; a point the pdata path is to handle is marked slow.
func (r *EncodedRequest) readPoint(p *encodedPoint, prefix streamPrefix, monotonic bool) bool {
	fields := &pointFieldsOf[p.kind]
	var seen once
	var flags uint64
	attrs := len(r.kvs)
	for b := p.raw; len(b) > 0; {
		f, next, ok := otlpwire.Next(b)
		if !ok {
			return false
		}
		switch {
		case f.Num == fields.attributes && f.Type == otlpwire.Bytes:
			if !r.collectKeyValue(f.Data) {
				return false
			}
			b = next
			continue
		case f.Num == fields.exemplars && f.Type == otlpwire.Bytes:
			if !r.validExemplar(f.Data) {
				return false
			}
			b = next
			continue
		case f.Num == fields.start && f.Type == otlpwire.Fixed64:
			p.iv.start = f.Value
		case f.Num == fields.time && f.Type == otlpwire.Fixed64:
			p.iv.end = f.Value
		case f.Num == fields.flags && f.Type == otlpwire.Varint && f.Value <= math.MaxUint32:
			flags = f.Value
		case !p.readValueField(f):
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
	p.slow = p.iv.start == 0 || p.iv.end < p.iv.start || flags&flagNoRecordedValue != 0 || !p.validValue(monotonic)
	return true
}

// readValueField reads a field of the point's value, or reports that the
// field is not one.
func (p *encodedPoint) readValueField(f otlpwire.Field) bool {
	if p.kind == kindSum {
		if (f.Num != fieldNumberDouble && f.Num != fieldNumberInt) || f.Type != otlpwire.Fixed64 || p.hasValue {
			// pdata keeps the last of both; neither is read here.
			return false
		}
		p.hasValue, p.isInt, p.value = true, f.Num == fieldNumberInt, f.Value
		return true
	}
	switch {
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
	default:
		return false
	}
	return true
}

// validValue is numberDelta's and validateHistogram's verdict on the wire:
// a value it refuses goes to the pdata path, which refuses it with the
// reason.
func (p *encodedPoint) validValue(monotonic bool) bool {
	switch {
	case p.kind == kindHistogram:
		return p.validHistogram()
	case !p.hasValue:
		return false
	case p.isInt:
		return !monotonic || int64(p.value) >= 0
	default:
		v := math.Float64frombits(p.value)
		return isFinite(v) && !(monotonic && v < 0)
	}
}

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
