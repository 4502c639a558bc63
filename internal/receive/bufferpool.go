package receive

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// receivePool is the pool of gRPC's receive buffers. gRPC's default pool
// zeroes every buffer it hands out, which at full speed cost the worker
// about 7 % of its CPU: a receive buffer is always filled with the bytes
// read from the connection up to its length before anyone reads it, so
// zeroing it first protects nothing.
var receivePool mem.BufferPool = newSizeClassPool()

// sizeClassPool keeps buffers in power-of-two size classes, from 256 bytes
// to 64 MiB (the largest request the worker accepts); larger ones are not
// kept.
type sizeClassPool struct {
	classes [maxClass + 1]sync.Pool
}

const (
	minClass = 8  // 256 bytes
	maxClass = 26 // 64 MiB
)

func newSizeClassPool() *sizeClassPool { return &sizeClassPool{} }

// classOf is the smallest class that holds n bytes.
func classOf(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

func (p *sizeClassPool) Get(length int) *[]byte {
	c := classOf(length)
	if c > maxClass {
		b := make([]byte, length)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:length]
		return b
	}
	b := make([]byte, length, 1<<c)
	return &b
}

func (p *sizeClassPool) Put(b *[]byte) {
	c := cap(*b)
	// Only buffers this pool made go back: their capacity is their class.
	if c < 1<<minClass || c > 1<<maxClass || c&(c-1) != 0 {
		return
	}
	p.classes[bits.Len(uint(c))-1].Put(b)
}
