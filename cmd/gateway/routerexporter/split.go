package routerexporter

import (
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/otlpwire"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// wireBuf is the encoded ExportMetricsServiceRequest of one worker's share:
// a sequence of resource_metrics (field 1) entries. Two of them written
// back to back are one valid request holding both, which is how a sender
// batches queued requests without copying them.
type wireBuf struct{ b []byte }

// maxPooledBuf bounds the buffers kept for reuse, so one unusually large
// request does not pin its memory for the life of the process.
const maxPooledBuf = 8 << 20

var wireBufs = sync.Pool{New: func() any { return &wireBuf{b: make([]byte, 0, 64<<10)} }}

func getWireBuf() *wireBuf { return wireBufs.Get().(*wireBuf) }

// recycle returns w for reuse once nothing reads its bytes any more.
func (w *wireBuf) recycle() {
	if w == nil || cap(w.b) > maxPooledBuf {
		return
	}
	w.b = w.b[:0]
	wireBufs.Put(w)
}

// wirePart is one worker's share of the request being split.
type wirePart struct {
	buf    *wireBuf
	points int
	// Body starts of the messages open in buf for the current source
	// resource, scope and metric (and the metric's data message); zero
	// while closed. A body never starts at 0: its tag precedes it.
	rm, sm, metric, data int
}

// splitter divides one request into one encoded request per owning worker.
// It walks the request once and appends each point, in protobuf wire
// format, to its owner's buffer, writing each resource, scope and metric
// header once per worker that gets one of its points; no pdata is built
// for a worker's share. A splitter is reused by one goroutine at a time.
type splitter struct {
	keyer *ring.Keyer
	parts []wirePart
	// ordinals with an open resource, scope and metric message, in the
	// order they were opened.
	openRM, openSM, openMetric []int
}

func newSplitter(k *ring.Keyer) *splitter { return &splitter{keyer: k} }

// split encodes md's points into one request per owner and returns them,
// indexed by ordinal (a worker without points has a nil buffer or no
// points), with each one's point count. md is only read. The caller owns
// the returned buffers; the slice is valid until the next call.
func (s *splitter) split(md pmetric.Metrics, m ring.Membership) []wirePart {
	n := len(m.Members)
	if cap(s.parts) < n {
		s.parts = make([]wirePart, n)
	}
	s.parts = s.parts[:n]
	clear(s.parts)
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		rl := s.keyer.Resource(rm.Resource())
		if !s.keyer.PerPoint() {
			s.appendWholeResource(m.Owner(s.keyer.ResourceKey(rl)), rm)
			continue
		}
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			sl := s.keyer.Scope(rl, sm.Scope())
			metrics := sm.Metrics()
			for k := range metrics.Len() {
				metric := metrics.At(k)
				s.splitMetric(rm, sm, metric, s.keyer.Metric(sl, metric), m)
			}
			for _, o := range s.openSM {
				p := &s.parts[o]
				p.buf.b = appendStringField(p.buf.b, 3, sm.SchemaUrl())
				p.buf.b = otlpwire.EndMessage(p.buf.b, p.sm, reserveLarge)
				p.sm = 0
			}
			s.openSM = s.openSM[:0]
		}
		for _, o := range s.openRM {
			p := &s.parts[o]
			p.buf.b = appendStringField(p.buf.b, 3, rm.SchemaUrl())
			p.buf.b = otlpwire.EndMessage(p.buf.b, p.rm, reserveLarge)
			p.rm = 0
		}
		s.openRM = s.openRM[:0]
	}
	return s.parts
}

func (s *splitter) buffer(o int) *wirePart {
	p := &s.parts[o]
	if p.buf == nil {
		p.buf = getWireBuf()
	}
	return p
}

// appendWholeResource encodes rm as it is for worker o: routing by
// resource or service sends a resource's points to one worker.
func (s *splitter) appendWholeResource(o int, rm pmetric.ResourceMetrics) {
	p := s.buffer(o)
	b, rmStart := otlpwire.BeginMessage(p.buf.b, 1, reserveLarge)
	b = appendResource(b, rm.Resource())
	sms := rm.ScopeMetrics()
	for j := range sms.Len() {
		sm := sms.At(j)
		var smStart int
		b, smStart = otlpwire.BeginMessage(b, 2, reserveLarge)
		b = appendScope(b, sm.Scope())
		metrics := sm.Metrics()
		for k := range metrics.Len() {
			metric := metrics.At(k)
			var mStart int
			b, mStart = otlpwire.BeginMessage(b, 2, reserveLarge)
			b = appendMetricHeader(b, metric)
			if field := metricDataField(metric.Type()); field != 0 {
				var dStart int
				b, dStart = otlpwire.BeginMessage(b, field, reserveLarge)
				var n int
				b, n = appendAllPoints(b, metric)
				p.points += n
				b = appendMetricDataTrailer(b, metric)
				b = otlpwire.EndMessage(b, dStart, reserveLarge)
			}
			b = otlpwire.EndMessage(b, mStart, reserveLarge)
		}
		b = appendStringField(b, 3, sm.SchemaUrl())
		b = otlpwire.EndMessage(b, smStart, reserveLarge)
	}
	b = appendStringField(b, 3, rm.SchemaUrl())
	p.buf.b = otlpwire.EndMessage(b, rmStart, reserveLarge)
}

func appendAllPoints(b []byte, metric pmetric.Metric) ([]byte, int) {
	switch metric.Type() {
	case pmetric.MetricTypeSum:
		return appendEach(b, metric.Sum().DataPoints(), appendNumberPoint)
	case pmetric.MetricTypeGauge:
		return appendEach(b, metric.Gauge().DataPoints(), appendNumberPoint)
	case pmetric.MetricTypeHistogram:
		return appendEach(b, metric.Histogram().DataPoints(), appendHistogramPoint)
	case pmetric.MetricTypeExponentialHistogram:
		return appendEach(b, metric.ExponentialHistogram().DataPoints(), appendExponentialHistogramPoint)
	case pmetric.MetricTypeSummary:
		return appendEach(b, metric.Summary().DataPoints(), appendSummaryPoint)
	}
	return b, 0
}

func appendEach[S pointSlice[P], P point](b []byte, points S, enc func([]byte, P) []byte) ([]byte, int) {
	for i := range points.Len() {
		b = enc(b, points.At(i))
	}
	return b, points.Len()
}

// point is what splitting needs of any kind of data point.
type point interface{ Attributes() pcommon.Map }

type pointSlice[P point] interface {
	Len() int
	At(int) P
}

func (s *splitter) splitMetric(rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, metric pmetric.Metric, ml ring.MetricLevel, m ring.Membership) {
	switch metric.Type() {
	case pmetric.MetricTypeSum:
		routePoints(s, rm, sm, metric, metric.Sum().DataPoints(), ml, m, appendNumberPoint)
	case pmetric.MetricTypeGauge:
		routePoints(s, rm, sm, metric, metric.Gauge().DataPoints(), ml, m, appendNumberPoint)
	case pmetric.MetricTypeHistogram:
		routePoints(s, rm, sm, metric, metric.Histogram().DataPoints(), ml, m, appendHistogramPoint)
	case pmetric.MetricTypeExponentialHistogram:
		routePoints(s, rm, sm, metric, metric.ExponentialHistogram().DataPoints(), ml, m, appendExponentialHistogramPoint)
	case pmetric.MetricTypeSummary:
		routePoints(s, rm, sm, metric, metric.Summary().DataPoints(), ml, m, appendSummaryPoint)
	default:
		// A metric without data carries nothing to convert.
		return
	}
	for _, o := range s.openMetric {
		p := &s.parts[o]
		p.buf.b = appendMetricDataTrailer(p.buf.b, metric)
		p.buf.b = otlpwire.EndMessage(p.buf.b, p.data, reserveLarge)
		p.buf.b = otlpwire.EndMessage(p.buf.b, p.metric, reserveLarge)
		p.metric, p.data = 0, 0
	}
	s.openMetric = s.openMetric[:0]
}

func routePoints[S pointSlice[P], P point](s *splitter, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, metric pmetric.Metric,
	points S, ml ring.MetricLevel, m ring.Membership, enc func([]byte, P) []byte,
) {
	for i := range points.Len() {
		dp := points.At(i)
		p := s.metricFor(m.Owner(s.keyer.Point(ml, dp.Attributes())), rm, sm, metric)
		p.buf.b = enc(p.buf.b, dp)
		p.points++
	}
}

// metricFor is worker o's part with the current resource, scope and
// metric open, their headers written on first use.
func (s *splitter) metricFor(o int, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, metric pmetric.Metric) *wirePart {
	p := &s.parts[o]
	if p.metric != 0 {
		return p
	}
	p = s.buffer(o)
	if p.rm == 0 {
		p.buf.b, p.rm = otlpwire.BeginMessage(p.buf.b, 1, reserveLarge)
		p.buf.b = appendResource(p.buf.b, rm.Resource())
		s.openRM = append(s.openRM, o)
	}
	if p.sm == 0 {
		p.buf.b, p.sm = otlpwire.BeginMessage(p.buf.b, 2, reserveLarge)
		p.buf.b = appendScope(p.buf.b, sm.Scope())
		s.openSM = append(s.openSM, o)
	}
	p.buf.b, p.metric = otlpwire.BeginMessage(p.buf.b, 2, reserveLarge)
	p.buf.b = appendMetricHeader(p.buf.b, metric)
	p.buf.b, p.data = otlpwire.BeginMessage(p.buf.b, metricDataField(metric.Type()), reserveLarge)
	s.openMetric = append(s.openMetric, o)
	return p
}
