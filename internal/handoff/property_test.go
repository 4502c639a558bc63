package handoff

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/ring"
	"github.com/deltapipeline/deltapipeline/internal/state"
)

// The property: whatever order the workers and the gateways learn the
// epochs of a 3 -> 5 -> 2 rescale in, whatever is delivered twice, and
// whichever worker crashes in the middle, every point counts exactly once:
// no stream is emitted by two workers in one round, a series' timestamps
// strictly increase, its value never decreases, and its last value is the
// sum of what was sent. The workers are real: engines, durable stores,
// hand-over over gRPC on loopback.

const (
	propStreams = 48
	propSteps   = 44
)

func TestEveryPointCountsOnceThroughRescalesRedeliveriesAndCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real workers for a few seconds per seed")
	}
	for seed := uint64(1); seed <= 10; seed++ {
		t.Run("seed "+strconv.FormatUint(seed, 10), func(t *testing.T) { runRescale(t, seed) })
	}
}

// propWorker is one worker of the simulated StatefulSet.
type propWorker struct {
	ordinal int
	dir     string
	addr    string
	engine  *convert.Engine
	store   *state.Store
	h       *Handoff
	// learned is the index of the newest published membership installed.
	learned int
}

type propCluster struct {
	t         *testing.T
	rng       *rand.Rand
	token     string
	keyer     *ring.Keyer
	workers   map[int]*propWorker
	published []ring.Membership
	// emitted[series] is every point emitted for it, in emit order.
	emitted map[int][]emittedPoint
	sent    [propStreams]float64
	base    time.Time
}

type emittedPoint struct {
	worker int
	round  int
	ts     pcommon.Timestamp
	value  float64
}

func runRescale(t *testing.T, seed uint64) {
	c := &propCluster{
		t:       t,
		rng:     rand.New(rand.NewPCG(seed, 7)),
		workers: map[int]*propWorker{},
		emitted: map[int][]emittedPoint{},
		base:    time.Now().Add(-propSteps * time.Second),
	}
	c.token = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(c.token, []byte("peer-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.keyer, err = ring.NewKeyer(ring.KeyStreamID, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c.start(i)
	}
	c.publish(3, 0)
	t.Cleanup(func() {
		for _, w := range c.workers {
			c.stop(w, true)
		}
	})

	// Two gateways, each on its own view of the ring, each holding what a
	// worker did not accept for a retry, as the router does.
	gateways := [2]*propGateway{{}, {}}
	crashAt := 9 + c.rng.IntN(20) // somewhere in a hand-over
	crashed := -1
	shrink := false
	for step := range propSteps {
		switch step {
		case 6:
			c.start(3)
			c.start(4)
		case 8:
			c.publish(5, 3)
		case 24:
			shrink = true
		}
		// The operator starts a change only once the last one settled.
		if shrink && c.settled() {
			c.publish(2, 5)
			shrink = false
		}
		if step == crashAt {
			crashed = c.rng.IntN(len(c.published[len(c.published)-1].Members))
			t.Logf("step %d: worker %d crashes", step, crashed)
			c.stop(c.workers[crashed], false)
		}
		if crashed >= 0 && step == crashAt+2 {
			c.restart(crashed)
			crashed = -1
		}
		c.learn()
		for g, gw := range gateways {
			gw.view = c.gatewayView(gw.view)
			c.sendRound(gw, step, g)
		}
		c.settleIfComplete()
		time.Sleep(15 * time.Millisecond)
		c.emitRound(step)
	}
	// The clients stopped; the gateways retry until everything is in.
	for round := propSteps; ; round++ {
		pending := 0
		for _, gw := range gateways {
			gw.view = len(c.published) - 1
			c.retry(gw)
			pending += len(gw.pending)
		}
		c.learn()
		c.settleIfComplete()
		time.Sleep(20 * time.Millisecond)
		c.emitRound(round)
		if shrink && c.settled() {
			c.publish(2, 5)
			shrink = false
		}
		if pending == 0 && !shrink && c.settled() && round > propSteps+5 {
			break
		}
		if round > propSteps+400 {
			t.Fatalf("did not converge: %d points pending at the gateways, ring settled %v", pending, c.settled())
		}
	}
	c.emitRound(1 << 20)
	c.check()
}

// start runs worker i on a fresh state directory.
func (c *propCluster) start(i int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	w := &propWorker{ordinal: i, dir: filepath.Join(c.t.TempDir(), "w"+strconv.Itoa(i)), addr: addr, learned: -1}
	c.workers[i] = w
	c.open(w)
}

// open builds the worker's engine, store and hand-over, restores its state
// and makes it ready, in the order the worker process does.
func (c *propCluster) open(w *propWorker) {
	t := c.t
	var err error
	if w.engine, err = convert.NewEngine(convert.Config{LateDataWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if w.store, err = state.Open(state.Options{Directory: w.dir, CheckpointInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	engine := w.engine
	for attempt := 0; ; attempt++ {
		w.h, err = New(Options{
			Member: "w-" + strconv.Itoa(w.ordinal), Keyer: c.keyer, PeerEndpoint: w.addr, TokenFile: c.token,
			Engine: func() *convert.Engine { return engine }, Journal: w.store.RecordFrame,
			Applied: func(res convert.Result) {
				if res.RejectedTotal() > 0 {
					t.Errorf("worker %d refused forwarded points: %s", w.ordinal, res.Message())
				}
			},
			Checkpoint: func(ctx context.Context) error {
				_, err := w.store.Checkpoint(ctx, afterSent{w, engine})
				return err
			},
		})
		if err == nil {
			break
		}
		if attempt > 50 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the previous process's port
	}
	w.h.Start()
	if len(c.published) > 0 {
		c.install(w, len(c.published)-1)
	}
	report, err := w.store.RestoreReplaying(context.Background(), engine, state.Replay{
		Requests: func(md pmetric.Metrics) { w.h.ReplayRequest(engine, md) },
		Frames:   func(frame []byte) { w.h.ReplayFrame(engine, frame) },
		Loaded:   func() { w.h.SweepEngine(engine) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worker %d restored %d streams and replayed %d journal records", w.ordinal, report.Streams, report.Replayed)
	engine.EmitAfter(time.Now())
	w.h.SetReady(true)
	w.h.RequestSweep()
}

// afterSent is the worker's checkpoint source: the engine, once every
// queued entry reached its peer.
type afterSent struct {
	w      *propWorker
	engine *convert.Engine
}

func (a afterSent) MarshalStreams(fn func([]byte) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.w.h.AwaitSent(ctx); err != nil {
		return err
	}
	return a.engine.MarshalStreams(fn)
}

// stop ends a worker: cleanly (drain, final checkpoint) or as a crash.
func (c *propCluster) stop(w *propWorker, clean bool) {
	if w.h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.h.SetReady(false)
	if clean {
		_ = w.h.AwaitSent(ctx)
		_ = w.store.Close(ctx, afterSent{w, w.engine})
		_ = w.h.Close(ctx)
	} else {
		_ = w.h.Close(ctx)
		_ = w.store.Close(ctx, nil)
	}
	w.h, w.engine = nil, nil
}

func (c *propCluster) restart(i int) {
	c.t.Logf("worker %d restarts from its state", i)
	c.open(c.workers[i])
}

// publish is the operator publishing the next epoch.
func (c *propCluster) publish(workers, previous int) {
	m := ring.Membership{Epoch: uint64(len(c.published) + 1), Members: c.members(workers)}
	if previous > 0 {
		m.Previous = c.members(previous)
	}
	c.published = append(c.published, m)
	c.t.Logf("epoch %d: %d workers, %d previous", m.Epoch, workers, previous)
}

func (c *propCluster) members(n int) []ring.Member {
	out := make([]ring.Member, n)
	for i := range out {
		w := c.workers[i]
		out[i] = ring.Member{Name: "w-" + strconv.Itoa(i), Endpoint: "gateway-facing-" + strconv.Itoa(i), Peer: w.addr}
	}
	return out
}

func (c *propCluster) install(w *propWorker, index int) {
	doc, err := c.published[index].Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := w.h.Membership(doc); err != nil {
		c.t.Fatal(err)
	}
	w.learned = index
}

// learn lets each running worker see the newest epoch with some delay.
func (c *propCluster) learn() {
	newest := len(c.published) - 1
	for _, w := range c.workers {
		if w.h != nil && w.learned < newest && c.rng.IntN(3) == 0 {
			c.install(w, w.learned+1+c.rng.IntN(newest-w.learned))
		}
	}
}

// gatewayView moves a gateway's view forward, late at random.
func (c *propCluster) gatewayView(view int) int {
	if newest := len(c.published) - 1; view < newest && c.rng.IntN(2) == 0 {
		return newest
	}
	return view
}

// settleIfComplete is the operator settling a hand-over once every worker
// of both rings reports it complete.
func (c *propCluster) settleIfComplete() {
	m := c.published[len(c.published)-1]
	if !m.Rescaling() {
		return
	}
	for i := range max(len(m.Members), len(m.Previous)) {
		w := c.workers[i]
		if w.h == nil {
			return
		}
		if st := w.h.Status(); st.Epoch != m.Epoch || !st.Complete {
			return
		}
	}
	c.publish(len(m.Members), 0)
	if len(m.Previous) > len(m.Members) {
		for i := len(m.Members); i < len(m.Previous); i++ {
			c.t.Logf("the StatefulSet shrinks: worker %d stops", i)
			c.stop(c.workers[i], true)
			delete(c.workers, i)
		}
	}
}

func (c *propCluster) settled() bool { return !c.published[len(c.published)-1].Rescaling() }

// propGateway routes by its own view and keeps refused points for a retry.
type propGateway struct {
	view    int
	pending []propPoint
	sent    []propPoint
}

type propPoint struct {
	stream     int
	start, end pcommon.Timestamp
	value      float64
}

func (c *propCluster) sendRound(gw *propGateway, step, g int) {
	// Each gateway carries half the streams (the load balancer in front);
	// a writer sends one point per stream and step.
	for s := g; s < propStreams; s += 2 {
		v := float64(1 + c.rng.IntN(9))
		// Points carry wall-clock times, as a client's do: the engine keeps
		// the intervals a gateway may still retry (LateDataWindow).
		start := pcommon.NewTimestampFromTime(c.base.Add(time.Duration(step) * time.Second))
		p := propPoint{stream: s, start: start, end: start + pcommon.Timestamp(time.Second), value: v}
		c.sent[s] += v
		gw.pending = append(gw.pending, p)
		gw.sent = append(gw.sent, p)
	}
	// A redelivery of an already sent point, as a retry after a lost answer.
	if len(gw.sent) > 0 && c.rng.IntN(2) == 0 {
		gw.pending = append(gw.pending, gw.sent[len(gw.sent)-1-c.rng.IntN(min(len(gw.sent), 48))])
	}
	c.retry(gw)
}

// retry delivers what the gateway holds, per worker in order; a worker
// that is down or refuses keeps its points queued.
func (c *propCluster) retry(gw *propGateway) {
	m := c.published[gw.view]
	byOwner := map[int][]propPoint{}
	var order []int
	for _, p := range gw.pending {
		owner := m.Owner(c.keyOf(p.stream))
		if _, ok := byOwner[owner]; !ok {
			order = append(order, owner)
		}
		byOwner[owner] = append(byOwner[owner], p)
	}
	gw.pending = gw.pending[:0]
	for _, owner := range order {
		points := byOwner[owner]
		if !c.deliver(owner, points) {
			gw.pending = append(gw.pending, points...)
		}
	}
}

// deliver is the worker's ingest path: journal, apply, answer.
func (c *propCluster) deliver(ordinal int, points []propPoint) bool {
	w, ok := c.workers[ordinal]
	if !ok || w.h == nil {
		return false
	}
	md := requestOf(points)
	done, err := w.store.RecordEncoded(context.Background(), md, nil)
	if err != nil {
		return false
	}
	res, err := w.h.Apply(context.Background(), md)
	done()
	if res.RejectedTotal() > 0 {
		c.t.Errorf("worker %d refused points: %s", ordinal, res.Message())
	}
	return err == nil
}

func streamAttrs(m pcommon.Map, stream int) {
	m.PutStr("session.id", "session-"+strconv.Itoa(stream))
	m.PutStr("type", "input")
}

func requestOf(points []propPoint) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	for _, p := range points {
		dp := sum.DataPoints().AppendEmpty()
		streamAttrs(dp.Attributes(), p.stream)
		dp.SetStartTimestamp(p.start)
		dp.SetTimestamp(p.end)
		dp.SetDoubleValue(p.value)
	}
	return md
}

func (c *propCluster) keyOf(stream int) ring.Key {
	md := requestOf([]propPoint{{stream: stream}})
	rm := md.ResourceMetrics().At(0)
	sm := rm.ScopeMetrics().At(0)
	m := sm.Metrics().At(0)
	ml := c.keyer.Metric(c.keyer.Scope(c.keyer.Resource(rm.Resource()), sm.Scope()), m)
	return c.keyer.Point(ml, m.Sum().DataPoints().At(0).Attributes())
}

// emitRound lets every running worker emit, as its emit loop does.
func (c *propCluster) emitRound(round int) {
	for _, w := range c.workers {
		if w.engine == nil {
			continue
		}
		out := pmetric.NewMetrics()
		w.engine.Emit(time.Now(), out)
		rms := out.ResourceMetrics()
		for i := range rms.Len() {
			sms := rms.At(i).ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					dps := ms.At(k).Sum().DataPoints()
					for l := range dps.Len() {
						dp := dps.At(l)
						sid, _ := dp.Attributes().Get("session.id")
						var stream int
						if _, err := fmt.Sscanf(sid.Str(), "session-%d", &stream); err != nil {
							c.t.Fatalf("emitted an unknown stream %q", sid.Str())
						}
						c.emitted[stream] = append(c.emitted[stream], emittedPoint{worker: w.ordinal, round: round, ts: dp.Timestamp(), value: dp.DoubleValue()})
					}
				}
			}
		}
	}
}

func (c *propCluster) check() {
	t := c.t
	for s := range propStreams {
		points := c.emitted[s]
		if len(points) == 0 {
			t.Errorf("stream %d was never emitted", s)
			continue
		}
		owners := map[int]int{}
		for i, p := range points {
			if prev, ok := owners[p.round]; ok && prev != p.worker {
				t.Errorf("stream %d emitted by workers %d and %d in round %d", s, prev, p.worker, p.round)
			}
			owners[p.round] = p.worker
			if i > 0 {
				before := points[i-1]
				if p.ts <= before.ts {
					t.Errorf("stream %d: timestamp %d after %d (worker %d after %d)", s, p.ts, before.ts, p.worker, before.worker)
				}
				if p.value < before.value {
					t.Errorf("stream %d decreased from %v (worker %d) to %v (worker %d)", s, before.value, before.worker, p.value, p.worker)
				}
			}
		}
		if last := points[len(points)-1]; last.value != c.sent[s] {
			t.Errorf("stream %d ends at %v on worker %d, sent %v", s, last.value, last.worker, c.sent[s])
		}
	}
}
