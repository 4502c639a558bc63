package state

import (
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// deltaPart returns the part of md that the engine folds into state, which
// is all a replay needs: cumulative data, gauges and summaries pass through
// the worker untouched, so journaling them would only cost disk and fsync
// time. ok is false when md holds no delta metric at all.
//
// md itself is returned when everything in it is delta, which is the common
// case (clients that export delta export all of their metrics that way), so
// the usual request costs no copy.
func deltaPart(md pmetric.Metrics) (part pmetric.Metrics, ok bool) {
	deltas, others := countByTemporality(md)
	switch {
	case deltas == 0:
		return pmetric.Metrics{}, false
	case others == 0:
		return md, true
	}
	out := pmetric.NewMetrics()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		var outRM pmetric.ResourceMetrics
		hasRM := false
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			var outSM pmetric.ScopeMetrics
			hasSM := false
			ms := sm.Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if !isDelta(m) {
					continue
				}
				if !hasRM {
					outRM = out.ResourceMetrics().AppendEmpty()
					rm.Resource().CopyTo(outRM.Resource())
					outRM.SetSchemaUrl(rm.SchemaUrl())
					hasRM = true
				}
				if !hasSM {
					outSM = outRM.ScopeMetrics().AppendEmpty()
					sm.Scope().CopyTo(outSM.Scope())
					outSM.SetSchemaUrl(sm.SchemaUrl())
					hasSM = true
				}
				m.CopyTo(outSM.Metrics().AppendEmpty())
			}
		}
	}
	return out, true
}

func countByTemporality(md pmetric.Metrics) (deltas, others int) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if isDelta(ms.At(k)) {
					deltas++
				} else {
					others++
				}
			}
		}
	}
	return deltas, others
}

// isDelta reports whether the engine takes m's points into stream state.
func isDelta(m pmetric.Metric) bool {
	const delta = pmetric.AggregationTemporalityDelta
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().AggregationTemporality() == delta
	case pmetric.MetricTypeHistogram:
		return m.Histogram().AggregationTemporality() == delta
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().AggregationTemporality() == delta
	default:
		return false
	}
}
