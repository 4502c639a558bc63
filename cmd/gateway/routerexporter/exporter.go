package routerexporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// routeTable is what a request is routed by: a membership and, at the same
// index as each member, the queue of that worker.
type routeTable struct {
	membership ring.Membership
	queues     []*workerQueue
}

// router is the exporter.
type router struct {
	cfg   *Config
	log   *zap.Logger
	keyer *ring.Keyer
	tel   *telemetry
	token *tokenSource

	// table is read without a lock to route; mu is held shared while a
	// request is split and queued, and exclusively to change the table or
	// to close queues, so no request is ever queued to a closed queue.
	table atomic.Pointer[routeTable]
	mu    sync.RWMutex
	// queues are all senders still running, current and retiring, by
	// member; guarded by mu.
	queues map[ring.Member]*workerQueue
	// retiring are the queues of workers that left, until they are empty.
	retiring map[*workerQueue]struct{}
	shutdown bool

	splitters sync.Pool
	cancel    context.CancelFunc
}

var (
	errNoMembership = errors.New("no worker membership received yet; retry later")
	errShutdown     = errors.New("the gateway is shutting down; retry later")
)

func newRouter(cfg *Config, log *zap.Logger) (*router, error) {
	keyer, err := ring.NewKeyer(ring.KeyKind(cfg.RoutingKey), cfg.RoutingAttributes)
	if err != nil {
		return nil, fmt.Errorf("routing_key: %w", err)
	}
	r := &router{cfg: cfg, log: log, keyer: keyer, token: newTokenSource(cfg.BearerTokenFile),
		queues: make(map[ring.Member]*workerQueue), retiring: make(map[*workerQueue]struct{})}
	r.splitters.New = func() any { return newSplitter(keyer) }
	return r, nil
}

func (r *router) start(ctx context.Context, host component.Host, tel *telemetry) error {
	r.tel = tel
	watchCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if err := watchMembership(watchCtx, r.cfg.Membership, r.log, r.applyDocument); err != nil {
		cancel()
		return err
	}
	return nil
}

// applyDocument installs a published membership if it is newer than the
// current one.
func (r *router) applyDocument(doc []byte) {
	m, err := ring.ParseMembership(doc)
	if err != nil {
		r.log.Error("ignoring a published membership", zap.Error(err))
		r.tel.membershipError()
		return
	}
	if err := r.apply(m); err != nil {
		r.log.Error("cannot route by the published membership", zap.Uint64("epoch", m.Epoch), zap.Error(err))
		r.tel.membershipError()
	}
}

func (r *router) apply(m ring.Membership) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown {
		return nil
	}
	if cur := r.table.Load(); cur != nil && m.Epoch <= cur.membership.Epoch {
		if m.Epoch < cur.membership.Epoch || !m.SameMembers(cur.membership) {
			r.log.Warn("ignoring a membership older than the one in use",
				zap.Uint64("epoch", m.Epoch), zap.Uint64("current", cur.membership.Epoch))
		}
		return nil
	}
	next := &routeTable{membership: m, queues: make([]*workerQueue, len(m.Members))}
	for i, mem := range m.Members {
		q, ok := r.queues[mem]
		if !ok {
			var err error
			if q, err = newWorkerQueue(mem, r.cfg, r.tel, r.token, r.log); err != nil {
				return err
			}
			r.queues[mem] = q
		}
		next.queues[i] = q
	}
	// A worker that left keeps receiving what was queued for it before;
	// its queue closes once empty.
	for mem, q := range r.queues {
		if !containsMember(m, mem) {
			q.close()
			delete(r.queues, mem)
			r.retiring[q] = struct{}{}
			go func() {
				<-q.done
				r.mu.Lock()
				delete(r.retiring, q)
				r.mu.Unlock()
			}()
		}
	}
	r.table.Store(next)
	r.log.Info("routing by a new membership", zap.Uint64("epoch", m.Epoch), zap.Int("workers", len(m.Members)))
	return nil
}

func containsMember(m ring.Membership, mem ring.Member) bool {
	for _, x := range m.Members {
		if x == mem {
			return true
		}
	}
	return false
}

func (r *router) allQueues() []*workerQueue {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*workerQueue, 0, len(r.queues)+len(r.retiring))
	for _, q := range r.queues {
		out = append(out, q)
	}
	for q := range r.retiring {
		out = append(out, q)
	}
	return out
}

// consume splits a request by owner and queues every part, or none: a
// refused request is answered with a retryable error, and because no part
// was queued, the client's retry counts nothing twice.
func (r *router) consume(_ context.Context, md pmetric.Metrics) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.shutdown {
		r.tel.refused(reasonShutdown, md.DataPointCount())
		return errShutdown
	}
	t := r.table.Load()
	if t == nil {
		r.tel.refused(reasonNoMembership, md.DataPointCount())
		return errNoMembership
	}
	sp := r.splitters.Get().(*splitter)
	defer r.splitters.Put(sp)
	parts := sp.split(md, t.membership)
	for o, p := range parts {
		if p.points == 0 {
			continue
		}
		if !t.queues[o].reserve() {
			total := 0
			for q, part := range parts {
				if q < o && part.points > 0 {
					t.queues[q].unreserve()
				}
				total += part.points
				part.buf.recycle()
			}
			r.tel.refused(reasonQueueFull, total)
			return fmt.Errorf("the queue for worker %s is full (%d requests); retry later",
				t.membership.Members[o].Name, r.cfg.Queue.Size)
		}
	}
	for o, p := range parts {
		if p.points > 0 {
			t.queues[o].push(queued{buf: p.buf, points: p.points})
		} else {
			// Only resources without points went there.
			p.buf.recycle()
		}
	}
	return nil
}

// stop closes every queue, waits up to DrainTimeout for the senders to
// deliver what is queued, then drops the rest and counts it.
func (r *router) stop(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Lock()
	r.shutdown = true
	r.mu.Unlock()
	queues := r.allQueues()
	for _, q := range queues {
		q.close()
	}

	deadline := time.NewTimer(r.cfg.DrainTimeout)
	defer deadline.Stop()
	for _, q := range queues {
		select {
		case <-q.done:
		case <-deadline.C:
			r.log.Warn("the drain timeout passed with requests still queued; dropping them", zap.Duration("drain_timeout", r.cfg.DrainTimeout))
			abortAll(queues)
		case <-ctx.Done():
			abortAll(queues)
		}
	}
	for _, q := range queues {
		<-q.done
	}
	if r.tel != nil {
		return r.tel.shutdown()
	}
	return nil
}

func abortAll(queues []*workerQueue) {
	for _, q := range queues {
		q.abortOnce.Do(func() { close(q.abort) })
	}
}
