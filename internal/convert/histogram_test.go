package convert

import (
	"slices"
	"testing"
	"time"
)

func TestHistogramConversion(t *testing.T) {
	bounds := []float64{1, 5, 10}
	type step struct {
		start, end float64
		h          histogramSpec
	}
	tests := []struct {
		name       string
		steps      []step
		want       Result
		wantCounts []uint64
		wantBounds []float64
		wantSum    float64
		wantMin    float64
		wantMax    float64
		wantStart  float64
	}{
		{
			name: "buckets, count and sum add; min and max cover every delta",
			steps: []step{
				{0, 10, histogramSpec{bounds: bounds, counts: []uint64{1, 2, 0, 1}, sum: 20, min: 0.5, max: 12}},
				{10, 20, histogramSpec{bounds: bounds, counts: []uint64{0, 1, 3, 0}, sum: 25, min: 2, max: 9}},
			},
			want:       Result{Applied: 2},
			wantBounds: bounds, wantCounts: []uint64{1, 3, 3, 1}, wantSum: 45, wantMin: 0.5, wantMax: 12, wantStart: 0,
		},
		{
			name: "redelivered histogram counts once",
			steps: []step{
				{0, 10, histogramSpec{bounds: bounds, counts: []uint64{1, 0, 0, 0}, sum: 1, min: 1, max: 1}},
				{10, 20, histogramSpec{bounds: bounds, counts: []uint64{0, 1, 0, 0}, sum: 2, min: 2, max: 2}},
				{0, 10, histogramSpec{bounds: bounds, counts: []uint64{1, 0, 0, 0}, sum: 1, min: 1, max: 1}},
			},
			want:       Result{Applied: 2, Duplicates: 1},
			wantBounds: bounds, wantCounts: []uint64{1, 1, 0, 0}, wantSum: 3, wantMin: 1, wantMax: 2, wantStart: 0,
		},
		{
			name: "a new bucket layout restarts the series at that point",
			steps: []step{
				{0, 10, histogramSpec{bounds: bounds, counts: []uint64{1, 2, 0, 1}, sum: 20, min: 0.5, max: 12}},
				{10, 20, histogramSpec{bounds: []float64{2, 4}, counts: []uint64{1, 1, 1}, sum: 9, min: 1, max: 5}},
				{20, 30, histogramSpec{bounds: []float64{2, 4}, counts: []uint64{0, 0, 2}, sum: 14, min: 6, max: 8}},
			},
			want:       Result{Applied: 3},
			wantBounds: []float64{2, 4}, wantCounts: []uint64{1, 1, 3}, wantSum: 23, wantMin: 1, wantMax: 8, wantStart: 10,
		},
		{
			name: "bucket counts not matching the bounds are invalid",
			steps: []step{
				{0, 10, histogramSpec{bounds: bounds, counts: []uint64{1, 0, 0, 0}, sum: 1, min: 1, max: 1}},
				{10, 20, histogramSpec{bounds: bounds, counts: []uint64{1, 1}, sum: 1, min: 1, max: 1}},
				{20, 30, histogramSpec{bounds: []float64{5, 1}, counts: []uint64{1, 1, 1}, sum: 1, min: 1, max: 1}},
			},
			want:       Result{Applied: 1, Rejected: [NumReasons]int{ReasonInvalid: 2}},
			wantBounds: bounds, wantCounts: []uint64{1, 0, 0, 0}, wantSum: 1, wantMin: 1, wantMax: 1, wantStart: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t)
			var got Result
			for _, st := range tc.steps {
				r := e.Apply(newRequest().deltaHistogram("latency", st.start, st.end, st.h).md)
				got.Applied += r.Applied
				got.Duplicates += r.Duplicates
				for i := range r.Rejected {
					got.Rejected[i] += r.Rejected[i]
				}
			}
			if got != tc.want {
				t.Fatalf("results %+v, want %+v", got, tc.want)
			}
			p := onlyPoint(t, emitPoints(t, e, epoch.Add(time.Hour)))
			dp := *p.hist
			var wantCount uint64
			for _, c := range tc.wantCounts {
				wantCount += c
			}
			switch {
			case !slices.Equal(dp.ExplicitBounds().AsRaw(), tc.wantBounds):
				t.Fatalf("bounds %v, want %v", dp.ExplicitBounds().AsRaw(), tc.wantBounds)
			case !slices.Equal(dp.BucketCounts().AsRaw(), tc.wantCounts):
				t.Fatalf("counts %v, want %v", dp.BucketCounts().AsRaw(), tc.wantCounts)
			case dp.Count() != wantCount || dp.Sum() != tc.wantSum:
				t.Fatalf("count %d sum %v, want %d and %v", dp.Count(), dp.Sum(), wantCount, tc.wantSum)
			case !dp.HasMin() || dp.Min() != tc.wantMin || !dp.HasMax() || dp.Max() != tc.wantMax:
				t.Fatalf("min %v max %v, want %v and %v", dp.Min(), dp.Max(), tc.wantMin, tc.wantMax)
			case p.start != at(tc.wantStart):
				t.Fatalf("start %v, want %v", p.start, at(tc.wantStart))
			}
		})
	}
}

func TestHistogramWithoutSumReportsNoSum(t *testing.T) {
	e := newTestEngine(t)
	e.Apply(newRequest().deltaHistogram("latency", 0, 10, histogramSpec{bounds: []float64{1}, counts: []uint64{1, 1}, sum: 3, min: 1, max: 2}).md)
	req := newRequest().deltaHistogram("latency", 10, 20, histogramSpec{bounds: []float64{1}, counts: []uint64{1, 0}, min: 1, max: 1})
	req.sm.Metrics().At(0).Histogram().DataPoints().At(0).RemoveSum()
	e.Apply(req.md)
	dp := *onlyPoint(t, emitPoints(t, e, epoch.Add(time.Hour))).hist
	if dp.HasSum() || dp.Count() != 3 {
		t.Fatalf("has sum %v count %d, want no sum and count 3", dp.HasSum(), dp.Count())
	}
}
