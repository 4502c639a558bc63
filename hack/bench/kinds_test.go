package main

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// The memory phase's templates carry only the kind they are named for, with
// the bucket counts its figures are quoted for.
func TestMemoryTemplatesHoldOneKindWithItsBuckets(t *testing.T) {
	for _, c := range []struct {
		kind    mix
		typ     pmetric.MetricType
		buckets int
	}{
		{mixSums, pmetric.MetricTypeSum, 0},
		{mixHistograms, pmetric.MetricTypeHistogram, 16},
		{mixExpHistograms, pmetric.MetricTypeExponentialHistogram, expHistogramBuckets},
	} {
		tmpl, err := buildTemplate(0, 10, c.kind)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(tmpl.body); err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		ms := req.Metrics().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
		if ms.Len() != 1 || ms.At(0).Type() != c.typ || req.Metrics().DataPointCount() != 10 {
			t.Fatalf("%s: %d metrics, first of type %s, %d points; want one %s metric of 10 points",
				c.kind, ms.Len(), ms.At(0).Type(), req.Metrics().DataPointCount(), c.typ)
		}
		m := ms.At(0)
		switch c.typ {
		case pmetric.MetricTypeHistogram:
			if n := m.Histogram().DataPoints().At(9).BucketCounts().Len(); n != c.buckets {
				t.Errorf("%s: %d buckets, want %d", c.kind, n, c.buckets)
			}
		case pmetric.MetricTypeExponentialHistogram:
			dp := m.ExponentialHistogram().DataPoints().At(9)
			if n := dp.Positive().BucketCounts().Len(); n != c.buckets {
				t.Errorf("%s: %d buckets, want %d", c.kind, n, c.buckets)
			}
			if m.ExponentialHistogram().AggregationTemporality() != pmetric.AggregationTemporalityDelta {
				t.Errorf("%s: not delta", c.kind)
			}
		}
	}
}
