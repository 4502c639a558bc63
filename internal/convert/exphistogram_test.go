package convert

import (
	"slices"
	"testing"
	"time"
)

func TestExpHistogramConversion(t *testing.T) {
	hundredAndOne := make([]uint64, 101)
	hundredAndOne[0], hundredAndOne[100] = 1, 1
	tests := []struct {
		name    string
		first   expSpec
		second  expSpec
		want    Result
		wantExp expSpec
	}{
		{
			name:    "same scale adds overlapping bucket ranges",
			first:   expSpec{scale: 0, posOffset: 0, pos: []uint64{1, 2}, sum: 7, min: 1.5, max: 3.5},
			second:  expSpec{scale: 0, posOffset: 1, pos: []uint64{3, 4}, sum: 40, min: 2.5, max: 7},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, posOffset: 0, pos: []uint64{1, 5, 4}, sum: 47, min: 1.5, max: 7},
		},
		{
			name:    "different scales merge at the lower one",
			first:   expSpec{scale: 1, posOffset: 0, pos: []uint64{1, 1, 1, 1}, sum: 8, min: 1.1, max: 3.9},
			second:  expSpec{scale: 0, posOffset: 0, pos: []uint64{2}, sum: 3, min: 1.2, max: 1.8},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, posOffset: 0, pos: []uint64{4, 2}, sum: 11, min: 1.1, max: 3.9},
		},
		{
			name:    "a finer point is downscaled to the state's scale",
			first:   expSpec{scale: 0, posOffset: 0, pos: []uint64{3}, sum: 4.5, min: 1.5, max: 1.5},
			second:  expSpec{scale: 2, posOffset: 4, pos: []uint64{1, 1, 1, 1}, sum: 12, min: 2.1, max: 3.9},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, posOffset: 0, pos: []uint64{3, 4}, sum: 16.5, min: 1.5, max: 3.9},
		},
		{
			name:    "a merged range wider than 160 buckets lowers the scale",
			first:   expSpec{scale: 2, posOffset: 0, pos: []uint64{1}, sum: 1.1, min: 1.1, max: 1.1},
			second:  expSpec{scale: 2, posOffset: 200, pos: []uint64{1}, sum: 1e15, min: 1e15, max: 1e15},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 1, posOffset: 0, pos: hundredAndOne, sum: 1.1 + 1e15, min: 1.1, max: 1e15},
		},
		{
			name:    "a larger zero threshold absorbs the buckets within it",
			first:   expSpec{scale: 0, zeroCount: 1, posOffset: 0, pos: []uint64{1, 1, 1}, sum: 10, min: 0, max: 7},
			second:  expSpec{scale: 0, zeroThreshold: 4, zeroCount: 2, posOffset: 2, pos: []uint64{5}, sum: 30, min: 0, max: 8},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 4, zeroCount: 5, posOffset: 2, pos: []uint64{6}, sum: 40, min: 0, max: 8},
		},
		{
			name:    "negative buckets merge like positive ones",
			first:   expSpec{scale: 0, negOffset: -1, neg: []uint64{1, 1}, posOffset: 3, pos: []uint64{1}, sum: -1, min: -2, max: 9},
			second:  expSpec{scale: 0, negOffset: 0, neg: []uint64{2}, sum: -3, min: -1.5, max: -1.5},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, negOffset: -1, neg: []uint64{1, 3}, posOffset: 3, pos: []uint64{1}, sum: -4, min: -2, max: 9},
		},
		{
			name:    "buckets that cannot fit even at the lowest scale are invalid",
			first:   expSpec{scale: -10, posOffset: 0, pos: []uint64{1}, sum: 2, min: 2, max: 2},
			second:  expSpec{scale: -10, posOffset: 1000, pos: []uint64{1}, sum: 2, min: 2, max: 2},
			want:    Result{Applied: 1, Rejected: [NumReasons]int{ReasonInvalid: 1}},
			wantExp: expSpec{scale: -10, posOffset: 0, pos: []uint64{1}, sum: 2, min: 2, max: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t)
			var got Result
			for i, spec := range []expSpec{tc.first, tc.second} {
				r := e.Apply(newRequest().deltaExpHistogram("duration", float64(10*i), float64(10*i+10), spec).md)
				got.Applied += r.Applied
				for j := range r.Rejected {
					got.Rejected[j] += r.Rejected[j]
				}
			}
			if got != tc.want {
				t.Fatalf("results %+v, want %+v", got, tc.want)
			}
			dp := *onlyPoint(t, emitPoints(t, e, epoch.Add(time.Hour))).exp
			w := tc.wantExp
			wantCount := w.zeroCount
			for _, c := range append(slices.Clone(w.pos), w.neg...) {
				wantCount += c
			}
			switch {
			case dp.Scale() != w.scale || dp.ZeroThreshold() != w.zeroThreshold || dp.ZeroCount() != w.zeroCount:
				t.Fatalf("scale %d zero threshold %v zero count %d, want %d, %v, %d", dp.Scale(), dp.ZeroThreshold(), dp.ZeroCount(), w.scale, w.zeroThreshold, w.zeroCount)
			case dp.Positive().Offset() != w.posOffset || !slices.Equal(dp.Positive().BucketCounts().AsRaw(), w.pos):
				t.Fatalf("positive %d %v, want %d %v", dp.Positive().Offset(), dp.Positive().BucketCounts().AsRaw(), w.posOffset, w.pos)
			case len(w.neg) > 0 && (dp.Negative().Offset() != w.negOffset || !slices.Equal(dp.Negative().BucketCounts().AsRaw(), w.neg)):
				t.Fatalf("negative %d %v, want %d %v", dp.Negative().Offset(), dp.Negative().BucketCounts().AsRaw(), w.negOffset, w.neg)
			case dp.Count() != wantCount || dp.Sum() != w.sum || dp.Min() != w.min || dp.Max() != w.max:
				t.Fatalf("count %d sum %v min %v max %v, want %d %v %v %v", dp.Count(), dp.Sum(), dp.Min(), dp.Max(), wantCount, w.sum, w.min, w.max)
			}
		})
	}
}

func TestExpHistogramInvalidPoints(t *testing.T) {
	tests := map[string]expSpec{
		"scale above 20":          {scale: 21, pos: []uint64{1}},
		"negative zero threshold": {zeroThreshold: -1, pos: []uint64{1}},
	}
	for name, spec := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEngine(t)
			r := e.Apply(newRequest().deltaExpHistogram("d", 0, 10, spec).md)
			if r.Rejected[ReasonInvalid] != 1 || e.Streams() != 0 {
				t.Fatalf("got %+v with %d streams, want one invalid point and no stream", r, e.Streams())
			}
		})
	}
	e := newTestEngine(t)
	req := newRequest().deltaExpHistogram("d", 0, 10, expSpec{pos: []uint64{1, 2}})
	req.sm.Metrics().At(0).ExponentialHistogram().DataPoints().At(0).SetCount(7)
	if r := e.Apply(req.md); r.Rejected[ReasonInvalid] != 1 {
		t.Fatalf("count not matching the buckets accepted: %+v", r)
	}
}
