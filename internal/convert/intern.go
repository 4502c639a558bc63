package convert

import (
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// internTable holds values shared by many streams once, under a 32-bit id,
// with a reference count so that a value goes away with its last stream.
type internTable[T any] struct {
	index   map[hash128]uint32
	entries []internEntry[T]
	free    []uint32
}

type internEntry[T any] struct {
	key   hash128
	refs  uint32
	value T
}

func newInternTable[T any]() internTable[T] {
	return internTable[T]{index: make(map[hash128]uint32)}
}

// acquire returns the id of key, creating the entry with make when absent,
// and counts one more reference to it.
func (t *internTable[T]) acquire(key hash128, make func() T) uint32 {
	if id, ok := t.index[key]; ok {
		t.entries[id].refs++
		return id
	}
	entry := internEntry[T]{key: key, refs: 1, value: make()}
	var id uint32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.entries[id] = entry
	} else {
		id = uint32(len(t.entries))
		t.entries = append(t.entries, entry)
	}
	t.index[key] = id
	return id
}

func (t *internTable[T]) release(id uint32) {
	e := &t.entries[id]
	e.refs--
	if e.refs > 0 {
		return
	}
	delete(t.index, e.key)
	var zero internEntry[T]
	*e = zero
	t.free = append(t.free, id)
}

func (t *internTable[T]) get(id uint32) *T { return &t.entries[id].value }

func (t *internTable[T]) live() int { return len(t.index) }

type resourceEntry struct {
	attrs     pcommon.Map
	schemaURL string
}

type scopeEntry struct {
	name, version string
	attrs         pcommon.Map
	schemaURL     string
}

type metricEntry struct {
	shape       metricShape
	description string
}

// attrEntry is one point attribute. Strings, by far the most common
// values, are kept as plain strings; other values as a pcommon copy.
type attrEntry struct {
	key   string
	str   string
	value pcommon.Value
	isStr bool
}

func (a *attrEntry) putInto(m pcommon.Map) {
	if a.isStr {
		m.PutStr(a.key, a.str)
		return
	}
	a.value.CopyTo(m.PutEmpty(a.key))
}

// interner owns every shared descriptor. Lock order: a shard lock may be
// held while taking the interner lock, never the reverse.
type interner struct {
	mu        sync.RWMutex
	resources internTable[resourceEntry]
	scopes    internTable[scopeEntry]
	metrics   internTable[metricEntry]
	attrs     internTable[attrEntry]
	attrLists idArena
}

// attrList locates a stream's attribute ids in the interner's idArena.
// Streams hold it instead of a slice so that a stream record has no
// pointer to a small object of its own: a million streams then cost a
// million fewer heap objects, and slabs the collector need not follow.
type attrList struct{ offset, len uint32 }

// idArena stores the attribute id lists of every stream back to back, with
// freed lists kept by length for the next stream with as many attributes.
type idArena struct {
	ids  []uint32
	free map[uint32][]uint32
}

func (a *idArena) store(ids []uint32) attrList {
	n := uint32(len(ids))
	if n == 0 {
		return attrList{}
	}
	if offsets := a.free[n]; len(offsets) > 0 {
		off := offsets[len(offsets)-1]
		a.free[n] = offsets[:len(offsets)-1]
		copy(a.ids[off:off+n], ids)
		return attrList{offset: off, len: n}
	}
	off := uint32(len(a.ids))
	a.ids = append(a.ids, ids...)
	return attrList{offset: off, len: n}
}

// get returns the ids of l; valid until the interner lock is released.
func (a *idArena) get(l attrList) []uint32 { return a.ids[l.offset : l.offset+l.len] }

func (a *idArena) release(l attrList) {
	if l.len == 0 {
		return
	}
	if a.free == nil {
		a.free = make(map[uint32][]uint32)
	}
	a.free[l.len] = append(a.free[l.len], l.offset)
}

func newInterner() *interner {
	return &interner{
		resources: newInternTable[resourceEntry](),
		scopes:    newInternTable[scopeEntry](),
		metrics:   newInternTable[metricEntry](),
		attrs:     newInternTable[attrEntry](),
	}
}

// streamRefs are the interned ids one stream holds.
type streamRefs struct {
	resource, scope, metric uint32
	attrs                   attrList
}

// descriptorSource is where a new stream's descriptors come from: a point
// being applied or a record being restored.
type descriptorSource struct {
	// route places points of streams not held here; nil when the engine
	// holds every stream it is given.
	route          *route
	prefix         streamPrefix
	resourceAttrs  pcommon.Map
	resourceSchema string
	scopeName      string
	scopeVersion   string
	scopeAttrs     pcommon.Map
	scopeSchema    string
	shape          metricShape
	description    string
	pointAttrs     pcommon.Map
}

func copyMap(m pcommon.Map) pcommon.Map {
	c := pcommon.NewMap()
	m.CopyTo(c)
	return c
}

// acquire interns every descriptor of a new stream.
func (in *interner) acquire(enc *encoder, src *descriptorSource) streamRefs {
	kvs := sortedAttributes(src.pointAttrs)
	attrHashes := make([]hash128, len(kvs))
	for i, kv := range kvs {
		attrHashes[i] = enc.hashAttribute(kv.key, kv.value)
	}
	ids := make([]uint32, len(kvs))

	in.mu.Lock()
	defer in.mu.Unlock()
	refs := streamRefs{
		resource: in.resources.acquire(src.prefix.resource, func() resourceEntry {
			return resourceEntry{attrs: copyMap(src.resourceAttrs), schemaURL: src.resourceSchema}
		}),
		scope: in.scopes.acquire(src.prefix.scope, func() scopeEntry {
			return scopeEntry{name: src.scopeName, version: src.scopeVersion, attrs: copyMap(src.scopeAttrs), schemaURL: src.scopeSchema}
		}),
		metric: in.metrics.acquire(src.prefix.metric, func() metricEntry {
			return metricEntry{shape: cloneShape(src.shape), description: cloneString(src.description)}
		}),
	}
	for i, kv := range kvs {
		ids[i] = in.attrs.acquire(attrHashes[i], func() attrEntry {
			return newAttrEntry(kv.key, kv.value)
		})
	}
	refs.attrs = in.attrLists.store(ids)
	return refs
}

func newAttrEntry(key string, v pcommon.Value) attrEntry {
	a := attrEntry{key: cloneString(key)}
	if v.Type() == pcommon.ValueTypeStr {
		a.isStr = true
		a.str = cloneString(v.Str())
		return a
	}
	a.value = pcommon.NewValueEmpty()
	v.CopyTo(a.value)
	return a
}

// cloneString copies s so an interned string never pins the request
// buffer it was decoded from.
func cloneString(s string) string {
	if s == "" {
		return ""
	}
	return string(append([]byte(nil), s...))
}

func cloneShape(s metricShape) metricShape {
	s.name = cloneString(s.name)
	s.unit = cloneString(s.unit)
	return s
}

func (in *interner) release(refs []streamRefs) {
	if len(refs) == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range refs {
		in.resources.release(r.resource)
		in.scopes.release(r.scope)
		in.metrics.release(r.metric)
		for _, a := range in.attrLists.get(r.attrs) {
			in.attrs.release(a)
		}
		in.attrLists.release(r.attrs)
	}
}
