package convert

import (
	"math"

	"github.com/deltapipeline/deltapipeline/internal/otlpwire"
)

// ApplyHeld folds every point of r that belongs to a stream the engine
// holds (and is not handing over) into its state, as Apply would, and
// returns the other points as the encoding of a request for the caller to
// decode and apply: points that start a stream, that belong to a stream on
// its way elsewhere, that change a histogram's buckets, that are invalid or
// carry no recorded value, and every later point of their streams, in order.
// rest is nil when every point was applied here, r's own encoding when none
// was, and otherwise valid until r is released.
func (e *Engine) ApplyHeld(r *EncodedRequest) (res Result, rest []byte) {
	now := e.clock().UnixNano()
	applied := 0
	for i := range r.points {
		p := &r.points[i]
		if p.slow || r.isDeferred(p.key) {
			r.deferPoint(p)
			continue
		}
		sh := e.shardFor(p.key)
		sh.mu.Lock()
		s := sh.lookup(p.key)
		if s == nil || s.has(flagMoving) || s.kind != p.kind ||
			p.kind == kindHistogram && !s.ext.histogram.sameEncodedLayout(p) {
			sh.mu.Unlock()
			r.deferPoint(p)
			continue
		}
		applied++
		if e.admit(s, p.iv, now, &res) {
			switch {
			case p.kind == kindHistogram:
				s.ext.histogram.addEncoded(p)
			case p.isInt:
				s.addInt(int64(p.value))
			default:
				s.addDouble(math.Float64frombits(p.value))
			}
			s.noteApplied(p.iv, now)
			res.Applied++
		}
		sh.mu.Unlock()
	}
	switch {
	case applied == len(r.points):
		return res, nil
	case applied == 0:
		return res, r.encoded
	}
	return res, r.encodeRest()
}

func (r *EncodedRequest) isDeferred(key hash128) bool {
	if len(r.deferred) == 0 {
		return false
	}
	_, ok := r.deferred[key]
	return ok
}

func (r *EncodedRequest) deferPoint(p *encodedPoint) {
	if r.deferred == nil {
		r.deferred = make(map[hash128]struct{})
	}
	r.deferred[p.key] = struct{}{}
	p.inRest = true
	m := &r.metrics[p.metric]
	m.inRest = true
	sc := &r.scopes[m.parent]
	sc.inRest = true
	r.resources[sc.parent].inRest = true
}

// sameEncodedLayout is sameLayout for a point read from the wire.
func (h *histogramState) sameEncodedLayout(p *encodedPoint) bool {
	counts, _ := otlpwire.PackedFixed64(p.counts)
	bounds, _ := otlpwire.PackedFixed64(p.bounds)
	if bounds != len(h.bounds) || counts != len(h.counts) {
		return false
	}
	for i, b := range h.bounds {
		if otlpwire.DoubleAt(p.bounds, i) != b {
			return false
		}
	}
	return true
}

// addEncoded is add for a point read from the wire.
func (h *histogramState) addEncoded(p *encodedPoint) {
	for i := range h.counts {
		h.counts[i] += otlpwire.Fixed64At(p.counts, i)
	}
	h.count += p.count
	h.sum += p.sum // 0 when the point has none, as pdata's Sum() gives
	h.hasSum = h.hasSum && p.hasSum
	h.min, h.hasMin = mergeMin(h.min, h.hasMin, p.min, p.hasMin)
	h.max, h.hasMax = mergeMax(h.max, h.hasMax, p.max, p.hasMax)
}

// encodeRest writes the request of the points in the rest: each resource,
// scope and metric above one of them with all its other fields as received,
// and below it only those points.
func (r *EncodedRequest) encodeRest() []byte {
	b := r.rest[:0]
	point := 0
	metric, scope := 0, 0
	for ri := range r.resources {
		res := &r.resources[ri]
		if !res.inRest {
			continue
		}
		var rmStart int
		b, rmStart = otlpwire.BeginMessage(b, fieldRequestResourceMetrics, restLenReserve)
		b = appendFieldsExcept(b, res.raw, fieldRMScopeMetrics)
		for ; scope < len(r.scopes) && r.scopes[scope].parent <= int32(ri); scope++ {
			sc := &r.scopes[scope]
			if int(sc.parent) != ri || !sc.inRest {
				continue
			}
			var smStart int
			b, smStart = otlpwire.BeginMessage(b, fieldRMScopeMetrics, restLenReserve)
			b = appendFieldsExcept(b, sc.raw, fieldSMMetrics)
			for ; metric < len(r.metrics) && r.metrics[metric].parent <= int32(scope); metric++ {
				m := &r.metrics[metric]
				if int(m.parent) != scope || !m.inRest {
					continue
				}
				var mStart, dataStart int
				b, mStart = otlpwire.BeginMessage(b, fieldSMMetrics, restLenReserve)
				b = appendFieldsExcept(b, m.raw, m.dataField)
				b, dataStart = otlpwire.BeginMessage(b, m.dataField, restLenReserve)
				b = appendFieldsExcept(b, metricData(m), fieldDataPoints)
				for ; point < len(r.points) && r.points[point].metric <= int32(metric); point++ {
					p := &r.points[point]
					if int(p.metric) == metric && p.inRest {
						b = append(otlpwire.AppendLenField(b, fieldDataPoints, len(p.raw)), p.raw...)
					}
				}
				b = otlpwire.EndMessage(b, dataStart, restLenReserve)
				b = otlpwire.EndMessage(b, mStart, restLenReserve)
			}
			b = otlpwire.EndMessage(b, smStart, restLenReserve)
		}
		b = otlpwire.EndMessage(b, rmStart, restLenReserve)
	}
	r.rest = b
	return b
}

// metricData is the body of a metric's data field.
func metricData(m *encodedParent) []byte {
	for b := m.raw; len(b) > 0; {
		f, next, _ := otlpwire.Next(b)
		if f.Num == m.dataField {
			return f.Data
		}
		b = next
	}
	return nil
}

// appendFieldsExcept copies every field of the message body msg but those
// numbered skip, as encoded.
func appendFieldsExcept(b, msg []byte, skip int) []byte {
	for len(msg) > 0 {
		f, next, _ := otlpwire.Next(msg)
		if f.Num != skip {
			b = append(b, msg[:len(msg)-len(next)]...)
		}
		msg = next
	}
	return b
}

// restLenReserve is the room reserved for the length of each message of the
// rest: three bytes hold any length below 2 MiB, which a metric's points
// left over from one request usually are.
const restLenReserve = 3
