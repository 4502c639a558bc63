package handoff

import (
	"context"
	"sync"
	"time"

	"github.com/deltapipeline/deltapipeline/internal/convert"
)

// Sizes of what one peer call carries and how long it may take.
const (
	maxFrameBytes  = 4 << 20
	maxFrameItems  = 20_000
	deliverTimeout = 30 * time.Second
	retryMin       = 100 * time.Millisecond
	retryMax       = 5 * time.Second
)

// queued is one entry waiting for its peer, with the key of the stream a
// record hands over (to forget it once acknowledged).
type queued struct {
	entry
	key convert.StreamKey
}

// outbound is the ordered queue of everything bound for one peer, drained
// by one sender: frames go one at a time, so the peer applies entries in
// the order they were queued, retries included. Nothing is ever dropped
// from it: records are the only copy of a stream's state in flight, and
// forwarded points were acknowledged to a gateway.
type outbound struct {
	dest int
	h    *Handoff

	mu           sync.Mutex
	addr         string
	client       *peerClient
	items        []queued
	forwardBytes int
	// enqueued and acked count entries ever queued and acknowledged; a
	// waiter for everything queued so far waits for acked to reach the
	// enqueued it saw.
	enqueued, acked uint64
	wake            chan struct{}
	ackedCh         chan struct{}
	lastErr         string
}

func newOutbound(h *Handoff, dest int) *outbound {
	return &outbound{dest: dest, h: h, wake: make(chan struct{}, 1), ackedCh: make(chan struct{})}
}

func (o *outbound) setAddr(addr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if addr == o.addr {
		return
	}
	o.addr = addr
	if o.client != nil {
		_ = o.client.close()
		o.client = nil
	}
}

// push queues entries and wakes the sender. It never blocks: HandOver
// calls it with a shard locked.
func (o *outbound) push(items ...queued) {
	o.mu.Lock()
	for _, it := range items {
		if it.kind == entryPoints {
			o.forwardBytes += len(it.payload)
		}
	}
	o.items = append(o.items, items...)
	o.enqueued += uint64(len(items))
	o.mu.Unlock()
	o.h.metrics.pending.Add(float64(len(items)))
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// pending returns what waits: entries, and the bytes of forwarded points.
func (o *outbound) pending() (items, forwardBytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items), o.forwardBytes
}

// mark is the count of entries queued so far, for awaitAcked.
func (o *outbound) mark() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.enqueued
}

// awaitAcked returns once the peer acknowledged the first mark entries,
// or when ctx ends.
func (o *outbound) awaitAcked(ctx context.Context, mark uint64) error {
	for {
		o.mu.Lock()
		done, ch := o.acked >= mark, o.ackedCh
		o.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run sends frames until ctx ends.
func (o *outbound) run(ctx context.Context) {
	var (
		buf     []byte
		backoff = retryMin
	)
	for {
		o.mu.Lock()
		n, size := 0, 0
		for n < len(o.items) && n < maxFrameItems && (n == 0 || size+len(o.items[n].payload) <= maxFrameBytes) {
			size += len(o.items[n].payload) + 8
			n++
		}
		batch := o.items[:n:n]
		client, addr := o.client, o.addr
		o.mu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-o.wake:
				continue
			}
		}
		if client == nil {
			c, err := o.connect(addr)
			if err != nil {
				if !o.backOff(ctx, err, &backoff) {
					return
				}
				continue
			}
			client = c
		}
		entries := make([]entry, len(batch))
		for i := range batch {
			entries[i] = batch[i].entry
		}
		buf = appendFrame(buf[:0], frameHeader{epoch: o.h.epoch(), sender: o.h.self}, entries)
		callCtx, cancel := context.WithTimeout(ctx, deliverTimeout)
		err := client.deliver(callCtx, buf)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !o.backOff(ctx, err, &backoff) {
				return
			}
			continue
		}
		backoff = retryMin
		o.acknowledged(batch)
	}
}

// backOff counts a failed attempt and waits before the next one, longer
// each time; false when ctx ended meanwhile.
func (o *outbound) backOff(ctx context.Context, err error, backoff *time.Duration) bool {
	o.failed(err)
	if !sleep(ctx, *backoff) {
		return false
	}
	*backoff = min(2**backoff, retryMax)
	return true
}

func (o *outbound) connect(addr string) (*peerClient, error) {
	if addr == "" {
		return nil, errNoAddress(o.dest)
	}
	c, err := dialPeer(addr, o.h.tokens)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.addr != addr || o.client != nil {
		// The address changed meanwhile; the next round dials again.
		_ = c.close()
		return o.client, nil
	}
	o.client = c
	return c, nil
}

func (o *outbound) failed(err error) {
	o.h.metrics.peerErrors.WithLabelValues(errorReason(err)).Inc()
	o.mu.Lock()
	first := err.Error() != o.lastErr
	o.lastErr = err.Error()
	o.mu.Unlock()
	if first {
		o.h.logger.Warn("handing over to a peer failed; retrying", "peer", o.dest, "error", err)
	}
}

// acknowledged removes a delivered batch, forgets the streams it handed
// over and wakes the waiters.
func (o *outbound) acknowledged(batch []queued) {
	var keys []convert.StreamKey
	var records, points, forwardBytes int
	for _, it := range batch {
		switch it.kind {
		case entryRecord:
			keys = append(keys, it.key)
			records++
		case entryPoints:
			points++
			forwardBytes += len(it.payload)
		}
	}
	if len(keys) > 0 {
		o.h.engine().Forget(keys)
	}
	o.mu.Lock()
	clear(o.items[:len(batch)])
	o.items = o.items[len(batch):]
	o.forwardBytes -= forwardBytes
	o.acked += uint64(len(batch))
	close(o.ackedCh)
	o.ackedCh = make(chan struct{})
	if o.lastErr != "" {
		o.h.logger.Info("handing over to a peer works again", "peer", o.dest)
		o.lastErr = ""
	}
	o.mu.Unlock()
	m := o.h.metrics
	m.pending.Sub(float64(len(batch)))
	m.streamsSent.Add(float64(records))
	m.forwardRequestsSent.Add(float64(points))
	o.h.noteProgress()
}

func (o *outbound) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.client != nil {
		_ = o.client.close()
		o.client = nil
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
