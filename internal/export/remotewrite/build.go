package remotewrite

import (
	"math"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/export/promseries"
)

// Reasons a sample is dropped before it is sent.
const (
	dropDuplicateSeries = "duplicate_series"
)

// builder flattens translated points into remote write series. A series
// appears at most once per request with one sample per timestamp, because
// several streams can map to the same labels (for example streams that
// differ only in resource attributes that do not become labels) and a
// receiver rejects a repeated or out-of-order sample.
type builder struct {
	translator *promseries.Translator
	series     []TimeSeries
	index      map[string]int
	dropped    map[string]int
	samples    int
	key        strings.Builder
}

func newBuilder(t *promseries.Translator) *builder {
	return &builder{translator: t}
}

// build returns the series of md and the samples dropped by reason.
func (b *builder) build(md pmetric.Metrics) ([]TimeSeries, int, map[string]int) {
	b.series, b.index, b.samples = nil, map[string]int{}, 0
	b.dropped = b.translator.Translate(md, b.addPoint)
	return b.series, b.samples, b.dropped
}

func (b *builder) addPoint(p *promseries.Point) {
	value := func(v float64) float64 {
		if p.Stale {
			return promseries.StaleNaN
		}
		return v
	}
	switch p.Kind {
	case promseries.KindCounter, promseries.KindGauge:
		b.addSample(p.Family, p.Labels, "", "", value(p.Value), p.TimestampMs)
	case promseries.KindHistogram:
		for _, bucket := range p.Buckets {
			b.addSample(p.Family+"_bucket", p.Labels, "le", formatFloat(bucket.UpperBound), value(float64(bucket.Count)), p.TimestampMs)
		}
		b.addSample(p.Family+"_bucket", p.Labels, "le", "+Inf", value(float64(p.Count)), p.TimestampMs)
		b.addSample(p.Family+"_count", p.Labels, "", "", value(float64(p.Count)), p.TimestampMs)
		if p.HasSum {
			b.addSample(p.Family+"_sum", p.Labels, "", "", value(p.Sum), p.TimestampMs)
		}
	case promseries.KindSummary:
		for _, q := range p.Quantiles {
			b.addSample(p.Family, p.Labels, "quantile", formatFloat(q.Quantile), value(q.Value), p.TimestampMs)
		}
		b.addSample(p.Family+"_count", p.Labels, "", "", value(float64(p.Count)), p.TimestampMs)
		b.addSample(p.Family+"_sum", p.Labels, "", "", value(p.Sum), p.TimestampMs)
	case promseries.KindNativeHistogram:
		ts := b.seriesFor(p.Family, p.Labels, "", "")
		h := nativeHistogram(p)
		if last := len(ts.Histograms) - 1; last >= 0 && ts.Histograms[last].Timestamp >= h.Timestamp {
			b.dropped[dropDuplicateSeries]++
			return
		}
		if p.Stale {
			// A native histogram series ends with a float staleness marker.
			b.addSample(p.Family, p.Labels, "", "", promseries.StaleNaN, p.TimestampMs)
			return
		}
		ts.Histograms = append(ts.Histograms, h)
		b.samples++
	}
}

func (b *builder) addSample(name string, labels []promseries.Label, extraName, extraValue string, v float64, tsMs int64) {
	ts := b.seriesFor(name, labels, extraName, extraValue)
	if last := len(ts.Samples) - 1; last >= 0 && ts.Samples[last].Timestamp >= tsMs {
		b.dropped[dropDuplicateSeries]++
		return
	}
	ts.Samples = append(ts.Samples, Sample{Value: v, Timestamp: tsMs})
	b.samples++
}

// seriesFor finds or creates the series with labels sorted by name:
// __name__ first (it sorts before any valid label name starting with a
// letter), then the point's labels with the extra one (le, quantile) in place.
func (b *builder) seriesFor(name string, labels []promseries.Label, extraName, extraValue string) *TimeSeries {
	out := make([]Label, 0, len(labels)+2)
	out = append(out, Label{Name: "__name__", Value: name})
	inserted := extraName == ""
	for _, l := range labels {
		if l.Name == extraName {
			continue // the bucket or quantile label wins over an attribute of the same name
		}
		if !inserted && l.Name > extraName {
			out = append(out, Label{Name: extraName, Value: extraValue})
			inserted = true
		}
		out = append(out, Label{Name: l.Name, Value: l.Value})
	}
	if !inserted {
		out = append(out, Label{Name: extraName, Value: extraValue})
	}
	if len(out) > 1 && out[1].Name < "__name__" {
		sortLabels(out)
	}

	b.key.Reset()
	for _, l := range out {
		b.key.WriteString(l.Name)
		b.key.WriteByte(0xff)
		b.key.WriteString(l.Value)
		b.key.WriteByte(0xfe)
	}
	if i, ok := b.index[b.key.String()]; ok {
		return &b.series[i]
	}
	b.index[b.key.String()] = len(b.series)
	b.series = append(b.series, TimeSeries{Labels: out})
	return &b.series[len(b.series)-1]
}

// sortLabels handles label names sorting before "__name__" (such as
// "_private" or "__a"), which are rare enough to pay for a sort.
func sortLabels(ls []Label) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func nativeHistogram(p *promseries.Point) Histogram {
	n := p.Native
	h := Histogram{
		Count:         p.Count,
		Sum:           p.Sum,
		Schema:        n.Schema,
		ZeroThreshold: n.ZeroThreshold,
		ZeroCount:     n.ZeroCount,
		Timestamp:     p.TimestampMs,
	}
	if !p.HasSum {
		h.Sum = math.NaN()
	}
	h.PositiveSpans, h.PositiveDeltas = spansAndDeltas(n.Positive)
	h.NegativeSpans, h.NegativeDeltas = spansAndDeltas(n.Negative)
	return h
}

// spansAndDeltas encodes consecutive buckets as one span with delta-encoded
// counts; empty buckets inside the span cost one byte each, which is cheaper
// than splitting spans for the few gaps exponential histograms have.
func spansAndDeltas(b promseries.NativeBuckets) ([]BucketSpan, []int64) {
	if len(b.Counts) == 0 {
		return nil, nil
	}
	deltas := make([]int64, len(b.Counts))
	var prev int64
	for i, c := range b.Counts {
		deltas[i] = int64(c) - prev
		prev = int64(c)
	}
	return []BucketSpan{{Offset: b.Offset, Length: uint32(len(b.Counts))}}, deltas
}

// formatFloat writes le and quantile values the way Prometheus does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
