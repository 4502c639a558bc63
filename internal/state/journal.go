package state

import (
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
)

// convertedPart returns the part of md that the engine folds into state,
// which is all a replay needs: the converter decides (convert.Converts), so
// the journal covers every kind it converts and nothing else. Cumulative
// data, gauges and summaries pass through the worker untouched, so
// journaling them would only cost disk and fsync time. ok is false when md
// holds nothing the engine converts.
//
// md itself is returned, with whole set, when the engine converts all of
// it, which is the common case (clients that export delta export all of
// their metrics that way), so the usual request costs no copy.
func convertedPart(md pmetric.Metrics) (part pmetric.Metrics, whole, ok bool) {
	converted, others := countConverted(md)
	switch {
	case converted == 0:
		return pmetric.Metrics{}, false, false
	case others == 0:
		return md, true, true
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
				if !convert.Converts(m) {
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
	return out, false, true
}

func countConverted(md pmetric.Metrics) (converted, others int) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if convert.Converts(ms.At(k)) {
					converted++
				} else {
					others++
				}
			}
		}
	}
	return converted, others
}
