package main

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// A template rewritten for a round decodes to the same streams with every
// point's interval set to that round, so the generator sends new intervals
// without re-encoding.
func TestTemplateRoundsRewriteEveryInterval(t *testing.T) {
	tmpl, err := buildTemplate(40, 10, mixSumsAndHistograms)
	if err != nil {
		t.Fatal(err)
	}
	clock := dataClock{start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), step: time.Minute}
	for _, round := range []int{0, 7} {
		tmpl.setRound(clock, round)
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(tmpl.body); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		wantStart := clock.start.Add(time.Duration(round) * clock.step)
		sums, histograms := 0, 0
		check := func(start, end time.Time) {
			if !start.Equal(wantStart) || !end.Equal(wantStart.Add(clock.step)) {
				t.Errorf("round %d: interval %s..%s, want %s..%s", round, start, end, wantStart, wantStart.Add(clock.step))
			}
		}
		for _, m := range req.Metrics().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().All() {
			switch m.Type() {
			case pmetric.MetricTypeSum:
				for _, dp := range m.Sum().DataPoints().All() {
					sums++
					check(dp.StartTimestamp().AsTime(), dp.Timestamp().AsTime())
				}
			case pmetric.MetricTypeHistogram:
				for _, dp := range m.Histogram().DataPoints().All() {
					histograms++
					check(dp.StartTimestamp().AsTime(), dp.Timestamp().AsTime())
				}
			}
		}
		if sums != 5 || histograms != 5 {
			t.Errorf("round %d: %d sums and %d histograms, want 5 and 5", round, sums, histograms)
		}
	}
}
