package convert

import (
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// histogramState is the running cumulative of an explicit-bucket histogram.
type histogramState struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
	min    float64
	max    float64
	// hasSum is false once any applied delta lacked a sum: a cumulative
	// sum missing some deltas would be wrong, so none is reported.
	hasSum bool
	hasMin bool
	hasMax bool
}

var errNonFinite = errors.New("sum is NaN or infinite")

// validateHistogram reports why a delta histogram point cannot be applied.
func validateHistogram(dp pmetric.HistogramDataPoint) error {
	bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
	if counts.Len() != 0 && counts.Len() != bounds.Len()+1 {
		return fmt.Errorf("histogram has %d bucket counts for %d explicit bounds, want %d", counts.Len(), bounds.Len(), bounds.Len()+1)
	}
	if counts.Len() == 0 && bounds.Len() != 0 {
		return fmt.Errorf("histogram has %d explicit bounds but no bucket counts", bounds.Len())
	}
	for i := 0; i < bounds.Len(); i++ {
		b := bounds.At(i)
		if math.IsNaN(b) {
			return fmt.Errorf("histogram explicit bound %d is NaN", i)
		}
		if i > 0 && b <= bounds.At(i-1) {
			return fmt.Errorf("histogram explicit bounds are not strictly increasing at %d", i)
		}
	}
	if counts.Len() > 0 {
		var total uint64
		for i := 0; i < counts.Len(); i++ {
			total += counts.At(i)
		}
		if total != dp.Count() {
			return fmt.Errorf("histogram count %d differs from the sum of its bucket counts %d", dp.Count(), total)
		}
	}
	if dp.HasSum() && !isFinite(dp.Sum()) {
		return errNonFinite
	}
	if dp.HasMin() && math.IsNaN(dp.Min()) || dp.HasMax() && math.IsNaN(dp.Max()) {
		return errors.New("histogram min or max is NaN")
	}
	return nil
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// sameLayout reports whether a point has the bucket bounds of the state.
func (h *histogramState) sameLayout(dp pmetric.HistogramDataPoint) bool {
	bounds := dp.ExplicitBounds()
	if bounds.Len() != len(h.bounds) || dp.BucketCounts().Len() != len(h.counts) {
		return false
	}
	for i, b := range h.bounds {
		if bounds.At(i) != b {
			return false
		}
	}
	return true
}

// reset makes the state a copy of one delta point: the first point of a
// series or the first after a bucket layout change.
func (h *histogramState) reset(dp pmetric.HistogramDataPoint) {
	h.bounds = append(h.bounds[:0:0], dp.ExplicitBounds().AsRaw()...)
	h.counts = append(h.counts[:0:0], dp.BucketCounts().AsRaw()...)
	h.count = dp.Count()
	h.sum = dp.Sum()
	h.hasSum = dp.HasSum()
	h.min, h.hasMin = dp.Min(), dp.HasMin()
	h.max, h.hasMax = dp.Max(), dp.HasMax()
}

// add folds one delta point with the same layout into the state.
func (h *histogramState) add(dp pmetric.HistogramDataPoint) {
	counts := dp.BucketCounts()
	for i := range h.counts {
		h.counts[i] += counts.At(i)
	}
	h.count += dp.Count()
	h.sum += dp.Sum()
	h.hasSum = h.hasSum && dp.HasSum()
	h.min, h.hasMin = mergeMin(h.min, h.hasMin, dp.Min(), dp.HasMin())
	h.max, h.hasMax = mergeMax(h.max, h.hasMax, dp.Max(), dp.HasMax())
}

func mergeMin(cur float64, hasCur bool, v float64, hasV bool) (float64, bool) {
	switch {
	case !hasV:
		return cur, hasCur
	case !hasCur || v < cur:
		return v, true
	default:
		return cur, true
	}
}

func mergeMax(cur float64, hasCur bool, v float64, hasV bool) (float64, bool) {
	switch {
	case !hasV:
		return cur, hasCur
	case !hasCur || v > cur:
		return v, true
	default:
		return cur, true
	}
}

func (h *histogramState) clone() *histogramState {
	c := *h
	c.bounds = append([]float64(nil), h.bounds...)
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

func (h *histogramState) writeTo(dp pmetric.HistogramDataPoint) {
	dp.ExplicitBounds().FromRaw(h.bounds)
	dp.BucketCounts().FromRaw(h.counts)
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
