package routerexporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// Reasons a point is dropped or refused, the reason attribute of the
// exporter's counters.
const (
	reasonRefusedByWorker = "refused_by_worker"
	reasonRejectedPoints  = "rejected_by_worker"
	reasonRetryExhausted  = "retry_budget_exhausted"
	reasonShutdown        = "shutdown"
	reasonQueueFull       = "queue_full"
	reasonNoMembership    = "no_membership"
)

// queued is one split request, encoded, waiting for its worker.
type queued struct {
	buf    *wireBuf
	points int
}

// workerQueue owns the delivery to one worker: an ordered queue and the one
// goroutine that sends from it, so requests reach the worker in the order
// the gateway accepted them, retries included.
type workerQueue struct {
	member ring.Member
	cfg    *Config
	tel    *telemetry
	token  *tokenSource
	log    *zap.Logger

	conn *grpc.ClientConn
	// req is the request being sent, reused between calls.
	req wireRequest

	// reserved counts queue slots promised to callers of reserve; it
	// never exceeds the channel's capacity, so a send after a successful
	// reserve does not block.
	reserved atomic.Int64
	items    chan queued

	// stop ends the sender once the queue is drained; abort ends it now.
	stop, abort         chan struct{}
	stopOnce, abortOnce sync.Once
	done                chan struct{}
}

func newWorkerQueue(member ring.Member, cfg *Config, tel *telemetry, token *tokenSource, log *zap.Logger) (*workerQueue, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if cfg.Compression == compressionGzip {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	}
	conn, err := grpc.NewClient(member.Endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to worker %s at %s: %w", member.Name, member.Endpoint, err)
	}
	q := &workerQueue{
		member: member, cfg: cfg, tel: tel, token: token,
		log:   log.With(zap.String("worker", member.Name), zap.String("endpoint", member.Endpoint)),
		conn:  conn,
		items: make(chan queued, cfg.Queue.Size),
		stop:  make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{}),
	}
	go q.run()
	return q, nil
}

// reserve promises a slot in the queue, or reports the queue full.
func (q *workerQueue) reserve() bool {
	if q.reserved.Add(1) > int64(q.cfg.Queue.Size) {
		q.reserved.Add(-1)
		return false
	}
	return true
}

func (q *workerQueue) unreserve() { q.reserved.Add(-1) }

// push queues a request into a slot taken with reserve.
func (q *workerQueue) push(item queued) { q.items <- item }

func (q *workerQueue) len() int64 { return q.reserved.Load() }

// close lets the sender finish what is queued, then stops it; after
// deadline, or once abort is closed, it drops the rest and counts it.
func (q *workerQueue) close() { q.stopOnce.Do(func() { close(q.stop) }) }

func (q *workerQueue) run() {
	defer close(q.done)
	defer q.conn.Close()
	for {
		var first queued
		select {
		case first = <-q.items:
		case <-q.abort:
			q.dropQueued(reasonShutdown)
			return
		case <-q.stop:
			select {
			case first = <-q.items:
			default:
				return
			}
		}
		points, taken := q.coalesce(first)
		if q.send(points) {
			// The worker answered, so gRPC no longer reads the bytes.
			for _, p := range q.req.pieces {
				p.recycle()
			}
		}
		clear(q.req.pieces)
		q.reserved.Add(-int64(taken))
	}
}

// coalesce makes q.req of first and whatever else is already queued, up
// to MaxBatchPoints, so a busy worker gets few large calls rather than
// many small ones. Encoded requests sent back to back are one request.
func (q *workerQueue) coalesce(first queued) (int, int) {
	q.req.pieces = append(q.req.pieces[:0], first.buf)
	points, taken := first.points, 1
	for points < q.cfg.Queue.MaxBatchPoints {
		select {
		case next := <-q.items:
			q.req.pieces = append(q.req.pieces, next.buf)
			points += next.points
			taken++
		default:
			return points, taken
		}
	}
	return points, taken
}

func (q *workerQueue) dropQueued(reason string) {
	for {
		select {
		case item := <-q.items:
			q.tel.dropped(q.member.Name, reason, item.points)
			item.buf.recycle()
			q.reserved.Add(-1)
		default:
			return
		}
	}
}

// send delivers q.req, retrying what the worker may take later, and
// reports whether the worker answered it (accepted, in whole or in part).
func (q *workerQueue) send(points int) bool {
	backoff := q.cfg.Retry.InitialInterval
	started := time.Now()
	for attempt := 0; ; attempt++ {
		err := q.export(points)
		if err == nil {
			q.tel.sent(q.member.Name, points)
			return true
		}
		if !retryable(err) {
			q.log.Error("worker refused a request; its points are dropped", zap.Int("points", points), zap.Error(err))
			q.tel.dropped(q.member.Name, reasonRefusedByWorker, points)
			return false
		}
		if q.cfg.Retry.MaxElapsedTime > 0 && time.Since(started)+backoff > q.cfg.Retry.MaxElapsedTime {
			q.log.Error("worker unreachable for the whole retry budget; its points are dropped",
				zap.Int("points", points), zap.Duration("budget", q.cfg.Retry.MaxElapsedTime), zap.Error(err))
			q.tel.dropped(q.member.Name, reasonRetryExhausted, points)
			return false
		}
		if attempt == 0 {
			q.log.Warn("worker did not take a request; retrying", zap.Int("points", points), zap.Error(err))
		}
		q.tel.retried(q.member.Name)
		select {
		case <-time.After(backoff):
		case <-q.abort:
			q.tel.dropped(q.member.Name, reasonShutdown, points)
			return false
		}
		backoff = min(2*backoff, q.cfg.Retry.MaxInterval)
	}
}

func (q *workerQueue) export(points int) error {
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
	defer cancel()
	if t, err := q.token.get(); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	} else if t != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t)
	}
	resp := pmetricotlp.NewExportResponse()
	if err := q.conn.Invoke(ctx, exportMethod, &q.req, &resp, grpc.ForceCodecV2(wireCodec{})); err != nil {
		return err
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() > 0 {
		// The worker took the rest; what it rejected would be rejected
		// again, so it is counted, not retried.
		q.log.Warn("worker rejected part of a request", zap.Int64("rejected", ps.RejectedDataPoints()),
			zap.Int("points", points), zap.String("message", ps.ErrorMessage()))
		q.tel.dropped(q.member.Name, reasonRejectedPoints, int(ps.RejectedDataPoints()))
		q.tel.sent(q.member.Name, -int(ps.RejectedDataPoints()))
	}
	return nil
}

// retryable follows the OTLP specification's list of retryable gRPC codes;
// a client-side failure without a status (no connection) is retryable too.
// UNAUTHENTICATED is retried as well: while a rotated worker token reaches
// the gateway's and the workers' files (the kubelet refreshes each within
// about a minute) the two disagree, and the token is re-read on every retry.
func retryable(err error) bool {
	s, ok := status.FromError(err)
	if !ok {
		return !errors.Is(err, context.Canceled)
	}
	switch s.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange,
		codes.Unavailable, codes.DataLoss, codes.ResourceExhausted, codes.Unauthenticated:
		return true
	default:
		return false
	}
}
