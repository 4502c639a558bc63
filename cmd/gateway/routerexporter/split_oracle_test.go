package routerexporter

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// pdataSplitter is the router's former split, kept as the tests' oracle:
// it divides one request into one pmetric.Metrics per owning worker. It
// moves what it can whole (a resource whose points all share a key, a
// metric whose points all go to one worker) and copies only the headers
// above a point when a metric's points are spread over workers, so no point
// is copied. A pdataSplitter is reused by one goroutine at a time.
type pdataSplitter struct {
	keyer *ring.Keyer
	// owners of the current metric's points, reused between metrics.
	owners []int32
	// parts[o] is the request for the worker of ordinal o; nil until
	// the first point for it.
	parts []pmetric.Metrics
	// per worker, where the current source resource and scope go.
	rms []pmetric.ResourceMetrics
	sms []pmetric.ScopeMetrics
	// whether rms[o] / sms[o] already belong to the current source.
	metrics      []pmetric.Metric
	rmSet, smSet []bool
	metricSet    []bool
	points       []int
}

func newPdataSplitter(k *ring.Keyer) *pdataSplitter { return &pdataSplitter{keyer: k} }

// split moves md's points into one request per owner and returns them,
// indexed by ordinal (a worker without points has a zero value), with each
// one's point count. md is left empty. The returned slices are valid until
// the next call.
func (s *pdataSplitter) split(md pmetric.Metrics, m ring.Membership) ([]pmetric.Metrics, []int) {
	n := len(m.Members)
	s.reset(n)
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		rl := s.keyer.Resource(rm.Resource())
		if !s.keyer.PerPoint() {
			rm.MoveTo(s.part(m.Owner(s.keyer.ResourceKey(rl))).ResourceMetrics().AppendEmpty())
			continue
		}
		clear(s.rmSet)
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			sl := s.keyer.Scope(rl, sm.Scope())
			clear(s.smSet)
			metrics := sm.Metrics()
			for k := range metrics.Len() {
				s.splitMetric(rm, sm, metrics.At(k), s.keyer.Metric(sl, metrics.At(k)), m)
			}
		}
	}
	if !s.keyer.PerPoint() {
		// Whole resources were moved; their points are counted once, here.
		for o, part := range s.parts {
			if part != (pmetric.Metrics{}) {
				s.points[o] = part.DataPointCount()
			}
		}
	}
	return s.parts, s.points
}

func (s *pdataSplitter) reset(n int) {
	if cap(s.parts) < n {
		s.parts = make([]pmetric.Metrics, n)
		s.rms = make([]pmetric.ResourceMetrics, n)
		s.sms = make([]pmetric.ScopeMetrics, n)
		s.rmSet = make([]bool, n)
		s.smSet = make([]bool, n)
		s.metrics = make([]pmetric.Metric, n)
		s.metricSet = make([]bool, n)
		s.points = make([]int, n)
	}
	s.parts, s.rms, s.sms = s.parts[:n], s.rms[:n], s.sms[:n]
	s.rmSet, s.smSet, s.points = s.rmSet[:n], s.smSet[:n], s.points[:n]
	s.metrics, s.metricSet = s.metrics[:n], s.metricSet[:n]
	clear(s.parts)
	clear(s.points)
}

func (s *pdataSplitter) part(o int) pmetric.Metrics {
	if s.parts[o] == (pmetric.Metrics{}) {
		s.parts[o] = pmetric.NewMetrics()
	}
	return s.parts[o]
}

// scopeFor is where worker o's points of the current source scope go,
// created with copies of the resource and scope on first use.
func (s *pdataSplitter) scopeFor(o int, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics) pmetric.ScopeMetrics {
	if !s.rmSet[o] {
		dst := s.part(o).ResourceMetrics().AppendEmpty()
		rm.Resource().CopyTo(dst.Resource())
		dst.SetSchemaUrl(rm.SchemaUrl())
		s.rms[o], s.rmSet[o] = dst, true
	}
	if !s.smSet[o] {
		dst := s.rms[o].ScopeMetrics().AppendEmpty()
		sm.Scope().CopyTo(dst.Scope())
		dst.SetSchemaUrl(sm.SchemaUrl())
		s.sms[o], s.smSet[o] = dst, true
	}
	return s.sms[o]
}

func (s *pdataSplitter) splitMetric(rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, metric pmetric.Metric, ml ring.MetricLevel, m ring.Membership) {
	var uniform bool
	switch metric.Type() {
	case pmetric.MetricTypeSum:
		uniform = pdataOwnersOf(s, metric.Sum().DataPoints(), ml, m)
	case pmetric.MetricTypeGauge:
		uniform = pdataOwnersOf(s, metric.Gauge().DataPoints(), ml, m)
	case pmetric.MetricTypeHistogram:
		uniform = pdataOwnersOf(s, metric.Histogram().DataPoints(), ml, m)
	case pmetric.MetricTypeExponentialHistogram:
		uniform = pdataOwnersOf(s, metric.ExponentialHistogram().DataPoints(), ml, m)
	case pmetric.MetricTypeSummary:
		uniform = pdataOwnersOf(s, metric.Summary().DataPoints(), ml, m)
	default:
		// A metric without data carries nothing to convert.
		return
	}
	if len(s.owners) == 0 {
		return
	}
	if uniform {
		o := int(s.owners[0])
		s.points[o] += len(s.owners)
		metric.MoveTo(s.scopeFor(o, rm, sm).Metrics().AppendEmpty())
		return
	}
	// Per worker, the metric's header is copied once and the points moved.
	clear(s.metricSet)
	dstFor := func(o int) pmetric.Metric {
		if !s.metricSet[o] {
			d := s.scopeFor(o, rm, sm).Metrics().AppendEmpty()
			pdataCopyHeader(metric, d)
			s.metrics[o], s.metricSet[o] = d, true
		}
		return s.metrics[o]
	}
	switch metric.Type() {
	case pmetric.MetricTypeSum:
		pdataMovePoints(s, metric.Sum().DataPoints(), func(o int) pmetric.NumberDataPointSlice { return dstFor(o).Sum().DataPoints() })
	case pmetric.MetricTypeGauge:
		pdataMovePoints(s, metric.Gauge().DataPoints(), func(o int) pmetric.NumberDataPointSlice { return dstFor(o).Gauge().DataPoints() })
	case pmetric.MetricTypeHistogram:
		pdataMovePoints(s, metric.Histogram().DataPoints(), func(o int) pmetric.HistogramDataPointSlice { return dstFor(o).Histogram().DataPoints() })
	case pmetric.MetricTypeExponentialHistogram:
		pdataMovePoints(s, metric.ExponentialHistogram().DataPoints(), func(o int) pmetric.ExponentialHistogramDataPointSlice {
			return dstFor(o).ExponentialHistogram().DataPoints()
		})
	case pmetric.MetricTypeSummary:
		pdataMovePoints(s, metric.Summary().DataPoints(), func(o int) pmetric.SummaryDataPointSlice { return dstFor(o).Summary().DataPoints() })
	}
}

// pdataCopyHeader gives dst everything of src but its points.
func pdataCopyHeader(src, dst pmetric.Metric) {
	dst.SetName(src.Name())
	dst.SetDescription(src.Description())
	dst.SetUnit(src.Unit())
	src.Metadata().CopyTo(dst.Metadata())
	switch src.Type() {
	case pmetric.MetricTypeSum:
		d := dst.SetEmptySum()
		d.SetAggregationTemporality(src.Sum().AggregationTemporality())
		d.SetIsMonotonic(src.Sum().IsMonotonic())
	case pmetric.MetricTypeGauge:
		dst.SetEmptyGauge()
	case pmetric.MetricTypeHistogram:
		dst.SetEmptyHistogram().SetAggregationTemporality(src.Histogram().AggregationTemporality())
	case pmetric.MetricTypeExponentialHistogram:
		dst.SetEmptyExponentialHistogram().SetAggregationTemporality(src.ExponentialHistogram().AggregationTemporality())
	case pmetric.MetricTypeSummary:
		dst.SetEmptySummary()
	}
}

// point is what splitting needs of any kind of data point.
type pdataPoint[P any] interface {
	Attributes() pcommon.Map
	MoveTo(P)
}

type pdataPointSlice[P pdataPoint[P]] interface {
	Len() int
	At(int) P
	AppendEmpty() P
}

// pdataOwnersOf records each point's owner in s.owners and reports whether they
// are all the same worker.
func pdataOwnersOf[S pdataPointSlice[P], P pdataPoint[P]](s *pdataSplitter, points S, ml ring.MetricLevel, m ring.Membership) bool {
	s.owners = s.owners[:0]
	uniform := true
	for i := range points.Len() {
		o := int32(m.Owner(s.keyer.Point(ml, points.At(i).Attributes())))
		if i > 0 && o != s.owners[0] {
			uniform = false
		}
		s.owners = append(s.owners, o)
	}
	return uniform
}

func pdataMovePoints[S pdataPointSlice[P], P pdataPoint[P]](s *pdataSplitter, src S, dst func(o int) S) {
	for i := range src.Len() {
		o := int(s.owners[i])
		s.points[o]++
		src.At(i).MoveTo(dst(o).AppendEmpty())
	}
}
