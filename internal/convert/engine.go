package convert

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Config configures an Engine. It holds plain values so that the engine
// does not depend on the configuration file the worker reads.
type Config struct {
	// MaxStreams bounds the number of streams held; 0 means no bound.
	MaxStreams int
	// MaxStale is how long a stream may go without a point before Emit
	// forgets it; 0 keeps streams forever.
	MaxStale time.Duration
	// SingleWriter assumes one writer per stream and refuses a point whose
	// interval starts before the end of the last one applied. False (the
	// default) sums the overlapping intervals of several writers.
	SingleWriter bool
	// LateDataWindow is how long after an interval ends points that repeat
	// or overlap it can still arrive, which is how long the gateways retry
	// a worker: a stream with several writers keeps intervals younger than
	// this rather than forget one that a queued point may still repeat.
	// 0 means no point arrives late.
	LateDataWindow time.Duration
	// Clock gives the time recorded as a stream's last update, compared
	// with Emit's now for staleness. Nil means time.Now.
	Clock func() time.Time
}

const numShards = 64

// Engine converts delta points to cumulative series. It is safe for
// concurrent use.
type Engine struct {
	maxStreams     int64
	maxStale       time.Duration
	sharedWriters  bool
	lateDataWindow time.Duration
	clock          func() time.Time

	shards   [numShards]shard
	interner *interner
	streams  atomic.Int64
	// moving counts the streams handed over and not yet forgotten.
	moving atomic.Int64
	// emitFloorMs is the earliest sample time, in Unix milliseconds, of any
	// point emitted from now on; see EmitAfter.
	emitFloorMs atomic.Int64
}

// NewEngine checks cfg and returns an empty engine.
func NewEngine(cfg Config) (*Engine, error) {
	var errs []error
	if cfg.MaxStreams < 0 {
		errs = append(errs, fmt.Errorf("maxStreams: %d is negative", cfg.MaxStreams))
	}
	if cfg.MaxStale < 0 {
		errs = append(errs, fmt.Errorf("maxStale: %s is negative", cfg.MaxStale))
	}
	if cfg.LateDataWindow < 0 {
		errs = append(errs, fmt.Errorf("lateDataWindow: %s is negative", cfg.LateDataWindow))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuring the conversion engine: %w", err)
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	e := &Engine{
		maxStreams:     int64(cfg.MaxStreams),
		maxStale:       cfg.MaxStale,
		sharedWriters:  !cfg.SingleWriter,
		lateDataWindow: cfg.LateDataWindow,
		clock:          clock,
		interner:       newInterner(),
	}
	return e, nil
}

// Streams is the number of streams held.
func (e *Engine) Streams() int { return int(e.streams.Load()) }

func (e *Engine) shardFor(key hash128) *shard { return &e.shards[key.lo%numShards] }

// reserveStream counts a new stream, or reports that MaxStreams is reached.
func (e *Engine) reserveStream() bool {
	n := e.streams.Add(1)
	if e.maxStreams > 0 && n > e.maxStreams {
		e.streams.Add(-1)
		return false
	}
	return true
}

var encoderPool = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 1024)} }}

// Converts reports whether Apply folds m's points into stream state: DELTA
// sums, histograms and exponential histograms. Everything else passes
// through unchanged. It is the one definition of what the engine owns, so
// that the write-ahead log journals exactly what a restore has to rebuild.
func Converts(m pmetric.Metric) bool {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	case pmetric.MetricTypeHistogram:
		return m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
	}
	return false
}

func shapeOf(m pmetric.Metric) metricShape {
	s := metricShape{name: m.Name(), unit: m.Unit(), typ: m.Type(), temporality: pmetric.AggregationTemporalityDelta}
	if m.Type() == pmetric.MetricTypeSum {
		s.monotonic = m.Sum().IsMonotonic()
	}
	return s
}

func dataPointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

func noScopeMetrics(rm pmetric.ResourceMetrics) bool { return rm.ScopeMetrics().Len() == 0 }
func noMetrics(sm pmetric.ScopeMetrics) bool         { return sm.Metrics().Len() == 0 }

// Apply folds every DELTA sum, histogram and exponential histogram point of
// md into per-stream state and removes those points from md, together with
// metrics, scopes and resources left empty. What remains is passthrough
// for the caller to forward unchanged. Apply does not retain md.
func (e *Engine) Apply(md pmetric.Metrics) Result { return e.apply(md, nil) }

func (e *Engine) apply(md pmetric.Metrics, route *route) Result {
	var res Result
	enc := encoderPool.Get().(*encoder)
	defer encoderPool.Put(enc)
	now := e.clock().UnixNano()

	src := descriptorSource{route: route}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		route.enterResource(rm)
		src.resourceAttrs = rm.Resource().Attributes()
		src.resourceSchema = rm.SchemaUrl()
		src.prefix.resource = enc.hashAttributes(src.resourceAttrs)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			route.enterScope(sm)
			scope := sm.Scope()
			src.scopeName, src.scopeVersion = scope.Name(), scope.Version()
			src.scopeAttrs = scope.Attributes()
			src.scopeSchema = sm.SchemaUrl()
			src.prefix.scope = enc.hashScope(scope)
			ms := sm.Metrics()
			converted := false
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if !Converts(m) {
					res.Passthrough += dataPointCount(m)
					continue
				}
				converted = true
				route.enterMetric(m)
				src.shape = shapeOf(m)
				src.description = m.Description()
				src.prefix.metric = enc.hashMetric(src.shape)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					e.applySums(enc, &src, m.Sum().DataPoints(), now, &res)
				case pmetric.MetricTypeHistogram:
					e.applyHistograms(enc, &src, m.Histogram().DataPoints(), now, &res)
				case pmetric.MetricTypeExponentialHistogram:
					e.applyExpHistograms(enc, &src, m.ExponentialHistogram().DataPoints(), now, &res)
				}
			}
			if converted {
				ms.RemoveIf(Converts)
			}
		}
		sms.RemoveIf(noMetrics)
	}
	rms.RemoveIf(noScopeMetrics)
	src = descriptorSource{}
	return res
}

var (
	errNoStartTime       = errors.New("delta point has no start time")
	errEndBeforeStart    = errors.New("delta point ends before it starts")
	errNegativeMonotonic = errors.New("monotonic sum delta is negative")
)

// pointInterval is a delta point's interval, or why it has none.
func pointInterval(start, end pcommon.Timestamp) (interval, error) {
	if start == 0 {
		return interval{}, errNoStartTime
	}
	if end < start {
		return interval{}, errEndBeforeStart
	}
	return interval{start: uint64(start), end: uint64(end)}, nil
}

// lockOutcome is what lockStream found or did.
type lockOutcome uint8

const (
	// streamHeld: the stream is held here and returned.
	streamHeld lockOutcome = iota
	// streamCreated: the stream was created for this point.
	streamCreated
	// streamAbsent: the stream is not held and was not to be created.
	streamAbsent
	// streamLimited: creating the stream would exceed MaxStreams.
	streamLimited
	// streamElsewhere: the point belongs to a stream of another worker
	// (or one being handed over to it); it goes to src.route.dest.
	streamElsewhere
)

// lockStream locks the shard of key and returns it with the stream,
// creating the stream when create is set and the placement (if any) puts
// it here. A nil stream comes with the outcome that says why.
func (e *Engine) lockStream(enc *encoder, src *descriptorSource, key hash128, attrs pcommon.Map, kind streamKind, create bool) (sh *shard, s *stream, outcome lockOutcome) {
	sh = e.shardFor(key)
	sh.mu.Lock()
	if s = sh.lookup(key); s != nil {
		if !s.has(flagMoving) {
			return sh, s, streamHeld
		}
		// Its state is on the way to another worker, which applies the
		// point after the state: the forward is queued behind it.
		if src.route != nil {
			src.route.dest = sh.movingTo[key]
		}
		return sh, nil, streamElsewhere
	}
	if !create {
		return sh, nil, streamAbsent
	}
	if src.route != nil && src.route.placeElsewhere(attrs) {
		return sh, nil, streamElsewhere
	}
	if !e.reserveStream() {
		return sh, nil, streamLimited
	}
	src.pointAttrs = attrs
	refs := e.interner.acquire(enc, src)
	src.pointAttrs = pcommon.Map{}
	s = sh.insert(key)
	s.refs = refs
	s.kind = kind
	return sh, s, streamCreated
}

// admit applies the duplicate and writers rules to one point of a known
// stream and reports whether its value is to be folded in.
func (e *Engine) admit(s *stream, iv interval, now int64, res *Result) bool {
	switch classify(s, iv, e.sharedWriters) {
	case verdictDuplicate:
		res.Duplicates++
		s.lastSeen = now
		return false
	case verdictOutOfOrder:
		res.reject(ReasonOutOfOrder)
		return false
	case verdictApplyOverlapping:
		s.growIntervalMemory()
	case verdictApply:
		if e.sharedWriters && s.wouldForgetRecent(now, e.lateDataWindow) {
			s.growIntervalMemory()
		}
	}
	return true
}

// markSeen records that a stream is alive without changing its value, for
// points flagged as having no recorded value.
func (e *Engine) markSeen(enc *encoder, src *descriptorSource, attrs pcommon.Map, now int64, res *Result) {
	res.NoRecordedValue++
	key := enc.hashStream(src.prefix, attrs)
	sh, s, _ := e.lockStream(enc, src, key, attrs, 0, false)
	if s != nil {
		s.lastSeen = now
	}
	sh.mu.Unlock()
}

func numberDelta(dp pmetric.NumberDataPoint, monotonic bool) (isInt bool, i int64, f float64, err error) {
	switch dp.ValueType() {
	case pmetric.NumberDataPointValueTypeInt:
		i = dp.IntValue()
		if monotonic && i < 0 {
			return false, 0, 0, errNegativeMonotonic
		}
		return true, i, 0, nil
	case pmetric.NumberDataPointValueTypeDouble:
		f = dp.DoubleValue()
		if !isFinite(f) {
			return false, 0, 0, errors.New("sum delta is NaN or infinite")
		}
		if monotonic && f < 0 {
			return false, 0, 0, errNegativeMonotonic
		}
		return false, 0, f, nil
	}
	return false, 0, 0, errors.New("sum data point has no value")
}

func (e *Engine) applySums(enc *encoder, src *descriptorSource, dps pmetric.NumberDataPointSlice, now int64, res *Result) {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		iv, err := pointInterval(dp.StartTimestamp(), dp.Timestamp())
		if err != nil {
			res.rejectInvalid(src.shape.name, err)
			continue
		}
		if dp.Flags().NoRecordedValue() {
			e.markSeen(enc, src, dp.Attributes(), now, res)
			continue
		}
		isInt, iv64, f, err := numberDelta(dp, src.shape.monotonic)
		if err != nil {
			res.rejectInvalid(src.shape.name, err)
			continue
		}
		key := enc.hashStream(src.prefix, dp.Attributes())
		sh, s, outcome := e.lockStream(enc, src, key, dp.Attributes(), kindSum, true)
		switch outcome {
		case streamElsewhere, streamLimited:
			sh.mu.Unlock()
			e.placedElsewhere(src, outcome, res, func(m pmetric.Metric) { dp.CopyTo(m.Sum().DataPoints().AppendEmpty()) })
			continue
		case streamCreated:
			s.start = iv.start
			if isInt {
				s.flags |= flagIntSum
			}
		case streamHeld:
			if !e.admit(s, iv, now, res) {
				sh.mu.Unlock()
				continue
			}
		}
		if isInt {
			s.addInt(iv64)
		} else {
			s.addDouble(f)
		}
		s.noteApplied(iv, now)
		res.Applied++
		sh.mu.Unlock()
	}
}

func (e *Engine) applyHistograms(enc *encoder, src *descriptorSource, dps pmetric.HistogramDataPointSlice, now int64, res *Result) {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		iv, err := pointInterval(dp.StartTimestamp(), dp.Timestamp())
		if err != nil {
			res.rejectInvalid(src.shape.name, err)
			continue
		}
		if dp.Flags().NoRecordedValue() {
			e.markSeen(enc, src, dp.Attributes(), now, res)
			continue
		}
		if err := validateHistogram(dp); err != nil {
			res.rejectInvalid(src.shape.name, err)
			continue
		}
		key := enc.hashStream(src.prefix, dp.Attributes())
		sh, s, outcome := e.lockStream(enc, src, key, dp.Attributes(), kindHistogram, true)
		switch outcome {
		case streamElsewhere, streamLimited:
			sh.mu.Unlock()
			e.placedElsewhere(src, outcome, res, func(m pmetric.Metric) { dp.CopyTo(m.Histogram().DataPoints().AppendEmpty()) })
			continue
		case streamCreated:
			s.ext = &streamExt{histogram: &histogramState{}}
			s.ext.histogram.reset(dp)
			s.start = iv.start
			s.noteApplied(iv, now)
			res.Applied++
		case streamHeld:
			if !e.admit(s, iv, now, res) {
				break
			}
			h := s.ext.histogram
			if h.sameLayout(dp) {
				h.add(dp)
			} else {
				// A new bucket layout cannot be added to the old one:
				// the series restarts from this point.
				h.reset(dp)
				s.start = iv.start
			}
			s.noteApplied(iv, now)
			res.Applied++
		}
		sh.mu.Unlock()
	}
}

func (e *Engine) applyExpHistograms(enc *encoder, src *descriptorSource, dps pmetric.ExponentialHistogramDataPointSlice, now int64, res *Result) {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		iv, err := pointInterval(dp.StartTimestamp(), dp.Timestamp())
		if err != nil {
			res.rejectInvalid(src.shape.name, err)
			continue
		}
		if dp.Flags().NoRecordedValue() {
			e.markSeen(enc, src, dp.Attributes(), now, res)
			continue
		}
		if err := validateExpHistogram(dp); err != nil {
			res.rejectInvalid(src.shape.name, err)
			continue
		}
		key := enc.hashStream(src.prefix, dp.Attributes())
		elsewhere := func(outcome lockOutcome) {
			e.placedElsewhere(src, outcome, res, func(m pmetric.Metric) { dp.CopyTo(m.ExponentialHistogram().DataPoints().AppendEmpty()) })
		}
		sh, s, outcome := e.lockStream(enc, src, key, dp.Attributes(), kindExpHistogram, false)
		if outcome == streamElsewhere {
			sh.mu.Unlock()
			elsewhere(outcome)
			continue
		}
		if s == nil {
			// Build the first state before creating the stream so that a
			// point that cannot be represented leaves nothing behind.
			sh.mu.Unlock()
			first, err := newExpHistogramState(dp)
			if err != nil {
				res.rejectInvalid(src.shape.name, err)
				continue
			}
			sh, s, outcome = e.lockStream(enc, src, key, dp.Attributes(), kindExpHistogram, true)
			switch outcome {
			case streamElsewhere, streamLimited:
				sh.mu.Unlock()
				elsewhere(outcome)
				continue
			case streamCreated:
				s.ext = &streamExt{exp: first}
				s.start = iv.start
				s.noteApplied(iv, now)
				res.Applied++
			default:
				// Another Apply created the stream meanwhile.
				e.foldExpHistogram(s, dp, iv, now, src.shape.name, res)
			}
			sh.mu.Unlock()
			continue
		}
		e.foldExpHistogram(s, dp, iv, now, src.shape.name, res)
		sh.mu.Unlock()
	}
}

func (e *Engine) foldExpHistogram(s *stream, dp pmetric.ExponentialHistogramDataPoint, iv interval, now int64, metric string, res *Result) {
	if !e.admit(s, iv, now, res) {
		return
	}
	if err := s.ext.exp.add(dp); err != nil {
		res.rejectInvalid(metric, err)
		return
	}
	s.noteApplied(iv, now)
	res.Applied++
}

// sumValue returns the running sum as the data point type it is kept in.
func (s *stream) sumValue() (isInt bool, i int64, f float64) {
	if s.has(flagIntSum) {
		return true, int64(s.sumBits), 0
	}
	return false, 0, math.Float64frombits(s.sumBits)
}
