package export

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/deltapipeline/deltapipeline/internal/export/sendqueue"
)

// Reasons a queued request is given up before it is sent, shared by every
// queueing exporter.
const (
	DropQueueFull = "queue_full"
	DropShutdown  = "shutdown"
)

// QueueConfig builds a Queue.
type QueueConfig[T any] struct {
	// Exporter is the exporter label of what the queue counts.
	Exporter string
	Capacity int
	// Size is what one request counts for when dropped: its points, or its
	// samples for remote write.
	Size func(T) int
	// Unit names what Size counts in logs and errors ("points", "samples").
	Unit    string
	Metrics *Metrics
	Logger  *slog.Logger
}

// Queue is the sending side every queueing exporter shares: a bounded
// first-in first-out queue drained by one sender goroutine, so requests
// leave in the order they were queued; every request given up before it is
// sent counted by reason; its length published; and its backlog awaitable by
// the worker's emit. The exporter supplies the send function and counts
// what that function gives up on through Dropped.
type Queue[T any] struct {
	cfg     QueueConfig[T]
	fifo    *sendqueue.Queue[T]
	stopped chan struct{}
	// sendCtx ends in-flight sends when Shutdown runs out of time.
	sendCtx    context.Context
	cancelSend context.CancelFunc
}

// StartQueue starts the sender: send is called with each queued request in
// order, one at a time, with a context that ends when Shutdown gives up.
// ctx's values reach send; its cancellation does not, so queued requests
// are still flushed at shutdown.
func StartQueue[T any](ctx context.Context, cfg QueueConfig[T], send func(ctx context.Context, item T)) *Queue[T] {
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q := &Queue[T]{
		cfg:        cfg,
		fifo:       sendqueue.New[T](cfg.Capacity),
		stopped:    make(chan struct{}),
		sendCtx:    sendCtx,
		cancelSend: cancel,
	}
	cfg.Metrics.QueueCapacity.WithLabelValues(cfg.Exporter).Set(float64(cfg.Capacity))
	q.publishLength()
	go q.run(send)
	return q
}

func (q *Queue[T]) run(send func(context.Context, T)) {
	defer close(q.stopped)
	for {
		item, ok := q.fifo.Pop()
		if !ok {
			return
		}
		q.publishLength()
		send(q.sendCtx, item)
	}
}

func (q *Queue[T]) publishLength() {
	q.cfg.Metrics.QueueLength.WithLabelValues(q.cfg.Exporter).Set(float64(q.fifo.Len()))
}

// Enqueue appends item; it never waits for the sender. A full queue gives up
// its oldest request, because the newest cumulative values supersede older
// ones of the same series. After Shutdown began, item is refused and counted.
func (q *Queue[T]) Enqueue(item T) error {
	oldest, displaced, err := q.fifo.Push(item)
	if err != nil {
		n := q.cfg.Size(item)
		q.Dropped(DropShutdown, n)
		return fmt.Errorf("queueing %d %s: %w", n, q.cfg.Unit, err)
	}
	if displaced {
		n := q.cfg.Size(oldest)
		q.Dropped(DropQueueFull, n)
		q.cfg.Logger.Warn("export queue full; dropped the oldest request", q.cfg.Unit, n, "queueSize", q.cfg.Capacity)
	}
	q.publishLength()
	return nil
}

// Dropped counts n points or samples given up on for reason.
func (q *Queue[T]) Dropped(reason string, n int) {
	q.cfg.Metrics.Dropped(q.cfg.Exporter, reason, n)
}

// Pending is the number of requests waiting to be sent.
func (q *Queue[T]) Pending() int { return q.fifo.Len() }

// AwaitBacklog implements Backlog.
func (q *Queue[T]) AwaitBacklog(ctx context.Context, n int) error {
	return q.fifo.WaitLen(ctx, n)
}

// Shutdown refuses new requests and waits until the sender has sent what
// was queued, or until ctx ends: then what is still queued is counted as
// dropped, the request in flight is cancelled, and the error says how much
// was not sent.
func (q *Queue[T]) Shutdown(ctx context.Context) error {
	q.fifo.Close()
	select {
	case <-q.stopped:
		q.cancelSend()
		return nil
	case <-ctx.Done():
	}
	lost := 0
	for _, item := range q.fifo.Drain() {
		lost += q.cfg.Size(item)
	}
	q.Dropped(DropShutdown, lost)
	q.cancelSend()
	<-q.stopped
	return fmt.Errorf("flushing the export queue: %w (%d queued %s not sent)", ctx.Err(), lost, q.cfg.Unit)
}
