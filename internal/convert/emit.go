package convert

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Emit appends to out one CUMULATIVE point per stream updated since the
// previous Emit, then forgets streams not updated for MaxStale before now.
// A stream's sample timestamps strictly increase across Emits at
// millisecond resolution.
func (e *Engine) Emit(now time.Time, out pmetric.Metrics) EmitResult {
	return e.emit(now, out, false)
}

// EmitAll is Emit for every live stream, updated or not.
func (e *Engine) EmitAll(now time.Time, out pmetric.Metrics) EmitResult {
	return e.emit(now, out, true)
}

// EmitChunks is Emit (or EmitAll when all is set) that hands the output to
// send in parts of about chunkPoints points instead of building one
// request for every stream: the transient memory of an emit then stays
// bounded however many streams the engine holds. send owns each part.
func (e *Engine) EmitChunks(now time.Time, all bool, chunkPoints int, send func(pmetric.Metrics)) EmitResult {
	if chunkPoints <= 0 {
		chunkPoints = 1
	}
	var (
		res     EmitResult
		snaps   = make([]snapshot, 0, min(chunkPoints, int(max(e.streams.Load(), 0)))+chunkSnapshotSlack)
		expired []streamRefs
		nowNs   = now.UnixNano()
		floorMs = e.emitFloorMs.Load()
	)
	flush := func() {
		if len(snaps) == 0 {
			return
		}
		out := pmetric.NewMetrics()
		e.build(out, snaps)
		res.Points += len(snaps)
		clear(snaps)
		snaps = snaps[:0]
		send(out)
	}
	for i := range e.shards {
		snaps, expired = e.scanShard(&e.shards[i], all, nowNs, floorMs, snaps, expired)
		// Parts are cut between shards, never while a shard is locked.
		if len(snaps) >= chunkPoints {
			flush()
		}
	}
	flush()
	// Released only after every part was built: the snapshots of expired
	// streams refer to their interned descriptors.
	e.interner.release(expired)
	res.Expired = len(expired)
	return res
}

// chunkSnapshotSlack is room for one shard's worth of snapshots beyond a
// part's size, since parts are cut only between shards.
const chunkSnapshotSlack = 1024

// emitTimestamp is the sample time of a stream's next point: the end of
// its newest applied interval, moved to one millisecond after the previous
// sample when it would not be later at millisecond resolution.
func emitTimestamp(newestEnd uint64, lastEmitMs int64, emittedBefore bool) (ts uint64, ms int64) {
	ms = int64(newestEnd / uint64(time.Millisecond))
	if emittedBefore && ms <= lastEmitMs {
		ms = lastEmitMs + 1
		return uint64(ms) * uint64(time.Millisecond), ms
	}
	return newestEnd, ms
}

// EmitAfter makes every sample emitted from now on later than t.
//
// A restored stream knows the time of its last emitted sample only as of
// the checkpoint; the samples emitted after it were lost with the process
// that sent them. Prometheus refuses a sample older than the newest one of
// its series, so after a restart the worker calls EmitAfter with the time
// the restore finished, which is later than anything the previous process
// emitted.
func (e *Engine) EmitAfter(t time.Time) {
	e.emitFloorMs.Store(t.UnixMilli())
}

// snapshot is one stream's output, copied under its shard lock so that
// the output is built without holding it.
type snapshot struct {
	refs      streamRefs
	kind      streamKind
	start, ts uint64
	isInt     bool
	intSum    int64
	floatSum  float64
	histogram *histogramState
	exp       *expHistogramState
}

// isStale reports whether a stream last updated at lastSeen is forgotten
// at now.
func (e *Engine) isStale(lastSeen, now int64) bool {
	return e.maxStale > 0 && now-lastSeen >= int64(e.maxStale)
}

func (e *Engine) emit(now time.Time, out pmetric.Metrics, all bool) EmitResult {
	var (
		snaps   = make([]snapshot, 0, max(e.streams.Load(), 0))
		expired []streamRefs
		nowNs   = now.UnixNano()
		floorMs = e.emitFloorMs.Load()
	)
	for i := range e.shards {
		snaps, expired = e.scanShard(&e.shards[i], all, nowNs, floorMs, snaps, expired)
	}
	e.build(out, snaps)
	// Released only after build: the snapshots of expired streams still
	// refer to their interned descriptors.
	e.interner.release(expired)
	return EmitResult{Points: len(snaps), Expired: len(expired)}
}

// scanShard appends a snapshot of every stream of sh due for output (all,
// or updated since the last emit) and removes the streams that went stale,
// appending their descriptors to expired for release after the output is
// built. The shard is locked only while it is scanned.
func (e *Engine) scanShard(sh *shard, all bool, nowNs, floorMs int64, snaps []snapshot, expired []streamRefs) ([]snapshot, []streamRefs) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for slot := uint32(0); slot < sh.used; slot++ {
		s := sh.at(slot)
		if s.kind == 0 || s.has(flagMoving) {
			// A moving stream is emitted by the worker it moves to.
			continue
		}
		if all || s.has(flagUpdated) {
			snaps = append(snaps, takeSnapshot(s, floorMs))
		}
		if e.isStale(s.lastSeen, nowNs) {
			expired = append(expired, s.refs)
			sh.remove(slot)
			e.streams.Add(-1)
		}
	}
	return snaps, expired
}

func takeSnapshot(s *stream, floorMs int64) snapshot {
	lastMs, emitted := s.lastEmitMs, s.has(flagEmitted)
	if floorMs > 0 && (!emitted || lastMs < floorMs) {
		lastMs, emitted = floorMs, true
	}
	ts, ms := emitTimestamp(s.newestEnd, lastMs, emitted)
	s.lastEmitMs = ms
	s.flags = (s.flags | flagEmitted) &^ flagUpdated
	snap := snapshot{refs: s.refs, kind: s.kind, start: s.start, ts: ts}
	switch s.kind {
	case kindSum:
		snap.isInt, snap.intSum, snap.floatSum = s.sumValue()
	case kindHistogram:
		snap.histogram = s.ext.histogram.clone()
	case kindExpHistogram:
		snap.exp = s.ext.exp.clone()
	}
	return snap
}

type scopeKey struct{ resource, scope uint32 }
type metricKey struct{ resource, scope, metric uint32 }

// build rebuilds resource, scope and metric structure from the interned
// descriptors, one ResourceMetrics per resource and one Metric per metric.
func (e *Engine) build(out pmetric.Metrics, snaps []snapshot) {
	if len(snaps) == 0 {
		return
	}
	resources := make(map[uint32]pmetric.ResourceMetrics)
	scopes := make(map[scopeKey]pmetric.ScopeMetrics)
	metrics := make(map[metricKey]pmetric.Metric)
	// Points per metric, so that each metric's point slice is allocated once.
	points := make(map[metricKey]int)
	for i := range snaps {
		r := &snaps[i].refs
		points[metricKey{r.resource, r.scope, r.metric}]++
	}

	in := e.interner
	in.mu.RLock()
	defer in.mu.RUnlock()
	for i := range snaps {
		snap := &snaps[i]
		r := snap.refs
		rm, ok := resources[r.resource]
		if !ok {
			entry := in.resources.get(r.resource)
			rm = out.ResourceMetrics().AppendEmpty()
			entry.attrs.CopyTo(rm.Resource().Attributes())
			rm.SetSchemaUrl(entry.schemaURL)
			resources[r.resource] = rm
		}
		sk := scopeKey{r.resource, r.scope}
		sm, ok := scopes[sk]
		if !ok {
			entry := in.scopes.get(r.scope)
			sm = rm.ScopeMetrics().AppendEmpty()
			sm.Scope().SetName(entry.name)
			sm.Scope().SetVersion(entry.version)
			entry.attrs.CopyTo(sm.Scope().Attributes())
			sm.SetSchemaUrl(entry.schemaURL)
			scopes[sk] = sm
		}
		mk := metricKey{r.resource, r.scope, r.metric}
		m, ok := metrics[mk]
		if !ok {
			m = newCumulativeMetric(sm, in.metrics.get(r.metric), points[mk])
			metrics[mk] = m
		}
		var attrs pcommon.Map
		switch snap.kind {
		case kindSum:
			dp := m.Sum().DataPoints().AppendEmpty()
			setTimes(dp, snap)
			if snap.isInt {
				dp.SetIntValue(snap.intSum)
			} else {
				dp.SetDoubleValue(snap.floatSum)
			}
			attrs = dp.Attributes()
		case kindHistogram:
			dp := m.Histogram().DataPoints().AppendEmpty()
			setTimes(dp, snap)
			snap.histogram.writeTo(dp)
			attrs = dp.Attributes()
		case kindExpHistogram:
			dp := m.ExponentialHistogram().DataPoints().AppendEmpty()
			setTimes(dp, snap)
			snap.exp.writeTo(dp)
			attrs = dp.Attributes()
		}
		attrs.EnsureCapacity(int(r.attrs.len))
		for _, id := range in.attrLists.get(r.attrs) {
			in.attrs.get(id).putInto(attrs)
		}
	}
}

type timedPoint interface {
	SetStartTimestamp(pcommon.Timestamp)
	SetTimestamp(pcommon.Timestamp)
}

func setTimes(dp timedPoint, snap *snapshot) {
	dp.SetStartTimestamp(pcommon.Timestamp(snap.start))
	dp.SetTimestamp(pcommon.Timestamp(snap.ts))
}

func newCumulativeMetric(sm pmetric.ScopeMetrics, entry *metricEntry, points int) pmetric.Metric {
	m := sm.Metrics().AppendEmpty()
	m.SetName(entry.shape.name)
	m.SetUnit(entry.shape.unit)
	m.SetDescription(entry.description)
	switch entry.shape.typ {
	case pmetric.MetricTypeSum:
		s := m.SetEmptySum()
		s.SetIsMonotonic(entry.shape.monotonic)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		s.DataPoints().EnsureCapacity(points)
	case pmetric.MetricTypeHistogram:
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		h.DataPoints().EnsureCapacity(points)
	case pmetric.MetricTypeExponentialHistogram:
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		h.DataPoints().EnsureCapacity(points)
	}
	return m
}
