package routerexporter

import (
	"encoding/binary"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/xpdata/entity"

	"github.com/deltapipeline/deltapipeline/internal/otlpwire"
)

// The OTLP metrics protobuf encoding, written straight from pdata into a
// caller's buffer. The splitter uses it to build each worker's request
// while it walks the received one, so a worker's share is never assembled
// as a pmetric.Metrics and marshaled again. Field numbers are those of
// opentelemetry-proto (metrics/v1, common/v1, resource/v1); every OTLP
// metrics field number is below 16, so a tag is one byte. Proto3 scalars
// at their zero value are left out, as any encoder does; oneof members and
// optional fields are written whenever they are set.

func appendStringField(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	return append(otlpwire.AppendLenField(b, field, len(s)), s...)
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return otlpwire.AppendVarint(append(b, otlpwire.Tag(field, otlpwire.Varint)), v)
}

func appendFixed64Field(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.LittleEndian.AppendUint64(append(b, otlpwire.Tag(field, otlpwire.Fixed64)), v)
}

// appendDoubleField writes v unless it is +0, the proto3 default.
func appendDoubleField(b []byte, field int, v float64) []byte {
	return appendFixed64Field(b, field, math.Float64bits(v))
}

// appendPresentDouble writes v even when it is zero: a oneof member or an
// optional field, whose presence is information.
func appendPresentDouble(b []byte, field int, v float64) []byte {
	return binary.LittleEndian.AppendUint64(append(b, otlpwire.Tag(field, otlpwire.Fixed64)), math.Float64bits(v))
}

func zigzag32(v int32) uint64 { return uint64(uint32(v<<1) ^ uint32(v>>31)) }

// Reserved length sizes: a point, an attribute or a value is usually
// shorter than 16 KiB, a resource, scope or metric shorter than 2 MiB.
const (
	reserveSmall = 2
	reserveLarge = 3
)

func appendAttributes(b []byte, field int, m pcommon.Map) []byte {
	for k, v := range m.All() {
		b = appendKeyValue(b, field, k, v)
	}
	return b
}

// appendKeyValue writes one KeyValue{key = 1, value = 2}. A string, the
// common case, is written with lengths computed up front; other values go
// through appendAnyValue.
func appendKeyValue(b []byte, field int, k string, v pcommon.Value) []byte {
	if v.Type() == pcommon.ValueTypeStr {
		s := v.Str()
		anyLen := 1 + otlpwire.VarintLen(uint64(len(s))) + len(s)
		kvLen := 1 + otlpwire.VarintLen(uint64(anyLen)) + anyLen
		if k != "" {
			kvLen += 1 + otlpwire.VarintLen(uint64(len(k))) + len(k)
		}
		b = otlpwire.AppendLenField(b, field, kvLen)
		b = appendStringField(b, 1, k)
		b = otlpwire.AppendLenField(b, 2, anyLen)
		return append(otlpwire.AppendLenField(b, 1, len(s)), s...)
	}
	b, kv := otlpwire.BeginMessage(b, field, reserveSmall)
	b = appendStringField(b, 1, k)
	b, av := otlpwire.BeginMessage(b, 2, reserveSmall)
	b = appendAnyValue(b, v)
	b = otlpwire.EndMessage(b, av, reserveSmall)
	return otlpwire.EndMessage(b, kv, reserveSmall)
}

// appendAnyValue writes the body of an AnyValue: string_value = 1,
// bool_value = 2, int_value = 3, double_value = 4, array_value = 5,
// kvlist_value = 6, bytes_value = 7. An empty value has no body.
func appendAnyValue(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		s := v.Str()
		return append(otlpwire.AppendLenField(b, 1, len(s)), s...)
	case pcommon.ValueTypeBool:
		x := uint64(0)
		if v.Bool() {
			x = 1
		}
		return otlpwire.AppendVarint(append(b, otlpwire.Tag(2, otlpwire.Varint)), x)
	case pcommon.ValueTypeInt:
		return otlpwire.AppendVarint(append(b, otlpwire.Tag(3, otlpwire.Varint)), uint64(v.Int()))
	case pcommon.ValueTypeDouble:
		return appendPresentDouble(b, 4, v.Double())
	case pcommon.ValueTypeSlice:
		b, arr := otlpwire.BeginMessage(b, 5, reserveSmall)
		for _, e := range v.Slice().All() {
			var el int
			b, el = otlpwire.BeginMessage(b, 1, reserveSmall)
			b = appendAnyValue(b, e)
			b = otlpwire.EndMessage(b, el, reserveSmall)
		}
		return otlpwire.EndMessage(b, arr, reserveSmall)
	case pcommon.ValueTypeMap:
		b, kvl := otlpwire.BeginMessage(b, 6, reserveSmall)
		b = appendAttributes(b, 1, v.Map())
		return otlpwire.EndMessage(b, kvl, reserveSmall)
	case pcommon.ValueTypeBytes:
		raw := v.Bytes().AsRaw()
		return append(otlpwire.AppendLenField(b, 7, len(raw)), raw...)
	default:
		return b
	}
}

// appendResource writes ResourceMetrics.resource (field 1): attributes = 1,
// dropped_attributes_count = 2, entity_refs = 3.
func appendResource(b []byte, r pcommon.Resource) []byte {
	b, start := otlpwire.BeginMessage(b, 1, reserveSmall)
	b = appendAttributes(b, 1, r.Attributes())
	b = appendVarintField(b, 2, uint64(r.DroppedAttributesCount()))
	for _, ref := range entity.ResourceEntityRefs(r).All() {
		var er int
		b, er = otlpwire.BeginMessage(b, 3, reserveSmall)
		b = appendStringField(b, 1, ref.SchemaUrl())
		b = appendStringField(b, 2, ref.Type())
		for _, k := range ref.IdKeys().All() {
			b = append(otlpwire.AppendLenField(b, 3, len(k)), k...)
		}
		for _, k := range ref.DescriptionKeys().All() {
			b = append(otlpwire.AppendLenField(b, 4, len(k)), k...)
		}
		b = otlpwire.EndMessage(b, er, reserveSmall)
	}
	return otlpwire.EndMessage(b, start, reserveSmall)
}

// appendScope writes ScopeMetrics.scope (field 1): name = 1, version = 2,
// attributes = 3, dropped_attributes_count = 4.
func appendScope(b []byte, s pcommon.InstrumentationScope) []byte {
	b, start := otlpwire.BeginMessage(b, 1, reserveSmall)
	b = appendStringField(b, 1, s.Name())
	b = appendStringField(b, 2, s.Version())
	b = appendAttributes(b, 3, s.Attributes())
	b = appendVarintField(b, 4, uint64(s.DroppedAttributesCount()))
	return otlpwire.EndMessage(b, start, reserveSmall)
}

// Metric fields: name = 1, description = 2, unit = 3, gauge = 5, sum = 7,
// histogram = 9, exponential_histogram = 10, summary = 11, metadata = 12.
func metricDataField(t pmetric.MetricType) int {
	switch t {
	case pmetric.MetricTypeGauge:
		return 5
	case pmetric.MetricTypeSum:
		return 7
	case pmetric.MetricTypeHistogram:
		return 9
	case pmetric.MetricTypeExponentialHistogram:
		return 10
	case pmetric.MetricTypeSummary:
		return 11
	default:
		return 0
	}
}

// appendMetricHeader writes a metric's fields other than its data.
func appendMetricHeader(b []byte, m pmetric.Metric) []byte {
	b = appendStringField(b, 1, m.Name())
	b = appendStringField(b, 2, m.Description())
	b = appendStringField(b, 3, m.Unit())
	return appendAttributes(b, 12, m.Metadata())
}

// appendMetricDataTrailer writes the fields of a metric's data message
// after its data_points (field 1): aggregation_temporality = 2 and, of a
// sum, is_monotonic = 3.
func appendMetricDataTrailer(b []byte, m pmetric.Metric) []byte {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		s := m.Sum()
		b = appendVarintField(b, 2, uint64(s.AggregationTemporality()))
		if s.IsMonotonic() {
			b = appendVarintField(b, 3, 1)
		}
	case pmetric.MetricTypeHistogram:
		b = appendVarintField(b, 2, uint64(m.Histogram().AggregationTemporality()))
	case pmetric.MetricTypeExponentialHistogram:
		b = appendVarintField(b, 2, uint64(m.ExponentialHistogram().AggregationTemporality()))
	}
	return b
}

// appendExemplars: filtered_attributes = 7, time_unix_nano = 2, as_double
// = 3, as_int = 6, span_id = 4, trace_id = 5.
func appendExemplars(b []byte, field int, es pmetric.ExemplarSlice) []byte {
	for i := range es.Len() {
		e := es.At(i)
		var start int
		b, start = otlpwire.BeginMessage(b, field, reserveSmall)
		b = appendAttributes(b, 7, e.FilteredAttributes())
		b = appendFixed64Field(b, 2, uint64(e.Timestamp()))
		switch e.ValueType() {
		case pmetric.ExemplarValueTypeDouble:
			b = appendPresentDouble(b, 3, e.DoubleValue())
		case pmetric.ExemplarValueTypeInt:
			b = binary.LittleEndian.AppendUint64(append(b, otlpwire.Tag(6, otlpwire.Fixed64)), uint64(e.IntValue()))
		}
		if id := e.SpanID(); !id.IsEmpty() {
			b = append(otlpwire.AppendLenField(b, 4, len(id)), id[:]...)
		}
		if id := e.TraceID(); !id.IsEmpty() {
			b = append(otlpwire.AppendLenField(b, 5, len(id)), id[:]...)
		}
		b = otlpwire.EndMessage(b, start, reserveSmall)
	}
	return b
}

// appendNumberPoint writes one data_points entry of a gauge or sum:
// attributes = 7, start_time_unix_nano = 2, time_unix_nano = 3, as_double
// = 4, as_int = 6, exemplars = 5, flags = 8.
func appendNumberPoint(b []byte, p pmetric.NumberDataPoint) []byte {
	b, start := otlpwire.BeginMessage(b, 1, reserveSmall)
	b = appendAttributes(b, 7, p.Attributes())
	b = appendFixed64Field(b, 2, uint64(p.StartTimestamp()))
	b = appendFixed64Field(b, 3, uint64(p.Timestamp()))
	switch p.ValueType() {
	case pmetric.NumberDataPointValueTypeDouble:
		b = appendPresentDouble(b, 4, p.DoubleValue())
	case pmetric.NumberDataPointValueTypeInt:
		b = binary.LittleEndian.AppendUint64(append(b, otlpwire.Tag(6, otlpwire.Fixed64)), uint64(p.IntValue()))
	}
	b = appendExemplars(b, 5, p.Exemplars())
	b = appendVarintField(b, 8, uint64(p.Flags()))
	return otlpwire.EndMessage(b, start, reserveSmall)
}

// appendHistogramPoint: attributes = 9, start_time_unix_nano = 2,
// time_unix_nano = 3, count = 4, sum = 5, bucket_counts = 6 (packed
// fixed64), explicit_bounds = 7 (packed double), exemplars = 8, flags =
// 10, min = 11, max = 12.
func appendHistogramPoint(b []byte, p pmetric.HistogramDataPoint) []byte {
	b, start := otlpwire.BeginMessage(b, 1, reserveSmall)
	b = appendAttributes(b, 9, p.Attributes())
	b = appendFixed64Field(b, 2, uint64(p.StartTimestamp()))
	b = appendFixed64Field(b, 3, uint64(p.Timestamp()))
	b = appendFixed64Field(b, 4, p.Count())
	if p.HasSum() {
		b = appendPresentDouble(b, 5, p.Sum())
	}
	if n := p.BucketCounts().Len(); n > 0 {
		b = otlpwire.AppendLenField(b, 6, 8*n)
		for _, c := range p.BucketCounts().All() {
			b = binary.LittleEndian.AppendUint64(b, c)
		}
	}
	if n := p.ExplicitBounds().Len(); n > 0 {
		b = otlpwire.AppendLenField(b, 7, 8*n)
		for _, x := range p.ExplicitBounds().All() {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	}
	b = appendExemplars(b, 8, p.Exemplars())
	b = appendVarintField(b, 10, uint64(p.Flags()))
	if p.HasMin() {
		b = appendPresentDouble(b, 11, p.Min())
	}
	if p.HasMax() {
		b = appendPresentDouble(b, 12, p.Max())
	}
	return otlpwire.EndMessage(b, start, reserveSmall)
}

// appendBuckets writes an exponential histogram's positive (8) or negative
// (9) buckets: offset = 1 (sint32), bucket_counts = 2 (packed varint).
func appendBuckets(b []byte, field int, bk pmetric.ExponentialHistogramDataPointBuckets) []byte {
	counts := bk.BucketCounts()
	if bk.Offset() == 0 && counts.Len() == 0 {
		return b
	}
	b, start := otlpwire.BeginMessage(b, field, reserveSmall)
	b = appendVarintField(b, 1, zigzag32(bk.Offset()))
	if counts.Len() > 0 {
		n := 0
		for _, c := range counts.All() {
			n += otlpwire.VarintLen(c)
		}
		b = otlpwire.AppendLenField(b, 2, n)
		for _, c := range counts.All() {
			b = otlpwire.AppendVarint(b, c)
		}
	}
	return otlpwire.EndMessage(b, start, reserveSmall)
}

// appendExponentialHistogramPoint: attributes = 1, start_time_unix_nano =
// 2, time_unix_nano = 3, count = 4, sum = 5, scale = 6 (sint32),
// zero_count = 7, positive = 8, negative = 9, flags = 10, exemplars = 11,
// min = 12, max = 13, zero_threshold = 14.
func appendExponentialHistogramPoint(b []byte, p pmetric.ExponentialHistogramDataPoint) []byte {
	b, start := otlpwire.BeginMessage(b, 1, reserveSmall)
	b = appendAttributes(b, 1, p.Attributes())
	b = appendFixed64Field(b, 2, uint64(p.StartTimestamp()))
	b = appendFixed64Field(b, 3, uint64(p.Timestamp()))
	b = appendFixed64Field(b, 4, p.Count())
	if p.HasSum() {
		b = appendPresentDouble(b, 5, p.Sum())
	}
	b = appendVarintField(b, 6, zigzag32(p.Scale()))
	b = appendFixed64Field(b, 7, p.ZeroCount())
	b = appendBuckets(b, 8, p.Positive())
	b = appendBuckets(b, 9, p.Negative())
	b = appendVarintField(b, 10, uint64(p.Flags()))
	b = appendExemplars(b, 11, p.Exemplars())
	if p.HasMin() {
		b = appendPresentDouble(b, 12, p.Min())
	}
	if p.HasMax() {
		b = appendPresentDouble(b, 13, p.Max())
	}
	b = appendDoubleField(b, 14, p.ZeroThreshold())
	return otlpwire.EndMessage(b, start, reserveSmall)
}

// appendSummaryPoint: start_time_unix_nano = 2, time_unix_nano = 3, count
// = 4, sum = 5, quantile_values = 6 {quantile = 1, value = 2}, attributes
// = 7, flags = 8.
func appendSummaryPoint(b []byte, p pmetric.SummaryDataPoint) []byte {
	b, start := otlpwire.BeginMessage(b, 1, reserveSmall)
	b = appendAttributes(b, 7, p.Attributes())
	b = appendFixed64Field(b, 2, uint64(p.StartTimestamp()))
	b = appendFixed64Field(b, 3, uint64(p.Timestamp()))
	b = appendFixed64Field(b, 4, p.Count())
	b = appendDoubleField(b, 5, p.Sum())
	qs := p.QuantileValues()
	for i := range qs.Len() {
		q := qs.At(i)
		n := 0
		if math.Float64bits(q.Quantile()) != 0 {
			n += 9
		}
		if math.Float64bits(q.Value()) != 0 {
			n += 9
		}
		b = otlpwire.AppendLenField(b, 6, n)
		b = appendDoubleField(b, 1, q.Quantile())
		b = appendDoubleField(b, 2, q.Value())
	}
	b = appendVarintField(b, 8, uint64(p.Flags()))
	return otlpwire.EndMessage(b, start, reserveSmall)
}
