package convert

// slotIndex maps a stream key to its slot in a shard's slab. It replaces a
// Go map of hash128 to slot: with a million streams the map's 24-byte
// slots, control bytes and growth slack cost about 40 bytes per stream and
// hand the garbage collector one more large object to look at. Here each
// entry is 8 bytes without pointers: the upper half is the high 32 bits of
// the key (which also chooses the entry's home position), the lower half
// the slot plus one, 0 marking an empty entry. A fingerprint match is
// confirmed against the full key held by the stream itself.
//
// Collisions are resolved by linear probing and removals by shifting later
// entries back, so lookups never step over tombstones.
type slotIndex struct {
	entries []uint64
	count   int
}

const indexMinCapacity = 16

func fingerprintOf(key hash128) uint32 { return uint32(key.hi >> 32) }

func indexEntry(fp uint32, slot uint32) uint64 { return uint64(fp)<<32 | uint64(slot+1) }

func entrySlot(e uint64) uint32 { return uint32(e) - 1 }

func entryFingerprint(e uint64) uint32 { return uint32(e >> 32) }

// indexNeedsGrowth keeps the load at or under three quarters, where linear
// probing's runs stay short.
func indexNeedsGrowth(count, capacity int) bool { return (count+1)*4 > capacity*3 }

func (ix *slotIndex) mask() uint32 { return uint32(len(ix.entries) - 1) }

// find returns the slot holding key; keyAt gives the key of a slot.
func (ix *slotIndex) find(key hash128, keyAt func(uint32) hash128) (uint32, bool) {
	if ix.count == 0 {
		return 0, false
	}
	fp := fingerprintOf(key)
	mask := ix.mask()
	for pos := fp & mask; ; pos = (pos + 1) & mask {
		e := ix.entries[pos]
		if e == 0 {
			return 0, false
		}
		if entryFingerprint(e) == fp && keyAt(entrySlot(e)) == key {
			return entrySlot(e), true
		}
	}
}

// insert adds key at slot; key must not be present.
func (ix *slotIndex) insert(key hash128, slot uint32) {
	if indexNeedsGrowth(ix.count, len(ix.entries)) {
		ix.grow()
	}
	ix.place(indexEntry(fingerprintOf(key), slot))
	ix.count++
}

func (ix *slotIndex) place(e uint64) {
	mask := ix.mask()
	pos := entryFingerprint(e) & mask
	for ix.entries[pos] != 0 {
		pos = (pos + 1) & mask
	}
	ix.entries[pos] = e
}

func (ix *slotIndex) grow() {
	old := ix.entries
	ix.entries = make([]uint64, max(indexMinCapacity, 2*len(old)))
	for _, e := range old {
		if e != 0 {
			ix.place(e)
		}
	}
}

// remove deletes the entry of key at slot, if present.
func (ix *slotIndex) remove(key hash128, slot uint32) {
	if ix.count == 0 {
		return
	}
	want := indexEntry(fingerprintOf(key), slot)
	mask := ix.mask()
	pos := fingerprintOf(key) & mask
	for ix.entries[pos] != want {
		if ix.entries[pos] == 0 {
			return
		}
		pos = (pos + 1) & mask
	}
	// Shift back every later entry of the run that may sit at the freed
	// position, so that no lookup meets a hole before its entry.
	hole := pos
	for next := (hole + 1) & mask; ix.entries[next] != 0; next = (next + 1) & mask {
		home := entryFingerprint(ix.entries[next]) & mask
		if probeDistance(home, next, mask) >= probeDistance(hole, next, mask) {
			ix.entries[hole] = ix.entries[next]
			hole = next
		}
	}
	ix.entries[hole] = 0
	ix.count--
}

// probeDistance is how many steps forward from 'from' position 'to' is.
func probeDistance(from, to, mask uint32) uint32 { return (to - from) & mask }
