package convert

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// recordVersion is the first byte of every stream record. A record is
// self-contained: the stream's full identity followed by its state.
const recordVersion byte = 1

// maxNesting bounds how deep attribute values nest in a record, so a
// crafted record cannot exhaust the stack.
const maxNesting = 64

// ErrStreamExists is returned by RestoreStream for a stream already held.
var ErrStreamExists = errors.New("stream already exists")

// MarshalStreams calls fn with one record per live stream. Each shard is
// copied under its lock and encoded after releasing it, so Apply waits at
// most for one shard copy. The record is valid only during the call.
func (e *Engine) MarshalStreams(fn func(record []byte) error) error {
	var (
		copies []stream
		buf    []byte
		enc    encoder
	)
	for i := range e.shards {
		sh := &e.shards[i]
		copies = copies[:0]
		sh.mu.Lock()
		for slot := uint32(0); slot < sh.used; slot++ {
			if s := sh.at(slot); s.kind != 0 {
				copies = append(copies, deepCopy(s))
			}
		}
		sh.mu.Unlock()
		for j := range copies {
			var err error
			buf, err = e.appendRecord(buf[:0], &enc, &copies[j])
			if err != nil {
				return err
			}
			if err := fn(buf); err != nil {
				return fmt.Errorf("handing over a stream record: %w", err)
			}
		}
	}
	return nil
}

// deepCopy copies what Apply may change in place after the shard lock is
// released.
func deepCopy(s *stream) stream {
	c := *s
	if s.ext != nil {
		ext := *s.ext
		if ext.shared != nil {
			ext.shared = append([]interval(nil), ext.shared...)
		}
		if ext.histogram != nil {
			ext.histogram = ext.histogram.clone()
		}
		if ext.exp != nil {
			ext.exp = ext.exp.clone()
		}
		c.ext = &ext
	}
	return c
}

func (e *Engine) appendRecord(b []byte, enc *encoder, s *stream) ([]byte, error) {
	in := e.interner
	in.mu.RLock()
	b = append(b, recordVersion)
	res := in.resources.get(s.refs.resource)
	b = appendString(b, res.schemaURL)
	b = enc.appendMap(b, res.attrs, 1)
	sc := in.scopes.get(s.refs.scope)
	b = appendString(b, sc.name)
	b = appendString(b, sc.version)
	b = appendString(b, sc.schemaURL)
	b = enc.appendMap(b, sc.attrs, 1)
	me := in.metrics.get(s.refs.metric)
	b = appendString(b, me.shape.name)
	b = appendString(b, me.shape.unit)
	b = appendString(b, me.description)
	b = append(b, byte(me.shape.typ), boolByte(me.shape.monotonic))
	b = binary.AppendUvarint(b, uint64(s.refs.attrs.len))
	for _, id := range in.attrLists.get(s.refs.attrs) {
		a := in.attrs.get(id)
		b = appendString(b, a.key)
		if a.isStr {
			b = append(b, tagStr)
			b = appendString(b, a.str)
		} else {
			b = enc.appendValue(b, a.value, 1)
		}
	}
	in.mu.RUnlock()

	b = append(b, byte(s.kind), byte(s.flags&^(flagEvicted|flagMoving)))
	b = binary.AppendUvarint(b, s.start)
	b = binary.AppendUvarint(b, s.newestEnd)
	b = binary.AppendVarint(b, s.lastEmitMs)
	b = binary.AppendVarint(b, s.lastSeen)
	evicted := s.has(flagEvicted)
	b = append(b, boolByte(evicted))
	if evicted {
		b = binary.AppendUvarint(b, s.horizon)
	}
	b = append(b, boolByte(s.hasLargeRing()))
	ordered := s.oldestFirst()
	b = binary.AppendUvarint(b, uint64(len(ordered)))
	for _, iv := range ordered {
		b = binary.AppendUvarint(b, iv.start)
		b = binary.AppendUvarint(b, iv.end)
	}
	switch s.kind {
	case kindSum:
		b = binary.LittleEndian.AppendUint64(b, s.sumBits)
	case kindHistogram:
		b = appendHistogram(b, s.ext.histogram)
	case kindExpHistogram:
		b = appendExpHistogram(b, s.ext.exp)
	default:
		return nil, fmt.Errorf("encoding a stream record: unknown stream kind %d", s.kind)
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendCounts(b []byte, counts []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(counts)))
	for _, c := range counts {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

func statsFlags(hasSum, hasMin, hasMax bool) byte {
	return boolByte(hasSum) | boolByte(hasMin)<<1 | boolByte(hasMax)<<2
}

func appendHistogram(b []byte, h *histogramState) []byte {
	b = binary.AppendUvarint(b, uint64(len(h.bounds)))
	for _, f := range h.bounds {
		b = appendFloat(b, f)
	}
	b = appendCounts(b, h.counts)
	b = binary.AppendUvarint(b, h.count)
	b = append(b, statsFlags(h.hasSum, h.hasMin, h.hasMax))
	b = appendFloat(b, h.sum)
	b = appendFloat(b, h.min)
	return appendFloat(b, h.max)
}

func appendExpHistogram(b []byte, h *expHistogramState) []byte {
	b = binary.AppendVarint(b, int64(h.scale))
	b = appendFloat(b, h.zeroThreshold)
	b = binary.AppendUvarint(b, h.zeroCount)
	for _, side := range []expBuckets{h.positive, h.negative} {
		b = binary.AppendVarint(b, int64(side.offset))
		b = appendCounts(b, side.counts)
	}
	b = binary.AppendUvarint(b, h.count)
	b = append(b, statsFlags(h.hasSum, h.hasMin, h.hasMax))
	b = appendFloat(b, h.sum)
	b = appendFloat(b, h.min)
	return appendFloat(b, h.max)
}

// recordReader decodes a record, remembering the first error so that the
// decoding code reads straight through.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
	r.b = nil
}

func (r *recordReader) byte(what string) byte {
	if len(r.b) < 1 {
		r.fail("%s: record truncated", what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *recordReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("%s: bad or truncated varint", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("%s: bad or truncated varint", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) uint64(what string) uint64 {
	if len(r.b) < 8 {
		r.fail("%s: record truncated", what)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *recordReader) float(what string) float64 { return math.Float64frombits(r.uint64(what)) }

// count reads a length and checks that at least minSize bytes per element
// remain, so a corrupt length cannot trigger a huge allocation.
func (r *recordReader) count(what string, minSize int) int {
	n := r.uvarint(what)
	if r.err == nil && n > uint64(len(r.b)/minSize) {
		r.fail("%s: length %d exceeds the record", what, n)
		return 0
	}
	return int(n)
}

func (r *recordReader) string(what string) string {
	n := r.count(what, 1)
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *recordReader) readMap(what string, m pcommon.Map, depth int) {
	if depth > maxNesting {
		r.fail("%s: values nested deeper than %d", what, maxNesting)
		return
	}
	n := r.count(what, 2)
	m.EnsureCapacity(n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.string(what)
		r.readValue(what, m.PutEmpty(k), depth+1)
	}
}

func (r *recordReader) readValue(what string, v pcommon.Value, depth int) {
	if depth > maxNesting {
		r.fail("%s: values nested deeper than %d", what, maxNesting)
		return
	}
	switch tag := r.byte(what); tag {
	case tagEmpty:
	case tagStr:
		v.SetStr(r.string(what))
	case tagBool:
		switch r.byte(what) {
		case 0:
			v.SetBool(false)
		case 1:
			v.SetBool(true)
		default:
			r.fail("%s: bad bool", what)
		}
	case tagInt:
		v.SetInt(int64(r.uint64(what)))
	case tagDouble:
		v.SetDouble(r.float(what))
	case tagBytes:
		n := r.count(what, 1)
		if r.err == nil {
			v.SetEmptyBytes().FromRaw(r.b[:n])
			r.b = r.b[n:]
		}
	case tagSlice:
		n := r.count(what, 1)
		s := v.SetEmptySlice()
		s.EnsureCapacity(n)
		for i := 0; i < n && r.err == nil; i++ {
			r.readValue(what, s.AppendEmpty(), depth+1)
		}
	case tagMap:
		r.readMap(what, v.SetEmptyMap(), depth+1)
	default:
		r.fail("%s: unknown value tag %d", what, tag)
	}
}

func (r *recordReader) counts(what string) []uint64 {
	n := r.count(what, 1)
	if r.err != nil || n == 0 {
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.uvarint(what)
	}
	return out
}

func (r *recordReader) stats(what string) (hasSum, hasMin, hasMax bool, sum, lo, hi float64) {
	flags := r.byte(what)
	if flags > 7 {
		r.fail("%s: bad flags %d", what, flags)
	}
	return flags&1 != 0, flags&2 != 0, flags&4 != 0, r.float(what), r.float(what), r.float(what)
}

// decodedRecord is a record's identity, as pdata, and the stream state.
type decodedRecord struct {
	src        descriptorSource
	stream     stream
	ordered    []interval
	sharedRing bool
}

func decodeRecord(record []byte) (*decodedRecord, error) {
	r := &recordReader{b: record}
	if v := r.byte("version"); r.err == nil && v != recordVersion {
		return nil, fmt.Errorf("version: record version %d is not %d", v, recordVersion)
	}
	d := &decodedRecord{}
	src := &d.src
	src.resourceSchema = r.string("resource schema URL")
	src.resourceAttrs = pcommon.NewMap()
	r.readMap("resource attributes", src.resourceAttrs, 1)
	src.scopeName = r.string("scope name")
	src.scopeVersion = r.string("scope version")
	src.scopeSchema = r.string("scope schema URL")
	src.scopeAttrs = pcommon.NewMap()
	r.readMap("scope attributes", src.scopeAttrs, 1)
	src.shape.name = r.string("metric name")
	src.shape.unit = r.string("metric unit")
	src.description = r.string("metric description")
	src.shape.typ = pmetric.MetricType(r.byte("metric type"))
	switch mono := r.byte("metric monotonicity"); mono {
	case 0, 1:
		src.shape.monotonic = mono == 1
	default:
		r.fail("metric monotonicity: bad value %d", mono)
	}
	src.shape.temporality = pmetric.AggregationTemporalityDelta
	src.pointAttrs = pcommon.NewMap()
	r.readMap("point attributes", src.pointAttrs, 1)

	s := &d.stream
	s.kind = streamKind(r.byte("stream kind"))
	wantType := map[streamKind]pmetric.MetricType{
		kindSum:          pmetric.MetricTypeSum,
		kindHistogram:    pmetric.MetricTypeHistogram,
		kindExpHistogram: pmetric.MetricTypeExponentialHistogram,
	}
	if r.err == nil {
		if t, ok := wantType[s.kind]; !ok || t != src.shape.typ {
			return nil, fmt.Errorf("stream kind: %d does not match metric type %s", s.kind, src.shape.typ)
		}
	}
	s.flags = streamFlags(r.byte("stream flags"))
	if s.flags&^(flagUpdated|flagIntSum|flagEmitted) != 0 {
		r.fail("stream flags: unknown bits in %#x", s.flags)
	}
	if s.kind != kindSum && s.has(flagIntSum) {
		r.fail("stream flags: integer sum flag on a histogram")
	}
	s.start = r.uvarint("start time")
	s.newestEnd = r.uvarint("newest end time")
	s.lastEmitMs = r.varint("last emitted timestamp")
	s.lastSeen = r.varint("last seen time")
	switch ev := r.byte("eviction flag"); ev {
	case 0:
	case 1:
		s.flags |= flagEvicted
		s.horizon = r.uvarint("duplicate horizon")
	default:
		r.fail("eviction flag: bad value %d", ev)
	}
	switch shared := r.byte("shared writers flag"); shared {
	case 0, 1:
		d.sharedRing = shared == 1
	default:
		r.fail("shared writers flag: bad value %d", shared)
	}
	capacity := recentSingleWriter
	if d.sharedRing {
		capacity = recentSharedWriters
	}
	n := r.count("remembered intervals", 2)
	if n > capacity {
		r.fail("remembered intervals: %d exceed the capacity %d", n, capacity)
	}
	for i := 0; i < n && r.err == nil; i++ {
		iv := interval{start: r.uvarint("interval start"), end: r.uvarint("interval end")}
		if iv.end < iv.start {
			r.fail("interval %d ends before it starts", i)
		}
		d.ordered = append(d.ordered, iv)
	}
	switch s.kind {
	case kindSum:
		s.sumBits = r.uint64("sum")
		if !s.has(flagIntSum) && !isFinite(math.Float64frombits(s.sumBits)) && r.err == nil {
			r.fail("sum: not a finite number")
		}
	case kindHistogram:
		s.ext = &streamExt{histogram: r.histogram()}
	case kindExpHistogram:
		s.ext = &streamExt{exp: r.expHistogram()}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("record has %d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return d, nil
}

func (r *recordReader) histogram() *histogramState {
	h := &histogramState{}
	nb := r.count("histogram bounds", 8)
	for i := 0; i < nb && r.err == nil; i++ {
		f := r.float("histogram bound")
		if math.IsNaN(f) || i > 0 && f <= h.bounds[i-1] {
			r.fail("histogram bounds: not strictly increasing at %d", i)
		}
		h.bounds = append(h.bounds, f)
	}
	h.counts = r.counts("histogram bucket counts")
	if r.err == nil && len(h.counts) != len(h.bounds)+1 && (len(h.counts) != 0 || len(h.bounds) != 0) {
		r.fail("histogram: %d bucket counts for %d bounds", len(h.counts), len(h.bounds))
	}
	h.count = r.uvarint("histogram count")
	h.hasSum, h.hasMin, h.hasMax, h.sum, h.min, h.max = r.stats("histogram statistics")
	return h
}

func (r *recordReader) expHistogram() *expHistogramState {
	h := &expHistogramState{}
	scale := r.varint("exponential histogram scale")
	if r.err == nil && (scale < expMinScale || scale > expMaxScale) {
		r.fail("exponential histogram scale: %d is outside [%d, %d]", scale, expMinScale, expMaxScale)
	}
	h.scale = int32(scale)
	h.zeroThreshold = r.float("exponential histogram zero threshold")
	if r.err == nil && (!isFinite(h.zeroThreshold) || h.zeroThreshold < 0) {
		r.fail("exponential histogram zero threshold: %v is not a finite non-negative number", h.zeroThreshold)
	}
	h.zeroCount = r.uvarint("exponential histogram zero count")
	for _, side := range []*expBuckets{&h.positive, &h.negative} {
		offset := r.varint("exponential histogram bucket offset")
		side.counts = r.counts("exponential histogram bucket counts")
		if r.err == nil && (offset < math.MinInt32 || offset+int64(len(side.counts)) > math.MaxInt32 || len(side.counts) > expMaxBuckets) {
			r.fail("exponential histogram buckets: offset %d with %d buckets is out of range", offset, len(side.counts))
		}
		side.offset = int32(offset)
	}
	h.count = r.uvarint("exponential histogram count")
	h.hasSum, h.hasMin, h.hasMax, h.sum, h.min, h.max = r.stats("exponential histogram statistics")
	return h
}

// RestoreStream adds one stream from a record made by MarshalStreams. A
// malformed record is an error naming what is wrong; the engine is then
// unchanged.
func (e *Engine) RestoreStream(record []byte) error {
	d, err := decodeRecord(record)
	if err != nil {
		return fmt.Errorf("restoring a stream record: %w", err)
	}
	enc := encoderPool.Get().(*encoder)
	defer encoderPool.Put(enc)
	src := &d.src
	src.prefix.resource = enc.hashAttributes(src.resourceAttrs)
	scope := pcommon.NewInstrumentationScope()
	scope.SetName(src.scopeName)
	scope.SetVersion(src.scopeVersion)
	d.src.scopeAttrs.CopyTo(scope.Attributes())
	src.prefix.scope = enc.hashScope(scope)
	src.prefix.metric = enc.hashMetric(src.shape)
	key := enc.hashStream(src.prefix, src.pointAttrs)

	sh := e.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if slot, ok := sh.index.find(key, sh.keyAt); ok {
		held := sh.at(slot)
		if !held.has(flagMoving) {
			return fmt.Errorf("restoring stream of metric %q: %w", src.shape.name, ErrStreamExists)
		}
		// The stream comes back from the worker it was handed to, with
		// everything forwarded after it: newer than the frozen copy.
		e.interner.release([]streamRefs{held.refs})
		delete(sh.movingTo, key)
		sh.remove(slot)
		e.streams.Add(-1)
		e.moving.Add(-1)
	}
	if !e.reserveStream() {
		return fmt.Errorf("restoring stream of metric %q: the stream limit of %d is reached", src.shape.name, e.maxStreams)
	}
	refs := e.interner.acquire(enc, src)
	s := sh.insert(key)
	restored := d.stream
	restored.key = key
	restored.refs = refs
	*s = restored
	s.ringLen, s.ringNext = 0, 0
	s.recent = [recentSingleWriter]interval{}
	if d.sharedRing {
		if s.ext == nil {
			s.ext = &streamExt{}
		}
		s.ext.shared = make([]interval, recentSharedWriters)
	}
	horizon, evicted := s.horizon, s.has(flagEvicted)
	for _, iv := range d.ordered {
		s.remember(iv)
	}
	// Re-remembering cannot evict (the count fits the ring), so the
	// horizon stays the one recorded.
	s.horizon = horizon
	if evicted {
		s.flags |= flagEvicted
	}
	return nil
}
