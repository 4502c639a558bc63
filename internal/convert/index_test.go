package convert

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// indexModel drives a slotIndex and a Go map with the same operations and
// checks that they always agree.
type indexModel struct {
	t     *testing.T
	ix    slotIndex
	keys  []hash128 // by slot
	model map[hash128]uint32
	free  []uint32
}

func newIndexModel(t *testing.T) *indexModel {
	return &indexModel{t: t, model: map[hash128]uint32{}}
}

func (m *indexModel) keyAt(slot uint32) hash128 { return m.keys[slot] }

func (m *indexModel) insert(key hash128) {
	if _, ok := m.model[key]; ok {
		return
	}
	var slot uint32
	if n := len(m.free); n > 0 {
		slot, m.free = m.free[n-1], m.free[:n-1]
		m.keys[slot] = key
	} else {
		slot = uint32(len(m.keys))
		m.keys = append(m.keys, key)
	}
	m.ix.insert(key, slot)
	m.model[key] = slot
}

func (m *indexModel) remove(key hash128) {
	slot, ok := m.model[key]
	if !ok {
		return
	}
	m.ix.remove(key, slot)
	delete(m.model, key)
	m.keys[slot] = hash128{}
	m.free = append(m.free, slot)
}

func (m *indexModel) check(probes []hash128) {
	m.t.Helper()
	if m.ix.count != len(m.model) {
		m.t.Fatalf("index counts %d keys, model %d", m.ix.count, len(m.model))
	}
	for key, want := range m.model {
		got, ok := m.ix.find(key, m.keyAt)
		if !ok || got != want {
			m.t.Fatalf("find(%v) = %d, %v; want %d", key, got, ok, want)
		}
	}
	for _, key := range probes {
		if _, present := m.model[key]; present {
			continue
		}
		if slot, ok := m.ix.find(key, m.keyAt); ok {
			m.t.Fatalf("find(%v) found slot %d of a key never inserted or removed", key, slot)
		}
	}
}

// keyPool makes keys whose fingerprints collide often (few distinct high
// words) and whose home positions wrap around the table's end, the cases
// where linear probing and backward-shift removal go wrong.
func keyPool(rng *rand.Rand, n int) []hash128 {
	keys := make([]hash128, n)
	for i := range keys {
		hi := uint64(rng.IntN(24))<<32 | rng.Uint64()&0xffffffff
		if i%3 == 0 {
			hi = uint64(0xffffffff)<<32 | uint64(i%5)
		}
		keys[i] = hash128{hi: hi, lo: rng.Uint64()}
	}
	return keys
}

func TestSlotIndexAgreesWithAMap(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		keys := keyPool(rng, 300)
		m := newIndexModel(t)
		for op := 0; op < 5000; op++ {
			key := keys[rng.IntN(len(keys))]
			if rng.IntN(3) == 0 {
				m.remove(key)
			} else {
				m.insert(key)
			}
			if op%250 == 0 {
				m.check(keys)
			}
		}
		m.check(keys)
		for _, key := range keys {
			m.remove(key)
		}
		m.check(keys)
	}
}

func TestSlotIndexSameFingerprintDifferentKeys(t *testing.T) {
	m := newIndexModel(t)
	a := hash128{hi: 42 << 32, lo: 1}
	b := hash128{hi: 42 << 32, lo: 2}
	m.insert(a)
	if _, ok := m.ix.find(b, m.keyAt); ok {
		t.Fatal("a key sharing only the fingerprint was found")
	}
	m.insert(b)
	m.remove(a)
	m.check([]hash128{a, b})
}

func TestSlotIndexStaysUnderThreeQuartersFull(t *testing.T) {
	m := newIndexModel(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10_000 {
		m.insert(hash128{hi: rng.Uint64(), lo: rng.Uint64()})
		if m.ix.count*4 > len(m.ix.entries)*3 {
			t.Fatalf("%d keys in %d entries", m.ix.count, len(m.ix.entries))
		}
	}
	m.check(nil)
}

// Streams forgotten as stale free their index entries and attribute id
// lists; streams created afterwards reuse both and must still emit their
// own attributes and totals, never those of the streams they replaced.
func TestStreamsCreatedAfterExpiryKeepTheirOwnAttributes(t *testing.T) {
	clock := &fakeClock{now: epoch}
	e := newTestEngine(t, withMaxStale(time.Minute), withClock(clock))
	old := newRequest()
	for i := range 200 {
		old.deltaSum("tokens", 0, 10, 1, withAttr("session.id", fmt.Sprintf("old-%d", i)), withAttr("type", "input"))
	}
	e.Apply(old.md)
	if got := len(emitPoints(t, e, clock.now)); got != 200 {
		t.Fatalf("emitted %d points, want 200", got)
	}
	clock.now = epoch.Add(2 * time.Minute)
	if r := e.Emit(clock.now, pmetric.NewMetrics()); r.Expired != 200 {
		t.Fatalf("expired %d streams, want 200", r.Expired)
	}

	fresh := newRequest()
	for i := range 300 {
		fresh.deltaSum("tokens", 100, 110, float64(i), withAttr("session.id", fmt.Sprintf("new-%d", i)), withAttr("type", "output"))
	}
	e.Apply(fresh.md)
	points := emitPoints(t, e, clock.now)
	if len(points) != 300 {
		t.Fatalf("emitted %d points, want 300", len(points))
	}
	seen := map[string]bool{}
	for _, p := range points {
		var i int
		if _, err := fmt.Sscanf(p.attrs, "session.id=new-%d,type=output,", &i); err != nil {
			t.Fatalf("stream emitted attributes %q, want a new session's", p.attrs)
		}
		if p.value != float64(i) || p.start != at(100) {
			t.Errorf("stream %q emitted %v from %v, want %d from %v", p.attrs, p.value, p.start, i, at(100))
		}
		seen[p.attrs] = true
	}
	if len(seen) != 300 {
		t.Errorf("%d distinct streams emitted, want 300", len(seen))
	}
	if e.Streams() != 300 {
		t.Errorf("engine holds %d streams, want 300", e.Streams())
	}
}
