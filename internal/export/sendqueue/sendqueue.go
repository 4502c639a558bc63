// Package sendqueue owns the bounded first-in first-out queue between the
// code that produces export requests and the single sender of an exporter.
// When full it gives up the oldest request: cumulative values make newer
// requests supersede older ones of the same series. Producers that must not
// run ahead of the sender wait for its length to fall (WaitLen), woken by
// the sender taking an item rather than by polling.
package sendqueue

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Push after Close.
var ErrClosed = errors.New("queue is closed")

// Queue is a bounded FIFO with one or more producers and one consumer.
type Queue[T any] struct {
	mu       sync.Mutex
	items    []T
	capacity int
	closed   bool
	wake     chan struct{}
	// shrunk is closed when an item leaves the queue; nil while nobody
	// waits in WaitLen, so that a sender nobody waits for allocates nothing.
	shrunk chan struct{}
}

// New returns a queue holding at most capacity items.
func New[T any](capacity int) *Queue[T] {
	return &Queue[T]{capacity: max(capacity, 1), wake: make(chan struct{}, 1)}
}

// Push appends item. When the queue is full the oldest item is removed and
// returned with displaced true.
func (q *Queue[T]) Push(item T) (oldest T, displaced bool, err error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return oldest, false, ErrClosed
	}
	if len(q.items) >= q.capacity {
		oldest, displaced = q.items[0], true
		var zero T
		q.items[0] = zero
		q.items = q.items[1:]
	}
	q.items = append(q.items, item)
	q.mu.Unlock()
	q.signal()
	return oldest, displaced, nil
}

func (q *Queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Pop blocks until an item is available and returns it; ok is false once
// the queue is closed and empty.
func (q *Queue[T]) Pop() (item T, ok bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			item = q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			q.signalShrunkLocked()
			q.mu.Unlock()
			return item, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return item, false
		}
		<-q.wake
	}
}

// Close refuses further pushes; Pop still returns what is queued.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// Len is the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Drain removes and returns everything queued.
func (q *Queue[T]) Drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	q.signalShrunkLocked()
	return items
}

func (q *Queue[T]) signalShrunkLocked() {
	if q.shrunk != nil {
		close(q.shrunk)
		q.shrunk = nil
	}
}

// WaitLen returns once at most n items are queued, or with ctx's error when
// ctx ends first. It wakes each time an item leaves the queue.
func (q *Queue[T]) WaitLen(ctx context.Context, n int) error {
	for {
		q.mu.Lock()
		if len(q.items) <= n {
			q.mu.Unlock()
			return nil
		}
		if q.shrunk == nil {
			q.shrunk = make(chan struct{})
		}
		shrunk := q.shrunk
		q.mu.Unlock()
		select {
		case <-shrunk:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
