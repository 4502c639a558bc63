package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// ledger adds up what was acknowledged, keyed by the Prometheus series the
// backend will show, so totals count exactly the deltas the pipeline
// received: a failed export is counted as failed, never as sent.
type ledger struct {
	metricNamer otlptranslator.MetricNamer
	labelNamer  otlptranslator.LabelNamer

	mu            sync.Mutex
	series        map[string]float64
	streams       map[string]struct{}
	points        int64
	exports       int64
	failedExports int64
	failedPoints  int64
	lastError     error
}

func newLedger() *ledger {
	return &ledger{
		metricNamer: otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes),
		series:      make(map[string]float64),
		streams:     make(map[string]struct{}),
	}
}

// wrap returns an exporter that records every export's outcome here.
func (l *ledger) wrap(inner sdkmetric.Exporter) sdkmetric.Exporter {
	return &recordingExporter{Exporter: inner, ledger: l}
}

type recordingExporter struct {
	sdkmetric.Exporter
	ledger *ledger
}

func (e *recordingExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := e.Exporter.Export(ctx, rm)
	e.ledger.record(rm, err)
	return err
}

// counts reports progress without copying the series.
func (l *ledger) counts() (points, failedPoints, failedExports int64, lastErr error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.points, l.failedPoints, l.failedExports, l.lastError
}

func (l *ledger) record(rm *metricdata.ResourceMetrics, exportErr error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if exportErr != nil {
		l.failedExports++
		l.failedPoints += int64(countPoints(rm))
		l.lastError = exportErr
		return
	}
	l.exports++
	base := resourceLabels(rm.Resource)
	for _, sm := range rm.ScopeMetrics {
		scope := copyLabels(base)
		if sm.Scope.Name != "" {
			scope[otlptranslator.ScopeNameLabelKey] = sm.Scope.Name
		}
		if sm.Scope.Version != "" {
			scope[otlptranslator.ScopeVersionLabelKey] = sm.Scope.Version
		}
		for _, m := range sm.Metrics {
			l.recordMetric(m, scope)
		}
	}
}

func (l *ledger) recordMetric(m metricdata.Metrics, scope map[string]string) {
	switch data := m.Data.(type) {
	case metricdata.Sum[int64]:
		addSum(l, m, data.IsMonotonic, data.DataPoints, scope)
	case metricdata.Sum[float64]:
		addSum(l, m, data.IsMonotonic, data.DataPoints, scope)
	case metricdata.Histogram[int64]:
		addHistogram(l, m, data.DataPoints, scope)
	case metricdata.Histogram[float64]:
		addHistogram(l, m, data.DataPoints, scope)
	default:
		// The generator creates counters and histograms only; anything else
		// would be a programming error that must not pass as "sent".
		l.lastError = fmt.Errorf("metric %s has unsupported data %T", m.Name, m.Data)
		l.failedExports++
	}
}

func addSum[N int64 | float64](l *ledger, m metricdata.Metrics, monotonic bool, points []metricdata.DataPoint[N], scope map[string]string) {
	var kind otlptranslator.MetricType = otlptranslator.MetricTypeNonMonotonicCounter
	if monotonic {
		kind = otlptranslator.MetricTypeMonotonicCounter
	}
	name := l.name(m, kind)
	for _, dp := range points {
		key := totals.SeriesKey(name, l.pointLabels(scope, dp.Attributes))
		l.series[key] += float64(dp.Value)
		l.streams[key] = struct{}{}
		l.points++
	}
}

func addHistogram[N int64 | float64](l *ledger, m metricdata.Metrics, points []metricdata.HistogramDataPoint[N], scope map[string]string) {
	name := l.name(m, otlptranslator.MetricTypeHistogram)
	for _, dp := range points {
		labels := l.pointLabels(scope, dp.Attributes)
		l.streams[totals.SeriesKey(name, labels)] = struct{}{}
		l.series[totals.SeriesKey(name+"_count", labels)] += float64(dp.Count)
		l.series[totals.SeriesKey(name+"_sum", labels)] += float64(dp.Sum)
		var cumulative uint64
		for i, c := range dp.BucketCounts {
			cumulative += c
			bucket := copyLabels(labels)
			bucket["le"] = "+Inf"
			if i < len(dp.Bounds) {
				bucket["le"] = strconv.FormatFloat(dp.Bounds[i], 'g', -1, 64)
			}
			l.series[totals.SeriesKey(name+"_bucket", bucket)] += float64(cumulative)
		}
		l.points++
	}
}

func (l *ledger) name(m metricdata.Metrics, kind otlptranslator.MetricType) string {
	name, err := l.metricNamer.Build(otlptranslator.Metric{Name: m.Name, Unit: m.Unit, Type: kind})
	if err != nil {
		// Every name the generator uses is valid; keep the raw name so a
		// mismatch shows up in the comparison rather than vanishing.
		return m.Name
	}
	return name
}

func (l *ledger) pointLabels(scope map[string]string, attrs attribute.Set) map[string]string {
	labels := copyLabels(scope)
	for _, kv := range attrs.ToSlice() {
		value := kv.Value.String()
		if value == "" {
			continue
		}
		name, err := l.labelNamer.Build(string(kv.Key))
		if err != nil {
			continue
		}
		labels[name] = value
	}
	return labels
}

// resourceLabels derives job and instance the way the OpenTelemetry to
// Prometheus compatibility rules do.
func resourceLabels(res *resource.Resource) map[string]string {
	labels := make(map[string]string)
	if res == nil {
		return labels
	}
	name, _ := res.Set().Value("service.name")
	namespace, _ := res.Set().Value("service.namespace")
	if job := name.String(); job != "" {
		if ns := namespace.String(); ns != "" {
			job = ns + "/" + job
		}
		labels["job"] = job
	}
	if id, ok := res.Set().Value("service.instance.id"); ok && id.String() != "" {
		labels["instance"] = id.String()
	}
	return labels
}

func copyLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+8)
	for k, v := range in {
		out[k] = v
	}
	return out
}

func countPoints(rm *metricdata.ResourceMetrics) int {
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				n += len(data.DataPoints)
			case metricdata.Sum[float64]:
				n += len(data.DataPoints)
			case metricdata.Histogram[int64]:
				n += len(data.DataPoints)
			case metricdata.Histogram[float64]:
				n += len(data.DataPoints)
			}
		}
	}
	return n
}

func (l *ledger) totals() totals.Totals {
	l.mu.Lock()
	defer l.mu.Unlock()
	series := make(map[string]float64, len(l.series))
	for k, v := range l.series {
		series[k] = v
	}
	return totals.Totals{
		Series:        series,
		Points:        l.points,
		Exports:       l.exports,
		FailedExports: l.failedExports,
		FailedPoints:  l.failedPoints,
		Streams:       len(l.streams),
	}
}
