package convert

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
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
			checkExpMerge(t, tc.first, tc.second, tc.want, tc.wantExp)
		})
	}
}

// checkExpMerge applies first and then second as consecutive deltas of one
// stream and compares the results and the emitted cumulative point with
// want and wantExp. Empty bucket ranges compare equal whatever their offset.
func checkExpMerge(t *testing.T, first, second expSpec, want Result, wantExp expSpec) {
	t.Helper()
	e := newTestEngine(t)
	var got Result
	for i, spec := range []expSpec{first, second} {
		r := e.Apply(newRequest().deltaExpHistogram("duration", float64(10*i), float64(10*i+10), spec).md)
		got.Applied += r.Applied
		for j := range r.Rejected {
			got.Rejected[j] += r.Rejected[j]
		}
	}
	if got != want {
		t.Fatalf("results %+v, want %+v", got, want)
	}
	dp := *onlyPoint(t, emitPoints(t, e, epoch.Add(time.Hour))).exp
	w := wantExp
	wantCount := w.zeroCount
	for _, c := range append(slices.Clone(w.pos), w.neg...) {
		wantCount += c
	}
	sameBuckets := func(b pmetric.ExponentialHistogramDataPointBuckets, offset int32, counts []uint64) bool {
		got := b.BucketCounts().AsRaw()
		return slices.Equal(got, counts) && (len(counts) == 0 || b.Offset() == offset)
	}
	switch {
	case dp.Scale() != w.scale || dp.ZeroThreshold() != w.zeroThreshold || dp.ZeroCount() != w.zeroCount:
		t.Fatalf("scale %d zero threshold %v zero count %d, want %d, %v, %d", dp.Scale(), dp.ZeroThreshold(), dp.ZeroCount(), w.scale, w.zeroThreshold, w.zeroCount)
	case !sameBuckets(dp.Positive(), w.posOffset, w.pos):
		t.Fatalf("positive %d %v, want %d %v", dp.Positive().Offset(), dp.Positive().BucketCounts().AsRaw(), w.posOffset, w.pos)
	case !sameBuckets(dp.Negative(), w.negOffset, w.neg):
		t.Fatalf("negative %d %v, want %d %v", dp.Negative().Offset(), dp.Negative().BucketCounts().AsRaw(), w.negOffset, w.neg)
	case dp.Count() != wantCount || dp.Sum() != w.sum || dp.Min() != w.min || dp.Max() != w.max:
		t.Fatalf("count %d sum %v min %v max %v, want %d %v %v %v", dp.Count(), dp.Sum(), dp.Min(), dp.Max(), wantCount, w.sum, w.min, w.max)
	}
}

// Bucket index i at scale s covers (base^i, base^(i+1)] with base =
// 2^(2^-s): at scale 0 bucket 1 is (2, 4], at scale -1 bucket 0 is (1, 4].
// The expected outputs below are worked out by hand from that rule and the
// data model's: a histogram whose zero threshold is raised to the merged
// one gives up every bucket at or below it, and when the merged threshold
// falls strictly inside a populated bucket (at the merged scale) the
// threshold rises to that bucket's upper boundary and the whole bucket joins
// the zero count.
func TestExpHistogramZeroThresholdMerge(t *testing.T) {
	tests := []struct {
		name          string
		first, second expSpec
		want          Result
		wantExp       expSpec
	}{
		{
			// 3 lies in the stream's (2, 4]: the threshold becomes 4 and
			// (1, 2] and (2, 4] join the zero count: 1 + 1 + 2 + 2.
			name:    "point's larger threshold inside a populated positive bucket of the stream",
			first:   expSpec{scale: 0, zeroCount: 1, posOffset: 0, pos: []uint64{1, 2, 3}, sum: 30, max: 7},
			second:  expSpec{scale: 0, zeroThreshold: 3, zeroCount: 2, posOffset: 2, pos: []uint64{4}, sum: 20, max: 6},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 4, zeroCount: 6, posOffset: 2, pos: []uint64{7}, sum: 50, max: 7},
		},
		{
			// The stream's [-4, -2) holds 2 values some of which may be
			// within 3; the point's own [-4, -2) lay beyond its threshold
			// 3, but once the threshold is 4 it lies within it too.
			name:    "point's larger threshold inside a populated negative bucket of the stream",
			first:   expSpec{scale: 0, negOffset: 0, neg: []uint64{1, 2, 3}, sum: -30, min: -7},
			second:  expSpec{scale: 0, zeroThreshold: 3, zeroCount: 1, negOffset: 1, neg: []uint64{5, 1}, sum: -25, min: -6},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 4, zeroCount: 9, negOffset: 2, neg: []uint64{4}, sum: -55, min: -7},
		},
		{
			// The stream keeps 3; the point's (2, 4] straddles it.
			name:    "stream's larger threshold inside a populated positive bucket of the point",
			first:   expSpec{scale: 0, zeroThreshold: 3, zeroCount: 2, posOffset: 2, pos: []uint64{1}, sum: 8, max: 6},
			second:  expSpec{scale: 0, zeroCount: 1, posOffset: 0, pos: []uint64{1, 2, 4}, sum: 30, max: 7},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 4, zeroCount: 6, posOffset: 2, pos: []uint64{5}, sum: 38, max: 7},
		},
		{
			name:    "stream's larger threshold inside a populated negative bucket of the point",
			first:   expSpec{scale: 0, zeroThreshold: 3, zeroCount: 2, negOffset: 2, neg: []uint64{1}, posOffset: 3, pos: []uint64{1}, sum: 4, min: -6, max: 9},
			second:  expSpec{scale: 0, negOffset: 0, neg: []uint64{1, 2, 4}, sum: -30, min: -7},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 4, zeroCount: 5, negOffset: 2, neg: []uint64{5}, posOffset: 3, pos: []uint64{1}, sum: -26, min: -7, max: 9},
		},
		{
			// At scale -1 the point's (1, 4] straddles the stream's 2, a
			// boundary at the stream's own scale 0; the stream's (2, 4]
			// then lies within the raised threshold.
			name:    "threshold judged at the merged scale: stream's boundary inside a coarser point bucket",
			first:   expSpec{scale: 0, zeroThreshold: 2, zeroCount: 3, posOffset: 1, pos: []uint64{1}, sum: 5, max: 3},
			second:  expSpec{scale: -1, posOffset: 0, pos: []uint64{2}, sum: 5, max: 3},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: -1, zeroThreshold: 4, zeroCount: 6, sum: 10, max: 3},
		},
		{
			// 2.5 lies in the stream's scale-1 bucket (2, 2^1.5]; merged at
			// scale 0 that is part of (2, 4], which moves whole.
			name:    "threshold judged at the merged scale: point's threshold inside a bucket the stream downscales to",
			first:   expSpec{scale: 1, negOffset: 2, neg: []uint64{1, 1, 1}, sum: -10, min: -5},
			second:  expSpec{scale: 0, zeroThreshold: 2.5, negOffset: 2, neg: []uint64{1}, sum: -5, min: -5},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 4, zeroCount: 2, negOffset: 2, neg: []uint64{2}, sum: -15, min: -5},
		},
		{
			// (2, 4] is empty: nothing straddles 3, so 3 stays.
			name:    "threshold inside an empty bucket stays",
			first:   expSpec{scale: 0, posOffset: 0, pos: []uint64{1, 0, 3}, sum: 20, max: 7},
			second:  expSpec{scale: 0, zeroThreshold: 3, posOffset: 2, pos: []uint64{1}, sum: 5, max: 5},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: 0, zeroThreshold: 3, zeroCount: 1, posOffset: 1, pos: []uint64{0, 4}, sum: 25, max: 7},
		},
		{
			// Neither threshold is raised: the point's (1, 4] at scale -1
			// counts values above its own threshold 2, as the stream's
			// (2, 4] does.
			name:    "equal thresholds raise nothing",
			first:   expSpec{scale: 0, zeroThreshold: 2, zeroCount: 1, posOffset: 1, pos: []uint64{1}, sum: 4, max: 3},
			second:  expSpec{scale: -1, zeroThreshold: 2, zeroCount: 1, posOffset: 0, pos: []uint64{1}, sum: 4, max: 3},
			want:    Result{Applied: 2},
			wantExp: expSpec{scale: -1, zeroThreshold: 2, zeroCount: 2, posOffset: 0, pos: []uint64{2}, sum: 8, max: 3},
		},
		{
			// At scale -10 bucket 0 is (1, 2^1024]: its upper boundary is
			// no float64, so the point that would raise the threshold into
			// it is refused and the stream keeps its state.
			name:    "threshold that would rise beyond float64 is invalid",
			first:   expSpec{scale: -10, posOffset: 0, pos: []uint64{1}, sum: 2, min: 2, max: 2},
			second:  expSpec{scale: -10, zeroThreshold: 1e300, zeroCount: 1, sum: 0},
			want:    Result{Applied: 1, Rejected: [NumReasons]int{ReasonInvalid: 1}},
			wantExp: expSpec{scale: -10, posOffset: 0, pos: []uint64{1}, sum: 2, min: 2, max: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkExpMerge(t, tc.first, tc.second, tc.want, tc.wantExp)
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
