package convert

import (
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Limits of exponential histograms, as in the OpenTelemetry data model and
// the SDK's default aggregation.
const (
	expMinScale   = -10
	expMaxScale   = 20
	expMaxBuckets = 160
)

type expBuckets struct {
	offset int32
	counts []uint64
}

// expHistogramState is the running cumulative of an exponential histogram.
type expHistogramState struct {
	scale         int32
	zeroThreshold float64
	zeroCount     uint64
	positive      expBuckets
	negative      expBuckets
	count         uint64
	sum           float64
	min           float64
	max           float64
	hasSum        bool
	hasMin        bool
	hasMax        bool
}

func validateExpHistogram(dp pmetric.ExponentialHistogramDataPoint) error {
	if s := dp.Scale(); s < expMinScale || s > expMaxScale {
		return fmt.Errorf("exponential histogram scale %d is outside [%d, %d]", s, expMinScale, expMaxScale)
	}
	if zt := dp.ZeroThreshold(); !isFinite(zt) || zt < 0 {
		return fmt.Errorf("exponential histogram zero threshold %v is not a finite non-negative number", zt)
	}
	total := dp.ZeroCount()
	for _, b := range []pmetric.ExponentialHistogramDataPointBuckets{dp.Positive(), dp.Negative()} {
		n := b.BucketCounts().Len()
		if int64(b.Offset())+int64(n)-1 > math.MaxInt32 {
			return errors.New("exponential histogram bucket index overflows int32")
		}
		for i := 0; i < n; i++ {
			total += b.BucketCounts().At(i)
		}
	}
	if total != dp.Count() {
		return fmt.Errorf("exponential histogram count %d differs from zero count plus bucket counts %d", dp.Count(), total)
	}
	if dp.HasSum() && !isFinite(dp.Sum()) {
		return errNonFinite
	}
	if dp.HasMin() && math.IsNaN(dp.Min()) || dp.HasMax() && math.IsNaN(dp.Max()) {
		return errors.New("exponential histogram min or max is NaN")
	}
	return nil
}

// bucketUpperBound is the upper boundary of bucket index at scale.
func bucketUpperBound(index int64, scale int32) float64 {
	return math.Exp2(math.Ldexp(float64(index+1), -int(scale)))
}

// bucketsWithin counts the leading buckets lying entirely within the zero
// threshold; their counts belong in the zero bucket.
func bucketsWithin(offset int32, n int, scale int32, zeroThreshold float64) int {
	k := 0
	for k < n && bucketUpperBound(int64(offset)+int64(k), scale) <= zeroThreshold {
		k++
	}
	return k
}

// pointBuckets is a read-only view of a point's buckets with the leading
// ones already moved to the zero bucket skipped.
type pointBuckets struct {
	offset int64
	counts pcommon.UInt64Slice
	skip   int
}

func (p pointBuckets) len() int { return p.counts.Len() - p.skip }

// indexRange is the inclusive range of bucket indexes in use.
type indexRange struct {
	lo, hi int64
	empty  bool
}

func rangeOf(offset int64, n int, shift int32) indexRange {
	if n == 0 {
		return indexRange{empty: true}
	}
	return indexRange{lo: offset >> shift, hi: (offset + int64(n) - 1) >> shift}
}

func (r indexRange) union(o indexRange) indexRange {
	switch {
	case r.empty:
		return o
	case o.empty:
		return r
	}
	return indexRange{lo: min(r.lo, o.lo), hi: max(r.hi, o.hi)}
}

func (r indexRange) size() int64 {
	if r.empty {
		return 0
	}
	return r.hi - r.lo + 1
}

// mergeScale is the scale at which the state and the point fit together in
// expMaxBuckets buckets per sign: the lower of the two scales, lowered
// further while the merged range is too wide.
func mergeScale(h *expHistogramState, pos, neg pointBuckets, pointScale int32) (int32, error) {
	target := min(h.scale, pointScale)
	for ; target >= expMinScale; target-- {
		fits := true
		for _, side := range []struct {
			state expBuckets
			point pointBuckets
		}{{h.positive, pos}, {h.negative, neg}} {
			r := rangeOf(int64(side.state.offset), len(side.state.counts), h.scale-target).
				union(rangeOf(side.point.offset, side.point.len(), pointScale-target))
			if r.size() > expMaxBuckets {
				fits = false
				break
			}
		}
		if fits {
			return target, nil
		}
	}
	return 0, fmt.Errorf("exponential histogram buckets do not fit in %d buckets even at scale %d", expMaxBuckets, expMinScale)
}

// mergeBuckets adds the point's buckets into dst, rescaling dst from
// dstScale and the point from pointScale to target. When nothing needs
// rescaling and the point's range lies inside dst it adds in place.
func mergeBuckets(dst *expBuckets, dstScale int32, p pointBuckets, pointScale, target int32) {
	dstShift, pointShift := dstScale-target, pointScale-target
	dr := rangeOf(int64(dst.offset), len(dst.counts), dstShift)
	pr := rangeOf(p.offset, p.len(), pointShift)
	if pr.empty && dstShift == 0 {
		return
	}
	if dstShift == 0 && !dr.empty && !pr.empty && pr.lo >= dr.lo && pr.hi <= dr.hi {
		for i := 0; i < p.len(); i++ {
			idx := (p.offset + int64(i)) >> pointShift
			dst.counts[idx-dr.lo] += p.counts.At(p.skip + i)
		}
		return
	}
	r := dr.union(pr)
	if r.empty {
		*dst = expBuckets{}
		return
	}
	merged := make([]uint64, r.size())
	for i, c := range dst.counts {
		merged[((int64(dst.offset)+int64(i))>>dstShift)-r.lo] += c
	}
	for i := 0; i < p.len(); i++ {
		merged[((p.offset+int64(i))>>pointShift)-r.lo] += p.counts.At(p.skip + i)
	}
	*dst = expBuckets{offset: int32(r.lo), counts: merged}
}

// moveWithinZero moves the state's leading buckets that now lie within
// the zero threshold into the zero count.
func (h *expHistogramState) moveWithinZero(b *expBuckets) {
	k := bucketsWithin(b.offset, len(b.counts), h.scale, h.zeroThreshold)
	if k == 0 {
		return
	}
	for _, c := range b.counts[:k] {
		h.zeroCount += c
	}
	b.offset += int32(k)
	b.counts = b.counts[k:]
}

// widenZero raises the state's zero threshold to zeroThreshold, moving the
// buckets that then lie within it into the zero count.
func (h *expHistogramState) widenZero(zeroThreshold float64) {
	if zeroThreshold <= h.zeroThreshold {
		return
	}
	h.zeroThreshold = zeroThreshold
	h.moveWithinZero(&h.positive)
	h.moveWithinZero(&h.negative)
}

func viewWithinZero(b pmetric.ExponentialHistogramDataPointBuckets, scale int32, zeroThreshold float64) (pointBuckets, uint64) {
	counts := b.BucketCounts()
	k := bucketsWithin(b.Offset(), counts.Len(), scale, zeroThreshold)
	var moved uint64
	for i := 0; i < k; i++ {
		moved += counts.At(i)
	}
	return pointBuckets{offset: int64(b.Offset()) + int64(k), counts: counts, skip: k}, moved
}

// straddledBucket is the index, at scale target, of the bucket holding the
// lowest remaining bucket first (at scale target+shift), and whether
// zeroThreshold lies strictly inside it. The remaining buckets all end above
// zeroThreshold, so only the lower boundary needs comparing.
func straddledBucket(first int64, shift, target int32, zeroThreshold float64) (int64, bool) {
	c := first >> shift
	return c, bucketUpperBound(c-1, target) < zeroThreshold
}

// straddledUpperBound is the upper boundary at scale target of the state's
// lowest bucket when zeroThreshold lies strictly inside it and it is
// populated.
func (b expBuckets) straddledUpperBound(scale, target int32, zeroThreshold float64) (float64, bool) {
	if len(b.counts) == 0 {
		return 0, false
	}
	shift := scale - target
	c, inside := straddledBucket(int64(b.offset), shift, target, zeroThreshold)
	if !inside {
		return 0, false
	}
	for i, n := range b.counts {
		if (int64(b.offset)+int64(i))>>shift != c {
			break
		}
		if n > 0 {
			return bucketUpperBound(c, target), true
		}
	}
	return 0, false
}

// straddledUpperBound is the same for a point's remaining buckets.
func (p pointBuckets) straddledUpperBound(scale, target int32, zeroThreshold float64) (float64, bool) {
	if p.len() == 0 {
		return 0, false
	}
	shift := scale - target
	c, inside := straddledBucket(p.offset, shift, target, zeroThreshold)
	if !inside {
		return 0, false
	}
	for i := 0; i < p.len(); i++ {
		if (p.offset+int64(i))>>shift != c {
			break
		}
		if p.counts.At(p.skip+i) > 0 {
			return bucketUpperBound(c, target), true
		}
	}
	return 0, false
}

// alignedZeroThreshold applies the data model's rule for merging zero
// thresholds. A histogram whose own threshold is below the merged one gives
// up its buckets within it (the caller has done so), and when the merged
// threshold lies strictly inside one of its populated buckets at the merged
// scale, some of that bucket's values may be within the threshold: the
// threshold rises to the bucket's upper boundary and the whole bucket joins
// the zero count. A histogram already at the merged threshold counts only
// values above it in its buckets, so its straddling bucket stays. All
// buckets are judged at the merged scale, where a raised threshold lies on a
// bucket boundary that no remaining bucket straddles: one raise suffices.
func alignedZeroThreshold(state *expHistogramState, stateThreshold float64, pos, neg pointBuckets, pointScale int32, pointThreshold float64, target int32, zeroThreshold float64) float64 {
	aligned := zeroThreshold
	raise := func(bound float64, straddled bool) {
		if straddled {
			aligned = max(aligned, bound)
		}
	}
	if stateThreshold < zeroThreshold {
		raise(state.positive.straddledUpperBound(state.scale, target, zeroThreshold))
		raise(state.negative.straddledUpperBound(state.scale, target, zeroThreshold))
	}
	if pointThreshold < zeroThreshold {
		raise(pos.straddledUpperBound(pointScale, target, zeroThreshold))
		raise(neg.straddledUpperBound(pointScale, target, zeroThreshold))
	}
	return aligned
}

// add folds a validated delta point into the state. On error the state is
// unchanged.
func (h *expHistogramState) add(dp pmetric.ExponentialHistogramDataPoint) error {
	zeroThreshold := max(h.zeroThreshold, dp.ZeroThreshold())
	trial := *h
	trial.widenZero(zeroThreshold)
	pos, movedPos := viewWithinZero(dp.Positive(), dp.Scale(), zeroThreshold)
	neg, movedNeg := viewWithinZero(dp.Negative(), dp.Scale(), zeroThreshold)

	// Moving buckets into the zero count only narrows the ranges, so the
	// scale chosen here still fits after the threshold is aligned below.
	target, err := mergeScale(&trial, pos, neg, dp.Scale())
	if err != nil {
		return err
	}
	aligned := alignedZeroThreshold(&trial, h.zeroThreshold, pos, neg, dp.Scale(), dp.ZeroThreshold(), target, zeroThreshold)
	if aligned != zeroThreshold {
		if math.IsInf(aligned, 1) {
			return fmt.Errorf("exponential histogram zero threshold %v lies inside a populated bucket whose upper boundary at scale %d exceeds float64", zeroThreshold, target)
		}
		zeroThreshold = aligned
		trial.widenZero(zeroThreshold)
		pos, movedPos = viewWithinZero(dp.Positive(), dp.Scale(), zeroThreshold)
		neg, movedNeg = viewWithinZero(dp.Negative(), dp.Scale(), zeroThreshold)
	}

	*h = trial
	mergeBuckets(&h.positive, h.scale, pos, dp.Scale(), target)
	mergeBuckets(&h.negative, h.scale, neg, dp.Scale(), target)
	h.scale = target
	h.zeroCount += dp.ZeroCount() + movedPos + movedNeg
	h.count += dp.Count()
	h.sum += dp.Sum()
	h.hasSum = h.hasSum && dp.HasSum()
	h.min, h.hasMin = mergeMin(h.min, h.hasMin, dp.Min(), dp.HasMin())
	h.max, h.hasMax = mergeMax(h.max, h.hasMax, dp.Max(), dp.HasMax())
	return nil
}

// newExpHistogramState starts a series from its first point.
func newExpHistogramState(dp pmetric.ExponentialHistogramDataPoint) (*expHistogramState, error) {
	h := &expHistogramState{scale: dp.Scale(), zeroThreshold: dp.ZeroThreshold(), hasSum: true}
	if err := h.add(dp); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *expHistogramState) clone() *expHistogramState {
	c := *h
	c.positive.counts = append([]uint64(nil), h.positive.counts...)
	c.negative.counts = append([]uint64(nil), h.negative.counts...)
	return &c
}

func (h *expHistogramState) writeTo(dp pmetric.ExponentialHistogramDataPoint) {
	dp.SetScale(h.scale)
	dp.SetZeroThreshold(h.zeroThreshold)
	dp.SetZeroCount(h.zeroCount)
	dp.Positive().SetOffset(h.positive.offset)
	dp.Positive().BucketCounts().FromRaw(h.positive.counts)
	dp.Negative().SetOffset(h.negative.offset)
	dp.Negative().BucketCounts().FromRaw(h.negative.counts)
	dp.SetCount(h.count)
	if h.hasSum {
		dp.SetSum(h.sum)
	}
	if h.hasMin {
		dp.SetMin(h.min)
	}
	if h.hasMax {
		dp.SetMax(h.max)
	}
}
