// Package promseries owns the translation of OTLP metrics into Prometheus
// series: metric names with unit and type suffixes, label names, the job and
// instance labels derived from the resource, and the shape of each point
// (counter, gauge, classic histogram, summary, native histogram). Remote write
// and the scrape endpoint both use it, so a series has the same name and
// labels whichever way it leaves the worker.
package promseries

import (
	"math"
	"slices"
	"strings"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Kind is a Prometheus metric family type.
type Kind uint8

const (
	KindCounter Kind = iota
	KindGauge
	KindHistogram
	KindSummary
	// KindNativeHistogram is an OTLP exponential histogram, which maps onto a
	// Prometheus native histogram without losing resolution.
	KindNativeHistogram
)

// Label is one Prometheus label.
type Label struct {
	Name, Value string
}

// Bucket is a classic histogram bucket with its cumulative count.
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Quantile is one summary quantile.
type Quantile struct {
	Quantile, Value float64
}

// NativeBuckets are one side of a native histogram: consecutive buckets
// starting at Prometheus bucket index Offset.
type NativeBuckets struct {
	Offset int32
	Counts []uint64
}

// NativeHistogram is an exponential histogram in Prometheus's terms.
type NativeHistogram struct {
	Schema        int32
	ZeroThreshold float64
	ZeroCount     uint64
	Positive      NativeBuckets
	Negative      NativeBuckets
}

// Point is one OTLP data point as a Prometheus family member.
type Point struct {
	Family string
	Help   string
	Unit   string
	Kind   Kind
	// Labels are sorted by name and exclude __name__.
	Labels      []Label
	TimestampMs int64
	// Stale marks a point with the OTLP "no recorded value" flag; it becomes
	// the Prometheus staleness marker.
	Stale bool

	Value     float64 // counter, gauge
	Count     uint64  // histogram, summary, native histogram
	Sum       float64
	HasSum    bool
	Buckets   []Bucket   // classic histogram, without the +Inf bucket
	Quantiles []Quantile // summary
	Native    NativeHistogram
}

// StaleNaN is the value Prometheus reads as "this series ended".
var StaleNaN = math.Float64frombits(0x7ff0000000000002)

// Dropped reasons reported by Translate.
const (
	DropDelta            = "delta_temporality"
	DropInvalidName      = "invalid_name"
	DropInvalidPoint     = "invalid_point"
	DropUnsupportedScale = "unsupported_scale"
	DropEmptyType        = "empty_type"
)

// Translator converts OTLP metrics to Prometheus points.
type Translator struct {
	metricNamer    otlptranslator.MetricNamer
	labelNamer     otlptranslator.LabelNamer
	externalLabels []Label
}

// NewTranslator uses the OpenTelemetry-to-Prometheus compatibility rules:
// underscore escaping with unit and type suffixes. externalLabels are added
// to every series that does not already carry the label.
func NewTranslator(externalLabels map[string]string) *Translator {
	t := &Translator{
		metricNamer: otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes),
		labelNamer:  otlptranslator.LabelNamer{},
	}
	for name, value := range externalLabels {
		if value != "" {
			t.externalLabels = append(t.externalLabels, Label{Name: name, Value: value})
		}
	}
	return t
}

// Translate calls fn for each point of md that Prometheus can represent and
// returns how many points it dropped, by reason. The Point passed to fn is
// only valid during the call.
func (t *Translator) Translate(md pmetric.Metrics, fn func(*Point)) map[string]int {
	dropped := map[string]int{}
	var p Point
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		base := t.resourceLabels(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			scopeBase := appendScopeLabels(slices.Clone(base), sm.Scope())
			ms := sm.Metrics()
			for k := range ms.Len() {
				t.translateMetric(ms.At(k), scopeBase, &p, fn, dropped)
			}
		}
	}
	for reason, n := range dropped {
		if n == 0 {
			delete(dropped, reason)
		}
	}
	return dropped
}

// resourceLabels derives job and instance as the compatibility
// specification defines them: job is service.namespace/service.name,
// instance is service.instance.id.
func (t *Translator) resourceLabels(attrs pcommon.Map) []Label {
	var labels []Label
	if name, ok := attrs.Get("service.name"); ok && name.AsString() != "" {
		job := name.AsString()
		if ns, ok := attrs.Get("service.namespace"); ok && ns.AsString() != "" {
			job = ns.AsString() + "/" + job
		}
		labels = append(labels, Label{Name: "job", Value: job})
	}
	if id, ok := attrs.Get("service.instance.id"); ok && id.AsString() != "" {
		labels = append(labels, Label{Name: "instance", Value: id.AsString()})
	}
	return labels
}

func appendScopeLabels(labels []Label, scope pcommon.InstrumentationScope) []Label {
	if scope.Name() != "" {
		labels = append(labels, Label{Name: otlptranslator.ScopeNameLabelKey, Value: scope.Name()})
	}
	if scope.Version() != "" {
		labels = append(labels, Label{Name: otlptranslator.ScopeVersionLabelKey, Value: scope.Version()})
	}
	return labels
}

func metricType(m pmetric.Metric) (otlptranslator.MetricType, Kind, bool) {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		if m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
			return 0, 0, false
		}
		if m.Sum().IsMonotonic() {
			return otlptranslator.MetricTypeMonotonicCounter, KindCounter, true
		}
		return otlptranslator.MetricTypeNonMonotonicCounter, KindGauge, true
	case pmetric.MetricTypeGauge:
		return otlptranslator.MetricTypeGauge, KindGauge, true
	case pmetric.MetricTypeHistogram:
		if m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
			return 0, 0, false
		}
		return otlptranslator.MetricTypeHistogram, KindHistogram, true
	case pmetric.MetricTypeExponentialHistogram:
		if m.ExponentialHistogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
			return 0, 0, false
		}
		return otlptranslator.MetricTypeExponentialHistogram, KindNativeHistogram, true
	case pmetric.MetricTypeSummary:
		return otlptranslator.MetricTypeSummary, KindSummary, true
	}
	return 0, 0, false
}

func (t *Translator) translateMetric(m pmetric.Metric, base []Label, p *Point, fn func(*Point), dropped map[string]int) {
	points := dataPointCount(m)
	if m.Type() == pmetric.MetricTypeEmpty {
		dropped[DropEmptyType] += points
		return
	}
	mt, kind, ok := metricType(m)
	if !ok {
		dropped[DropDelta] += points
		return
	}
	family, err := t.metricNamer.Build(otlptranslator.Metric{Name: m.Name(), Unit: m.Unit(), Type: mt})
	if err != nil {
		dropped[DropInvalidName] += points
		return
	}
	*p = Point{Family: family, Help: m.Description(), Unit: m.Unit(), Kind: kind}

	switch m.Type() {
	case pmetric.MetricTypeSum:
		t.numberPoints(m.Sum().DataPoints(), base, p, fn, dropped)
	case pmetric.MetricTypeGauge:
		t.numberPoints(m.Gauge().DataPoints(), base, p, fn, dropped)
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := range dps.Len() {
			if t.histogramPoint(dps.At(i), base, p) {
				fn(p)
			} else {
				dropped[DropInvalidPoint]++
			}
		}
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := range dps.Len() {
			if reason := t.nativePoint(dps.At(i), base, p); reason == "" {
				fn(p)
			} else {
				dropped[reason]++
			}
		}
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := range dps.Len() {
			dp := dps.At(i)
			t.setCommon(p, base, dp.Attributes(), dp.Timestamp(), dp.Flags().NoRecordedValue())
			p.Count, p.Sum, p.HasSum = dp.Count(), dp.Sum(), true
			p.Quantiles = p.Quantiles[:0]
			qs := dp.QuantileValues()
			for q := range qs.Len() {
				p.Quantiles = append(p.Quantiles, Quantile{Quantile: qs.At(q).Quantile(), Value: qs.At(q).Value()})
			}
			fn(p)
		}
	}
}

func (t *Translator) numberPoints(dps pmetric.NumberDataPointSlice, base []Label, p *Point, fn func(*Point), dropped map[string]int) {
	for i := range dps.Len() {
		dp := dps.At(i)
		t.setCommon(p, base, dp.Attributes(), dp.Timestamp(), dp.Flags().NoRecordedValue())
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			p.Value = float64(dp.IntValue())
		case pmetric.NumberDataPointValueTypeDouble:
			p.Value = dp.DoubleValue()
		default:
			dropped[DropInvalidPoint]++
			continue
		}
		fn(p)
	}
}

func (t *Translator) histogramPoint(dp pmetric.HistogramDataPoint, base []Label, p *Point) bool {
	bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
	if counts.Len() != 0 && counts.Len() != bounds.Len()+1 {
		return false
	}
	t.setCommon(p, base, dp.Attributes(), dp.Timestamp(), dp.Flags().NoRecordedValue())
	p.Count, p.Sum, p.HasSum = dp.Count(), dp.Sum(), dp.HasSum()
	p.Buckets = p.Buckets[:0]
	var cumulative uint64
	for i := range counts.Len() - 1 {
		cumulative += counts.At(i)
		p.Buckets = append(p.Buckets, Bucket{UpperBound: bounds.At(i), Count: cumulative})
	}
	return true
}

// Native histogram schemas Prometheus accepts.
const (
	minSchema = -4
	maxSchema = 8
)

func (t *Translator) nativePoint(dp pmetric.ExponentialHistogramDataPoint, base []Label, p *Point) string {
	scale := dp.Scale()
	if scale < minSchema {
		return DropUnsupportedScale
	}
	t.setCommon(p, base, dp.Attributes(), dp.Timestamp(), dp.Flags().NoRecordedValue())
	p.Count, p.Sum, p.HasSum = dp.Count(), dp.Sum(), dp.HasSum()
	// Coarser schemas merge 2^shift neighbouring buckets into one, which is
	// exact because exponential buckets nest.
	shift := max(scale-maxSchema, 0)
	p.Native = NativeHistogram{
		Schema:        scale - shift,
		ZeroThreshold: dp.ZeroThreshold(),
		ZeroCount:     dp.ZeroCount(),
		Positive:      nativeBuckets(dp.Positive(), shift, p.Native.Positive.Counts[:0]),
		Negative:      nativeBuckets(dp.Negative(), shift, p.Native.Negative.Counts[:0]),
	}
	return ""
}

// nativeBuckets re-indexes OTLP buckets, whose index i covers
// (base^i, base^(i+1)], to Prometheus buckets, whose index i covers
// (base^(i-1), base^i].
func nativeBuckets(b pmetric.ExponentialHistogramDataPointBuckets, shift int32, counts []uint64) NativeBuckets {
	n := b.BucketCounts().Len()
	if n == 0 {
		return NativeBuckets{Counts: counts}
	}
	first := b.Offset() >> shift
	for i := range n {
		idx := (b.Offset()+int32(i))>>shift - first
		for int(idx) >= len(counts) {
			counts = append(counts, 0)
		}
		counts[idx] += b.BucketCounts().At(i)
	}
	return NativeBuckets{Offset: first + 1, Counts: counts}
}

func (t *Translator) setCommon(p *Point, base []Label, attrs pcommon.Map, ts pcommon.Timestamp, stale bool) {
	p.Labels = append(p.Labels[:0], base...)
	p.Labels = t.appendAttributes(p.Labels, attrs)
	for _, ext := range t.externalLabels {
		if !hasLabel(p.Labels, ext.Name) {
			p.Labels = append(p.Labels, ext)
		}
	}
	slices.SortFunc(p.Labels, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	p.TimestampMs = int64(ts) / 1e6
	p.Stale = stale
}

// appendAttributes adds point attributes as labels. Attributes whose names
// collide after sanitising are joined with ";" in attribute-name order, as the
// compatibility specification requires; a point attribute replaces a label
// derived from the resource or scope of the same name, being more specific.
func (t *Translator) appendAttributes(labels []Label, attrs pcommon.Map) []Label {
	if attrs.Len() == 0 {
		return labels
	}
	type kv struct{ key, name, value string }
	pairs := make([]kv, 0, attrs.Len())
	for key, v := range attrs.All() {
		value := v.AsString()
		if value == "" {
			continue
		}
		name, err := t.labelNamer.Build(key)
		if err != nil || name == "__name__" {
			continue
		}
		pairs = append(pairs, kv{key, name, value})
	}
	slices.SortFunc(pairs, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	var fromAttributes []Label
	for _, pair := range pairs {
		if i := slices.IndexFunc(fromAttributes, func(l Label) bool { return l.Name == pair.name }); i >= 0 {
			fromAttributes[i].Value += ";" + pair.value
			continue
		}
		fromAttributes = append(fromAttributes, Label{Name: pair.name, Value: pair.value})
	}
	labels = slices.DeleteFunc(labels, func(l Label) bool { return hasLabel(fromAttributes, l.Name) })
	return append(labels, fromAttributes...)
}

func hasLabel(labels []Label, name string) bool {
	for _, l := range labels {
		if l.Name == name {
			return true
		}
	}
	return false
}

func dataPointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}
