// Package handoff owns what moves between workers when the membership
// changes: which streams this worker holds at each epoch (the ring the
// gateways route by, package ring), the hand-over of every stream whose
// owner changed to its new owner, the forwarding of points that reach a
// worker that does not hold their stream, the peer protocol that carries
// both (gRPC on its own port, a token shared by the pipeline's workers),
// and the progress the operator reads before it shrinks the StatefulSet.
//
// At every moment one worker holds a stream: its old owner until the new
// owner has the stream's record durably, the new owner after. The old owner
// freezes the stream when it queues the record and forwards later points
// behind it; the new owner forwards points of a stream it gains to the old
// owner until that one said it sent everything (its done marker). The
// design and its failure cases are in docs/rescaling.md.
package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/bearertoken"
	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// Options configure a Handoff.
type Options struct {
	// Member is this worker's name in the membership (its pod name); its
	// ordinal is the number after the last dash.
	Member string
	// Keyer computes routing keys as the gateways do.
	Keyer *ring.Keyer
	// PeerEndpoint is where the peer server listens.
	PeerEndpoint string
	// TokenFile holds the token peers present and accept.
	TokenFile string
	// Engine returns the engine of the worker (it is replaced once, when
	// the state is restored).
	Engine func() *convert.Engine
	// Journal makes a received frame durable before it is applied; nil
	// when the worker keeps no durable state.
	Journal func(ctx context.Context, frame []byte) (done func(), err error)
	// Applied is told what applying forwarded points did, for the
	// worker's own counters.
	Applied func(convert.Result)
	// Checkpoint writes a checkpoint of the worker's state; nil when the
	// worker keeps no durable state. A worker's part of a hand-over ends
	// with one.
	Checkpoint func(ctx context.Context) error
	// MaxForwardBytes bounds forwarded points queued for one peer; beyond
	// it Forward refuses, and the request is retried by its gateway.
	MaxForwardBytes int
	Registerer      prometheus.Registerer
	Logger          *slog.Logger
}

// DefaultMaxForwardBytes bounds the forwarded points queued for one peer.
const DefaultMaxForwardBytes = 64 << 20

// Handoff is one worker's side of the hand-over.
type Handoff struct {
	opts    Options
	self    int
	tokens  *bearertoken.File
	logger  *slog.Logger
	metrics *metrics

	view     atomic.Pointer[view]
	ready    atomic.Bool
	direct   placement
	fromPeer placement
	sweeping sweepPlacement

	mu        sync.Mutex
	outbounds map[int]*outbound
	runCtx    context.Context

	sweepReq          chan struct{}
	checkpointReq     chan uint64
	checkpointedEpoch atomic.Uint64
	sweptEpoch        atomic.Uint64
	sweepStart        atomic.Int64 // Unix ns when the epoch being handed over arrived
	handedOff         atomic.Int64

	server   *grpc.Server
	listener net.Listener

	cancel context.CancelFunc
	loops  sync.WaitGroup
}

// view is the membership this worker acts on, with the done markers
// received for it, indexed by previous ordinal.
type view struct {
	m    ring.Membership
	self int
	done []atomic.Bool
}

// New checks opts, reads the token file and binds the peer port.
func New(opts Options) (*Handoff, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxForwardBytes <= 0 {
		opts.MaxForwardBytes = DefaultMaxForwardBytes
	}
	self, err := ordinalOf(opts.Member)
	if err != nil {
		return nil, err
	}
	if opts.Keyer == nil || opts.Engine == nil {
		return nil, errors.New("configuring the hand-over: a routing keyer and an engine are required")
	}
	tokens, err := bearertoken.Open(opts.TokenFile, "the peer token file", opts.Logger, nil)
	if err != nil {
		return nil, fmt.Errorf("configuring the hand-over: %w", err)
	}
	h := &Handoff{
		opts:      opts,
		self:      self,
		tokens:    tokens,
		logger:    opts.Logger.With("member", opts.Member),
		outbounds: make(map[int]*outbound),
		sweepReq:  make(chan struct{}, 1),
		// Buffered for one epoch's request: noteProgress never blocks.
		checkpointReq: make(chan uint64, 1),
	}
	h.direct = placement{h: h}
	h.fromPeer = placement{h: h, fromPeer: true}
	h.sweeping = sweepPlacement{h: h}
	if h.metrics, err = newMetrics(opts.Registerer, h); err != nil {
		return nil, err
	}
	srv := &peerServer{tokens: tokens, deliver: h.deliver, refused: h.metrics.refuse}
	if h.server, h.listener, err = listenPeers(opts.PeerEndpoint, srv); err != nil {
		return nil, err
	}
	return h, nil
}

// ordinalOf is a StatefulSet pod's ordinal: the number after its name's
// last dash.
func ordinalOf(member string) (int, error) {
	i := strings.LastIndexByte(member, '-')
	n, err := strconv.Atoi(member[i+1:])
	if i < 0 || err != nil || n < 0 || n >= maxSender {
		return 0, fmt.Errorf("configuring the hand-over: member name %q does not end in a StatefulSet ordinal", member)
	}
	return n, nil
}

// PeerAddr is the bound peer address, useful with port 0.
func (h *Handoff) PeerAddr() net.Addr { return h.listener.Addr() }

// Start serves peers and runs the senders and the sweeper until Close.
func (h *Handoff) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.mu.Lock()
	h.runCtx = ctx
	for _, o := range h.outbounds {
		h.loops.Go(func() { o.run(ctx) })
	}
	h.mu.Unlock()
	h.loops.Go(func() { _ = h.server.Serve(h.listener) })
	h.loops.Go(func() { h.sweepLoop(ctx) })
	if h.opts.Checkpoint != nil {
		h.loops.Go(func() { h.checkpointLoop(ctx) })
	}
}

// SetReady lets peers' frames in once the worker's state is restored.
func (h *Handoff) SetReady(ready bool) { h.ready.Store(ready) }

// Membership installs a published membership document if it is newer than
// the one acted on, and starts handing over what this worker no longer
// owns.
func (h *Handoff) Membership(doc []byte) error {
	m, err := ring.ParseMembership(doc)
	if err != nil {
		h.metrics.membershipErrors.Inc()
		return err
	}
	cur := h.view.Load()
	if cur != nil && m.Epoch <= cur.m.Epoch {
		return nil
	}
	if h.self < len(m.Members) && m.Members[h.self].Name != h.opts.Member {
		h.metrics.membershipErrors.Inc()
		return fmt.Errorf("membership epoch %d names %q at ordinal %d, not this worker %q",
			m.Epoch, m.Members[h.self].Name, h.self, h.opts.Member)
	}
	v := &view{m: m, self: h.self, done: make([]atomic.Bool, len(m.Previous))}
	h.mu.Lock()
	for i, mem := range m.Members {
		if i != h.self {
			h.outboundLocked(i).setAddr(mem.Peer)
		}
	}
	for i, mem := range m.Previous {
		if i != h.self && i >= len(m.Members) {
			h.outboundLocked(i).setAddr(mem.Peer)
		}
	}
	h.mu.Unlock()
	h.view.Store(v)
	h.sweepStart.Store(time.Now().UnixNano())
	h.metrics.epoch.Set(float64(m.Epoch))
	h.logger.Info("acting on a new membership", "epoch", m.Epoch, "workers", len(m.Members),
		"previousWorkers", len(m.Previous))
	h.RequestSweep()
	return nil
}

// HasMembership reports whether a membership was installed.
func (h *Handoff) HasMembership() bool { return h.view.Load() != nil }

func (h *Handoff) epoch() uint64 {
	if v := h.view.Load(); v != nil {
		return v.m.Epoch
	}
	return 0
}

func (h *Handoff) engine() *convert.Engine { return h.opts.Engine() }

// outboundLocked returns the queue of dest, creating (and starting) it.
func (h *Handoff) outboundLocked(dest int) *outbound {
	o, ok := h.outbounds[dest]
	if !ok {
		o = newOutbound(h, dest)
		h.outbounds[dest] = o
		if ctx := h.runCtx; ctx != nil {
			h.loops.Go(func() { o.run(ctx) })
		}
	}
	return o
}

func (h *Handoff) outbound(dest int) *outbound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.outboundLocked(dest)
}

// placement answers the engine for points of streams it does not hold.
type placement struct {
	h        *Handoff
	fromPeer bool
}

// Place: a stream belongs to its owner at the current epoch, except that
// while streams move, a stream this worker gains stays with its previous
// owner until that one's done marker arrived. A point a peer forwarded is
// never sent back to the previous owner: it came from there, or from a
// worker that already asked it.
func (p placement) Place(k ring.Key) int {
	v := p.h.view.Load()
	if v == nil {
		return convert.Here
	}
	owner := v.m.Owner(k)
	if owner != v.self {
		return owner
	}
	if !p.fromPeer {
		if prev, ok := v.m.PreviousOwner(k); ok && prev != v.self && !v.done[prev].Load() {
			return prev
		}
	}
	return convert.Here
}

// sweepPlacement places held streams: every stream goes to its owner.
type sweepPlacement struct{ h *Handoff }

func (p sweepPlacement) Place(k ring.Key) int {
	v := p.h.view.Load()
	if v == nil {
		return convert.Here
	}
	if owner := v.m.Owner(k); owner != v.self {
		return owner
	}
	return convert.Here
}

// Apply is the ingest path's Apply: points of streams held elsewhere are
// queued for their worker. A request whose forwarded points do not fit
// their queue is refused whole, retryable; what was applied here is
// recognised as a duplicate when it comes again.
func (h *Handoff) Apply(ctx context.Context, md pmetric.Metrics) (convert.Result, error) {
	var fwd convert.Forwards
	res := h.engine().ApplyPlaced(md, h.opts.Keyer, h.direct, &fwd)
	if fwd.Len() == 0 {
		return res, nil
	}
	return res, h.forward(&fwd, true)
}

var marshaler pmetric.ProtoMarshaler

// forward queues each destination's points; all or none. bounded refuses
// them when a queue is full, for a caller that can be retried; the replay
// of the journal cannot, and its size bounds what it queues.
func (h *Handoff) forward(fwd *convert.Forwards, bounded bool) error {
	type part struct {
		dest    int
		payload []byte
		points  int
	}
	var parts []part
	var err error
	fwd.Each(func(dest int, md pmetric.Metrics, points int) {
		if err != nil {
			return
		}
		var b []byte
		if b, err = marshaler.MarshalMetrics(md); err != nil {
			err = fmt.Errorf("encoding points forwarded to worker %d: %w", dest, err)
			return
		}
		parts = append(parts, part{dest, b, points})
	})
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, queued := h.outbound(p.dest).pending(); bounded && queued+len(p.payload) > h.opts.MaxForwardBytes {
			h.metrics.forwardRefused.Add(float64(p.points))
			return fmt.Errorf("%w: %d bytes of forwarded points wait for worker %d already", ErrForwardQueueFull, queued, p.dest)
		}
	}
	for _, p := range parts {
		h.outbound(p.dest).push(queued{entry: entry{kind: entryPoints, payload: p.payload}})
		h.metrics.pointsForwarded.Add(float64(p.points))
	}
	return nil
}

// ErrForwardQueueFull refuses a request whose points cannot be forwarded
// now; the gateway retries it.
var ErrForwardQueueFull = errors.New("the queue of points forwarded to another worker is full")

// RequestSweep asks the sweeper to hand over held streams that belong
// elsewhere.
func (h *Handoff) RequestSweep() {
	select {
	case h.sweepReq <- struct{}{}:
	default:
	}
}

func (h *Handoff) sweepLoop(ctx context.Context) {
	repeat := time.NewTicker(doneRepeat)
	defer repeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-repeat.C:
			h.repeatDone()
			continue
		case <-h.sweepReq:
		}
		if !h.ready.Load() {
			// The restore requests a sweep once it is done.
			continue
		}
		h.Sweep()
	}
}

// doneRepeat is how often done markers are sent again while streams move.
const doneRepeat = 2 * time.Second

// repeatDone sends the done marker of a finished sweep again to every
// member whose queue is empty: a member that restarted since it got the
// first one forgot it with the journal its checkpoint let go. A done
// marker stays true when repeated: any record queued since is ahead of it.
func (h *Handoff) repeatDone() {
	v := h.view.Load()
	if v == nil || !v.m.Rescaling() || !h.ready.Load() || h.sweptEpoch.Load() != v.m.Epoch {
		return
	}
	for i := range v.m.Members {
		if i == h.self {
			continue
		}
		o := h.outbound(i)
		if n, _ := o.pending(); n == 0 {
			o.push(queued{entry: entry{kind: entryDone, payload: donePayload(v.m.Epoch)}})
		}
	}
}

// Sweep hands over, once, every held stream that belongs elsewhere at the
// current epoch, then queues a done marker for every member while streams
// move. It returns how many streams it handed over.
func (h *Handoff) Sweep() int { return h.SweepEngine(h.engine()) }

// SweepEngine is Sweep of engine, the one a restore is filling.
func (h *Handoff) SweepEngine(engine *convert.Engine) int {
	v := h.view.Load()
	if v == nil {
		return 0
	}
	moved := engine.HandOver(h.opts.Keyer, h.sweeping, func(dest int, key convert.StreamKey, record []byte) {
		h.outbound(dest).push(queued{entry: entry{kind: entryRecord, payload: append([]byte(nil), record...)}, key: key})
	})
	if v.m.Rescaling() {
		for i := range v.m.Members {
			if i != h.self {
				h.outbound(i).push(queued{entry: entry{kind: entryDone, payload: donePayload(v.m.Epoch)}})
			}
		}
	}
	h.handedOff.Add(int64(moved))
	h.sweptEpoch.Store(v.m.Epoch)
	if moved > 0 {
		h.logger.Info("handing streams over", "epoch", v.m.Epoch, "streams", moved)
	}
	h.noteProgress()
	return moved
}

// noteProgress checkpoints once this worker's part of a hand-over is
// done (see Status.Complete), and records how long it took.
func (h *Handoff) noteProgress() {
	st := h.progress()
	if !st.Swept || st.Moving > 0 || st.Pending > 0 || !st.Received {
		return
	}
	if h.opts.Checkpoint != nil && h.checkpointedEpoch.Load() != st.Epoch {
		select {
		case h.checkpointReq <- st.Epoch:
		default:
		}
		return
	}
	if start := h.sweepStart.Swap(0); start != 0 && st.Rescaling {
		h.metrics.duration.Observe(time.Since(time.Unix(0, start)).Seconds())
	}
}

// checkpointLoop writes the checkpoint that ends a worker's part of a
// hand-over: from then on no journal entry written while streams moved is
// replayed, so a restart under the settled ring never replays a point
// whose stream was elsewhere when it arrived. A failed checkpoint is
// retried; the hand-over is not complete until one succeeds.
func (h *Handoff) checkpointLoop(ctx context.Context) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		var epoch uint64
		select {
		case <-ctx.Done():
			return
		case epoch = <-h.checkpointReq:
		case <-retry.C:
			h.noteProgress()
			continue
		}
		if h.checkpointedEpoch.Load() == epoch {
			continue
		}
		if err := h.opts.Checkpoint(ctx); err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("the checkpoint that ends this worker's hand-over failed; retrying", "epoch", epoch, "error", err)
			}
			continue
		}
		h.checkpointedEpoch.Store(epoch)
		h.noteProgress()
	}
}

// deliver is the peer server's handler.
func (h *Handoff) deliver(ctx context.Context, frame []byte) error {
	hdr, entries, err := parseFrame(frame)
	if err != nil {
		h.metrics.refuse("malformed")
		return status.Errorf(codes.InvalidArgument, "decoding a hand-over frame: %v", err)
	}
	v := h.view.Load()
	if v == nil || !h.ready.Load() {
		h.metrics.refuse("not_ready")
		return status.Error(codes.Unavailable, "this worker is not ready for hand-over frames yet")
	}
	if hdr.epoch > v.m.Epoch {
		h.metrics.refuse("epoch_ahead")
		return status.Errorf(codes.FailedPrecondition,
			"the sender acts on membership epoch %d, this worker on %d: retry once it has seen the newer one", hdr.epoch, v.m.Epoch)
	}
	if h.opts.Journal != nil {
		done, err := h.opts.Journal(ctx, frame)
		if err != nil {
			h.metrics.refuse("journal")
			return status.Errorf(codes.Unavailable, "recording a hand-over frame durably: %v", err)
		}
		defer done()
	}
	if err := h.applyFrame(h.engine(), hdr, entries, true); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	return nil
}

// ReplayRequest applies a journaled request at start-up into engine (the
// one being restored), forwarding again what belongs elsewhere.
func (h *Handoff) ReplayRequest(engine *convert.Engine, md pmetric.Metrics) {
	var fwd convert.Forwards
	engine.ApplyPlaced(md, h.opts.Keyer, h.direct, &fwd)
	if fwd.Len() > 0 {
		if err := h.forward(&fwd, false); err != nil {
			h.logger.Error("forwarding points of a journaled request", "error", err)
		}
	}
}

// ReplayFrame applies a frame read back from the journal at start-up into
// engine (the one being restored).
func (h *Handoff) ReplayFrame(engine *convert.Engine, frame []byte) {
	hdr, entries, err := parseFrame(frame)
	if err != nil {
		h.logger.Error("skipping a journaled hand-over frame that does not decode", "error", err)
		return
	}
	if err := h.applyFrame(engine, hdr, entries, false); err != nil {
		h.logger.Error("forwarding points of a journaled hand-over frame", "error", err)
	}
}

var unmarshaler pmetric.ProtoUnmarshaler

// applyFrame restores records, applies points and notes done markers, in
// order. A record of a stream already held is one this worker received
// before (a redelivery): the held one is at least as new. live is false
// for a frame replayed from the journal.
func (h *Handoff) applyFrame(engine *convert.Engine, hdr frameHeader, entries []entry, live bool) error {
	var fwd convert.Forwards
	for i, e := range entries {
		switch e.kind {
		case entryRecord:
			key, err := convert.RecordRoutingKey(h.opts.Keyer, e.payload)
			if err != nil {
				h.metrics.streamsRefused.Inc()
				h.logger.Error("refusing a handed-over stream record", "from", hdr.sender, "entry", i, "error", err)
				continue
			}
			if owner := h.sweeping.Place(key); owner != convert.Here {
				// Sent by a ring older than ours: the stream moves on,
				// and the points behind it follow.
				h.outbound(owner).push(queued{entry: entry{kind: entryRecord, payload: append([]byte(nil), e.payload...)}})
				h.metrics.streamsForwarded.Inc()
				continue
			}
			switch err := engine.RestoreStream(e.payload); {
			case err == nil:
				h.metrics.streamsReceived.Inc()
			case errors.Is(err, convert.ErrStreamExists):
				h.metrics.streamsDuplicate.Inc()
			default:
				h.metrics.streamsRefused.Inc()
				h.logger.Error("refusing a handed-over stream record", "from", hdr.sender, "entry", i, "error", err)
			}
		case entryPoints:
			md, err := unmarshaler.UnmarshalMetrics(e.payload)
			if err != nil {
				h.metrics.refuse("malformed_points")
				h.logger.Error("refusing forwarded points that do not decode", "from", hdr.sender, "entry", i, "error", err)
				continue
			}
			fwd.Reset()
			res := engine.ApplyPlaced(md, h.opts.Keyer, h.fromPeer, &fwd)
			h.metrics.pointsReceived.Add(float64(res.Applied + res.Duplicates + res.RejectedTotal() + res.Forwarded))
			if h.opts.Applied != nil {
				h.opts.Applied(res)
			}
			if fwd.Len() > 0 {
				if err := h.forward(&fwd, live); err != nil {
					return err
				}
			}
		case entryDone:
			epoch, err := parseDone(e.payload)
			if err != nil {
				h.metrics.refuse("malformed")
				continue
			}
			h.markDone(hdr.sender, epoch)
		}
	}
	return nil
}

func (h *Handoff) markDone(sender int, epoch uint64) {
	v := h.view.Load()
	if v == nil || v.m.Epoch != epoch || sender >= len(v.done) {
		return
	}
	if !v.done[sender].Swap(true) {
		h.logger.Info("a previous owner handed over everything", "epoch", epoch, "from", sender)
		h.noteProgress()
	}
}

// AwaitSent returns once every entry queued so far was acknowledged by its
// peer, or when ctx ends. A checkpoint waits for it: journaled requests
// whose points were forwarded may be dropped from the log only once their
// new holder has them; so does a shutdown, before its final checkpoint.
func (h *Handoff) AwaitSent(ctx context.Context) error {
	h.mu.Lock()
	marks := make(map[*outbound]uint64, len(h.outbounds))
	for _, o := range h.outbounds {
		marks[o] = o.mark()
	}
	h.mu.Unlock()
	for o, mark := range marks {
		if err := o.awaitAcked(ctx, mark); err != nil {
			items, _ := o.pending()
			return fmt.Errorf("waiting for worker %d to acknowledge %d hand-over entries: %w", o.dest, items, err)
		}
	}
	return nil
}

// Status is this worker's hand-over progress, served at /handoff for the
// operator.
type Status struct {
	Member    string `json:"member"`
	Epoch     uint64 `json:"epoch"`
	Rescaling bool   `json:"rescaling"`
	// Swept: the streams held at Epoch that belong elsewhere are queued.
	Swept bool `json:"swept"`
	// Received: every previous owner this worker gains streams from said
	// it sent them all (its done marker arrived).
	Received bool `json:"received"`
	// Checkpointed: a checkpoint was written since (durable workers).
	Checkpointed bool `json:"checkpointed"`
	// Streams held, of which Moving are on their way elsewhere.
	Streams int `json:"streams"`
	Moving  int `json:"moving"`
	// Pending entries wait for a peer's acknowledgement.
	Pending int `json:"pending"`
	// HandedOff counts streams handed over since the worker started.
	HandedOff int64 `json:"handedOff"`
	// Complete: swept, received, every entry acknowledged and, for a
	// durable worker, checkpointed.
	Complete bool `json:"complete"`
}

// Status reports the progress of the current epoch.
func (h *Handoff) Status() Status {
	st := h.progress()
	st.Complete = st.Swept && st.Received && st.Moving == 0 && st.Pending == 0 && st.Checkpointed
	return st
}

func (h *Handoff) progress() Status {
	st := Status{Member: h.opts.Member, HandedOff: h.handedOff.Load()}
	v := h.view.Load()
	if v == nil {
		return st
	}
	st.Epoch, st.Rescaling = v.m.Epoch, v.m.Rescaling()
	st.Swept = h.sweptEpoch.Load() == v.m.Epoch
	st.Received = true
	if h.self < len(v.m.Members) {
		for i := range v.done {
			if i != h.self && !v.done[i].Load() {
				st.Received = false
			}
		}
	}
	st.Checkpointed = h.opts.Checkpoint == nil || h.checkpointedEpoch.Load() == v.m.Epoch
	if e := h.engine(); e != nil {
		st.Streams, st.Moving = e.Streams(), e.Moving()
	}
	h.mu.Lock()
	for _, o := range h.outbounds {
		n, _ := o.pending()
		st.Pending += n
	}
	h.mu.Unlock()
	return st
}

// StatusHandler serves Status as JSON.
func (h *Handoff) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.Status())
	})
}

// Close stops the peer server and the senders. What is still queued stays
// recoverable: moving streams are in the checkpoint, and forwarded points
// in the journal until a checkpoint after their acknowledgement.
func (h *Handoff) Close(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		h.server.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		h.server.Stop()
	}
	if h.cancel != nil {
		h.cancel()
	}
	h.loops.Wait()
	h.mu.Lock()
	for _, o := range h.outbounds {
		o.close()
	}
	h.mu.Unlock()
	return nil
}

func errNoAddress(dest int) error {
	return fmt.Errorf("the membership gives worker %d no peer address", dest)
}
