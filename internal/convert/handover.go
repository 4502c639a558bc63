package convert

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// Here is the placement of a stream that this engine holds or creates.
const Here = -1

// Placement says which worker holds the stream of a routing key. The engine
// asks only for streams it does not hold (and for streams it is handing
// over), never for the points of streams it holds.
type Placement interface {
	// Place returns the ordinal of the worker that must receive a point of
	// the stream with routing key k, or Here.
	Place(k ring.Key) int
}

// ApplyPlaced is Apply for an engine that holds a share of the streams:
// a point of a stream it does not hold is applied only when place puts the
// stream here; otherwise it is moved out of md into out, under its
// resource, scope and metric, for the caller to forward to the worker
// place named. keyer computes routing keys as the gateways do.
func (e *Engine) ApplyPlaced(md pmetric.Metrics, keyer *ring.Keyer, place Placement, out *Forwards) Result {
	r := route{keyer: keyer, place: place, out: out}
	return e.apply(md, &r)
}

// route is what apply needs to place points: the routing key's levels of
// the current resource, scope and metric, computed only when a point of a
// stream not held here needs them.
type route struct {
	keyer *ring.Keyer
	place Placement
	out   *Forwards

	rm     pmetric.ResourceMetrics
	sm     pmetric.ScopeMetrics
	metric pmetric.Metric
	// gen numbers the current resource, scope and metric so that Forwards
	// copies each one once per destination.
	gen      [3]uint64
	levels   uint8 // how many of resource, scope, metric are in the levels below
	resource ring.ResourceLevel
	scope    ring.ScopeLevel
	metricL  ring.MetricLevel
	// dest is where the last placed point goes.
	dest int
}

func (r *route) enterResource(rm pmetric.ResourceMetrics) {
	if r == nil {
		return
	}
	r.rm, r.levels = rm, 0
	r.gen[0]++
}

func (r *route) enterScope(sm pmetric.ScopeMetrics) {
	if r == nil {
		return
	}
	r.sm, r.levels = sm, min(r.levels, 1)
	r.gen[1]++
}

func (r *route) enterMetric(m pmetric.Metric) {
	if r == nil {
		return
	}
	r.metric, r.levels = m, min(r.levels, 2)
	r.gen[2]++
}

// placeElsewhere places a point with attrs and reports whether it belongs
// to another worker, whose ordinal is then in r.dest.
func (r *route) placeElsewhere(attrs pcommon.Map) bool {
	if r.levels < 1 {
		r.resource = r.keyer.Resource(r.rm.Resource())
	}
	if r.levels < 2 {
		r.scope = r.keyer.Scope(r.resource, r.sm.Scope())
	}
	if r.levels < 3 {
		r.metricL = r.keyer.Metric(r.scope, r.metric)
		r.levels = 3
	}
	r.dest = r.place.Place(r.keyer.Point(r.metricL, attrs))
	return r.dest != Here
}

// placedElsewhere accounts for a point that is not applied here: it is
// forwarded, or refused with the reason outcome names. appendPoint copies
// the point into a metric of its destination's request.
func (e *Engine) placedElsewhere(src *descriptorSource, outcome lockOutcome, res *Result, appendPoint func(pmetric.Metric)) {
	switch outcome {
	case streamLimited:
		res.reject(ReasonStreamLimit)
	case streamElsewhere:
		r := src.route
		appendPoint(r.out.metricFor(r))
		res.Forwarded++
	}
}

// Forwards collects the points one Apply placed on other workers, one
// request per destination, each resource, scope and metric copied once.
// The zero value is ready; Reset makes it ready for the next Apply.
type Forwards struct {
	dests []forwardRequest
}

type forwardRequest struct {
	dest   int
	md     pmetric.Metrics
	points int
	gen    [3]uint64
	rm     pmetric.ResourceMetrics
	sm     pmetric.ScopeMetrics
	metric pmetric.Metric
}

// Len is the number of destinations.
func (f *Forwards) Len() int { return len(f.dests) }

// Each calls fn with every destination and its request, in the order the
// destinations were first placed. fn owns md.
func (f *Forwards) Each(fn func(dest int, md pmetric.Metrics, points int)) {
	for i := range f.dests {
		fn(f.dests[i].dest, f.dests[i].md, f.dests[i].points)
	}
}

// Reset forgets the requests collected.
func (f *Forwards) Reset() { f.dests = f.dests[:0] }

func (f *Forwards) metricFor(r *route) pmetric.Metric {
	var req *forwardRequest
	for i := range f.dests {
		if f.dests[i].dest == r.dest {
			req = &f.dests[i]
			break
		}
	}
	if req == nil {
		f.dests = append(f.dests, forwardRequest{dest: r.dest, md: pmetric.NewMetrics()})
		req = &f.dests[len(f.dests)-1]
	}
	req.points++
	if req.gen[0] != r.gen[0] {
		req.rm = req.md.ResourceMetrics().AppendEmpty()
		r.rm.Resource().CopyTo(req.rm.Resource())
		req.rm.SetSchemaUrl(r.rm.SchemaUrl())
		req.gen = [3]uint64{r.gen[0]}
	}
	if req.gen[1] != r.gen[1] {
		req.sm = req.rm.ScopeMetrics().AppendEmpty()
		r.sm.Scope().CopyTo(req.sm.Scope())
		req.sm.SetSchemaUrl(r.sm.SchemaUrl())
		req.gen[1], req.gen[2] = r.gen[1], 0
	}
	if req.gen[2] != r.gen[2] {
		req.metric = req.sm.Metrics().AppendEmpty()
		copyMetricHeader(r.metric, req.metric)
		req.gen[2] = r.gen[2]
	}
	return req.metric
}

// copyMetricHeader copies everything of a metric but its points.
func copyMetricHeader(from, to pmetric.Metric) {
	to.SetName(from.Name())
	to.SetDescription(from.Description())
	to.SetUnit(from.Unit())
	from.Metadata().CopyTo(to.Metadata())
	switch from.Type() {
	case pmetric.MetricTypeSum:
		s := to.SetEmptySum()
		s.SetAggregationTemporality(from.Sum().AggregationTemporality())
		s.SetIsMonotonic(from.Sum().IsMonotonic())
	case pmetric.MetricTypeHistogram:
		to.SetEmptyHistogram().SetAggregationTemporality(from.Histogram().AggregationTemporality())
	case pmetric.MetricTypeExponentialHistogram:
		to.SetEmptyExponentialHistogram().SetAggregationTemporality(from.ExponentialHistogram().AggregationTemporality())
	}
}

// StreamKey identifies a stream handed over, to Forget it once its new
// owner has it.
type StreamKey struct{ hi, lo uint64 }

// HandOver finds every held stream that place puts on another worker,
// marks it as moving and calls send with its destination, its key and its
// record. From then on the engine neither applies nor emits the stream, and
// forwards its points to the same destination; it keeps the stream, so
// that a checkpoint still holds it, until Forget. send is called with the
// stream's shard locked, so that a point Apply forwards afterwards is
// queued after the record: it must not block. HandOver returns how many
// streams it marked.
func (e *Engine) HandOver(keyer *ring.Keyer, place Placement, send func(dest int, key StreamKey, record []byte)) int {
	var (
		keys  = newHeldKeys(keyer)
		buf   []byte
		enc   encoder
		moved int
	)
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		// Interned ids are reused once released; while the shard is
		// locked its streams pin the ids the cache learns from them.
		keys.reset()
		for slot := uint32(0); slot < sh.used; slot++ {
			s := sh.at(slot)
			if s.kind == 0 || s.has(flagMoving) {
				continue
			}
			dest := place.Place(keys.of(e.interner, s))
			if dest == Here {
				continue
			}
			var err error
			if buf, err = e.appendRecord(buf[:0], &enc, s); err != nil {
				// A stream that cannot be encoded stays here: it is
				// kept and emitted rather than lost on the way.
				continue
			}
			s.flags |= flagMoving
			if sh.movingTo == nil {
				sh.movingTo = make(map[hash128]int)
			}
			sh.movingTo[s.key] = dest
			e.moving.Add(1)
			send(dest, StreamKey(s.key), buf)
			moved++
		}
		sh.mu.Unlock()
	}
	return moved
}

// Moving is the number of streams handed over and not yet forgotten.
func (e *Engine) Moving() int { return int(e.moving.Load()) }

// Forget removes streams handed over once their new owner has them
// durably. A key that is not moving (a stream restored since) is left.
func (e *Engine) Forget(keys []StreamKey) {
	var released []streamRefs
	for _, k := range keys {
		key := hash128(k)
		sh := e.shardFor(key)
		sh.mu.Lock()
		if slot, ok := sh.index.find(key, sh.keyAt); ok {
			if s := sh.at(slot); s.has(flagMoving) {
				released = append(released, s.refs)
				delete(sh.movingTo, key)
				sh.remove(slot)
				e.streams.Add(-1)
				e.moving.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	e.interner.release(released)
}

// RecordRoutingKey is the routing key of the stream a record holds, so
// that a worker can tell whether a record sent to it is its own.
func RecordRoutingKey(keyer *ring.Keyer, record []byte) (ring.Key, error) {
	d, err := decodeRecord(record)
	if err != nil {
		return 0, fmt.Errorf("reading a stream record: %w", err)
	}
	src := &d.src
	res := keyer.ResourceAttributes(src.resourceAttrs)
	scope := keyer.ScopeParts(res, src.scopeName, src.scopeVersion, src.scopeAttrs)
	metric := keyer.MetricParts(scope, src.shape.name, src.shape.unit, src.shape.typ, src.shape.temporality, src.shape.monotonic)
	return keyer.Point(metric, src.pointAttrs), nil
}

// heldKeys computes the routing keys of held streams from their interned
// descriptors, each resource, scope and metric level once.
type heldKeys struct {
	keyer     *ring.Keyer
	resources map[uint32]ring.ResourceLevel
	scopes    map[scopeKey]ring.ScopeLevel
	metrics   map[metricKey]ring.MetricLevel
	attrs     pcommon.Map
}

func newHeldKeys(keyer *ring.Keyer) *heldKeys {
	return &heldKeys{
		keyer:     keyer,
		resources: make(map[uint32]ring.ResourceLevel),
		scopes:    make(map[scopeKey]ring.ScopeLevel),
		metrics:   make(map[metricKey]ring.MetricLevel),
		attrs:     pcommon.NewMap(),
	}
}

func (h *heldKeys) reset() {
	clear(h.resources)
	clear(h.scopes)
	clear(h.metrics)
}

func (h *heldKeys) of(in *interner, s *stream) ring.Key {
	in.mu.RLock()
	defer in.mu.RUnlock()
	r := s.refs
	res, ok := h.resources[r.resource]
	if !ok {
		res = h.keyer.ResourceAttributes(in.resources.get(r.resource).attrs)
		h.resources[r.resource] = res
	}
	sk := scopeKey{r.resource, r.scope}
	scope, ok := h.scopes[sk]
	if !ok {
		sc := in.scopes.get(r.scope)
		scope = h.keyer.ScopeParts(res, sc.name, sc.version, sc.attrs)
		h.scopes[sk] = scope
	}
	mk := metricKey{r.resource, r.scope, r.metric}
	metric, ok := h.metrics[mk]
	if !ok {
		sh := in.metrics.get(r.metric).shape
		metric = h.keyer.MetricParts(scope, sh.name, sh.unit, sh.typ, sh.temporality, sh.monotonic)
		h.metrics[mk] = metric
	}
	h.attrs.Clear()
	for _, id := range in.attrLists.get(r.attrs) {
		in.attrs.get(id).putInto(h.attrs)
	}
	return h.keyer.Point(metric, h.attrs)
}
