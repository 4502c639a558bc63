package convert

import (
	"math"
	"sync"
	"time"
)

// interval is the (start, end] window of one delta point in Unix ns.
type interval struct{ start, end uint64 }

// Bounds of the duplicate-detection memory, documented in docs/conversion.md.
const (
	// recentSingleWriter intervals are remembered inline by every stream.
	recentSingleWriter = 4
	// recentSharedWriters intervals are remembered once a stream has seen
	// overlapping intervals from a second writer, or once its few
	// remembered intervals are all too recent to forget (Config.LateDataWindow).
	recentSharedWriters = 64
)

type streamKind uint8

const (
	kindSum streamKind = iota + 1
	kindHistogram
	kindExpHistogram
)

type streamFlags uint8

const (
	// flagUpdated: a point was applied since the last Emit.
	flagUpdated streamFlags = 1 << iota
	// flagIntSum: the running sum is an int64 held in sumBits.
	flagIntSum
	// flagEvicted: an applied interval fell out of the remembered ones, so
	// horizon is meaningful.
	flagEvicted
	// flagEmitted: lastEmitMs holds the timestamp of an emitted point.
	flagEmitted
	// flagMoving: the stream's record is on its way to the worker that
	// owns it now. Until that worker has it durably the stream stays here,
	// frozen, so that checkpoints keep it; its points are forwarded.
	flagMoving
)

// stream is the state of one series. It is kept small because the engine
// holds millions: descriptors are interned ids, the sum lives inline, and
// everything a plain single-writer sum does not need hangs off ext.
type stream struct {
	key      hash128
	refs     streamRefs
	kind     streamKind
	flags    streamFlags
	ringLen  uint8
	ringNext uint8
	// start is the series' start time: the first applied point's start.
	start uint64
	// newestEnd is the latest end of any applied interval.
	newestEnd uint64
	// horizon is the latest end of an interval no longer remembered.
	horizon    uint64
	lastEmitMs int64
	// lastSeen is the engine clock (Unix ns) when the stream last received
	// a point; it drives staleness.
	lastSeen int64
	// sumBits holds the running sum: a float64's bits, or an int64 when
	// flagIntSum is set.
	sumBits uint64
	recent  [recentSingleWriter]interval
	ext     *streamExt
}

// streamExt is allocated only for histograms and for streams with more
// than one writer.
type streamExt struct {
	shared    []interval // remembered intervals once several writers were seen
	histogram *histogramState
	exp       *expHistogramState
}

func (s *stream) has(f streamFlags) bool { return s.flags&f != 0 }

// hasLargeRing reports whether the stream remembers recentSharedWriters
// intervals rather than the inline recentSingleWriter.
func (s *stream) hasLargeRing() bool { return s.ext != nil && s.ext.shared != nil }

func (s *stream) remembered() []interval {
	if s.hasLargeRing() {
		return s.ext.shared[:s.ringLen]
	}
	return s.recent[:s.ringLen]
}

func (s *stream) ringCapacity() int {
	if s.hasLargeRing() {
		return recentSharedWriters
	}
	return recentSingleWriter
}

// remember records an applied interval, forgetting the oldest remembered
// one when full.
func (s *stream) remember(iv interval) {
	ring := s.recent[:]
	if s.hasLargeRing() {
		ring = s.ext.shared
	}
	if int(s.ringLen) < len(ring) {
		ring[s.ringLen] = iv
		s.ringLen++
		return
	}
	evicted := ring[s.ringNext]
	if !s.has(flagEvicted) || evicted.end > s.horizon {
		s.horizon = evicted.end
	}
	s.flags |= flagEvicted
	ring[s.ringNext] = iv
	s.ringNext = uint8((int(s.ringNext) + 1) % len(ring))
}

// oldestFirst returns the remembered intervals in the order they were
// applied.
func (s *stream) oldestFirst() []interval {
	r := s.remembered()
	if int(s.ringLen) < s.ringCapacity() {
		return append([]interval(nil), r...)
	}
	out := make([]interval, 0, len(r))
	out = append(out, r[s.ringNext:]...)
	return append(out, r[:s.ringNext]...)
}

// growIntervalMemory moves the remembered intervals to the larger ring, the
// first time a second writer shows up or a burst would forget recent ones.
func (s *stream) growIntervalMemory() {
	if s.hasLargeRing() {
		return
	}
	ordered := s.oldestFirst()
	if s.ext == nil {
		s.ext = &streamExt{}
	}
	s.ext.shared = make([]interval, recentSharedWriters)
	copy(s.ext.shared, ordered)
	s.ringLen = uint8(len(ordered))
	s.ringNext = 0
	s.recent = [recentSingleWriter]interval{}
}

// wouldForgetRecent reports whether remembering one more interval would
// push out one that ended within window of now (Unix ns). The gateways
// retry a worker for that window, and while one gateway is still retrying
// another may already have delivered newer intervals of the same stream:
// forgetting an interval younger than it could refuse a second writer's
// queued points, so a stream that would do so grows its memory instead.
// Streams exported every minute or less often never reach it.
func (s *stream) wouldForgetRecent(now int64, window time.Duration) bool {
	if s.hasLargeRing() || int(s.ringLen) < recentSingleWriter {
		return false
	}
	return now-int64(s.recent[s.ringNext].end) < int64(window)
}

func (s *stream) isRemembered(iv interval) bool {
	for _, r := range s.remembered() {
		if r == iv {
			return true
		}
	}
	return false
}

// verdict is what the engine does with one valid point of a known stream.
type verdict uint8

const (
	verdictApply verdict = iota
	verdictApplyOverlapping
	verdictDuplicate
	verdictOutOfOrder
)

// classify decides whether a point's interval is new, a redelivery of an
// applied one, or an overlap that the writers mode accepts or refuses.
func classify(s *stream, iv interval, sharedWriters bool) verdict {
	if iv.start >= s.newestEnd && iv.end > s.newestEnd {
		return verdictApply
	}
	if s.isRemembered(iv) {
		return verdictDuplicate
	}
	if s.has(flagEvicted) && iv.end <= s.horizon {
		// It may repeat an interval no longer remembered: counting it
		// could count a retry twice.
		return verdictOutOfOrder
	}
	if !sharedWriters {
		return verdictOutOfOrder
	}
	return verdictApplyOverlapping
}

// noteApplied updates the bookkeeping common to every kind.
func (s *stream) noteApplied(iv interval, now int64) {
	s.remember(iv)
	if iv.end > s.newestEnd {
		s.newestEnd = iv.end
	}
	s.lastSeen = now
	s.flags |= flagUpdated
}

// addInt adds an integer delta, moving the sum to float64 when it holds
// doubles already or would overflow int64.
func (s *stream) addInt(v int64) {
	if s.has(flagIntSum) {
		cur := int64(s.sumBits)
		next := cur + v
		overflow := (v > 0 && next < cur) || (v < 0 && next > cur)
		if !overflow {
			s.sumBits = uint64(next)
			return
		}
		s.flags &^= flagIntSum
		s.sumBits = math.Float64bits(float64(cur))
	}
	s.sumBits = math.Float64bits(math.Float64frombits(s.sumBits) + float64(v))
}

func (s *stream) addDouble(v float64) {
	if s.has(flagIntSum) {
		s.flags &^= flagIntSum
		s.sumBits = math.Float64bits(float64(int64(s.sumBits)))
	}
	s.sumBits = math.Float64bits(math.Float64frombits(s.sumBits) + v)
}

// chunkSize streams are allocated together, so that the slab grows without
// copying and a stream's address stays stable while its shard is locked.
const chunkSize = 1024

type shard struct {
	mu     sync.Mutex
	index  slotIndex
	chunks []*[chunkSize]stream
	free   []uint32
	used   uint32
	// movingTo is the worker each moving stream's record went to: its
	// points follow the record there, even if the ring places the stream
	// here again meanwhile (the record comes back from there).
	movingTo map[hash128]int
}

func (sh *shard) at(slot uint32) *stream {
	return &sh.chunks[slot/chunkSize][slot%chunkSize]
}

func (sh *shard) keyAt(slot uint32) hash128 { return sh.at(slot).key }

func (sh *shard) lookup(key hash128) *stream {
	slot, ok := sh.index.find(key, sh.keyAt)
	if !ok {
		return nil
	}
	return sh.at(slot)
}

func (sh *shard) insert(key hash128) *stream {
	var slot uint32
	if n := len(sh.free); n > 0 {
		slot = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		slot = sh.used
		if int(slot/chunkSize) == len(sh.chunks) {
			sh.chunks = append(sh.chunks, new([chunkSize]stream))
		}
		sh.used++
	}
	sh.index.insert(key, slot)
	s := sh.at(slot)
	*s = stream{key: key}
	return s
}

func (sh *shard) remove(slot uint32) {
	s := sh.at(slot)
	sh.index.remove(s.key, slot)
	*s = stream{}
	sh.free = append(sh.free, slot)
}
