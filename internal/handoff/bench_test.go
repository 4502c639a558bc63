package handoff_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/ring"
	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// The benchmarks here run the hand-over as a rescale from one worker to
// two does: two Handoff instances with their own conversion engine and
// durable store (frames journaled before they are applied, as the worker
// does), talking the peer protocol over loopback gRPC. Worker 0 holds every
// stream at epoch 1; epoch 2 lists both workers with worker 0 as the
// previous ring, so about half the streams move to worker 1.

// dataStart is the start of the first interval of every stream.
var dataStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Claude Code's token counter: per session, one stream by token type and
// model.
var (
	tokenTypes = []string{"input", "output", "cacheRead", "cacheCreation"}
	models     = []string{"claude-opus-4", "claude-sonnet-4"}
)

const streamsPerSession = 8 // len(tokenTypes) * len(models)

func sessionID(n int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", n, n%0xffff, n%0xfff, (n*7)%0xfff, n*2654435761)
}

// tokenUsage is one request with a delta point of round's interval for
// each stream in streams.
func tokenUsage(streams []int, round int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "claude-code")
	res.PutStr("service.version", "2.0.14")
	res.PutStr("os.type", "darwin")
	res.PutStr("host.arch", "arm64")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	sm.Scope().SetVersion("2.0.14")
	m := sm.Metrics().AppendEmpty()
	m.SetName("claude_code.token.usage")
	m.SetUnit("tokens")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dps := s.DataPoints()
	dps.EnsureCapacity(len(streams))
	for _, n := range streams {
		session := n / streamsPerSession
		dp := dps.AppendEmpty()
		attrs := dp.Attributes()
		attrs.EnsureCapacity(6)
		attrs.PutStr("session.id", sessionID(session))
		attrs.PutStr("user.account_uuid", sessionID(session/4+1<<30))
		attrs.PutStr("organization.id", sessionID(session%16+1<<31))
		attrs.PutStr("terminal.type", "iTerm.app")
		attrs.PutStr("type", tokenTypes[n%len(tokenTypes)])
		attrs.PutStr("model", models[(n/len(tokenTypes))%len(models)])
		dp.SetIntValue(int64(100 + n%50))
	}
	setRound(md, round)
	return md
}

// setRound dates every point of md in round's one-minute interval.
func setRound(md pmetric.Metrics, round int) {
	start := pcommon.NewTimestampFromTime(dataStart.Add(time.Duration(round) * time.Minute))
	end := start + pcommon.Timestamp(time.Minute)
	dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints()
	for i := range dps.Len() {
		dps.At(i).SetStartTimestamp(start)
		dps.At(i).SetTimestamp(end)
	}
}

// pointsPerRequest is the size of the requests filling and loading the
// workers.
const pointsPerRequest = 1000

func span(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

// peer is one worker of the benchmark: engine, durable store, hand-over.
type peer struct {
	name   string
	engine *convert.Engine
	store  *state.Store
	h      *handoff.Handoff
	// frameBytes and frames count the hand-over frames this worker
	// received and journaled.
	frameBytes, frames atomic.Int64
}

func newPeer(b testing.TB, ordinal int, keyer *ring.Keyer, tokenFile string) *peer {
	b.Helper()
	var defaults workerconfig.Config
	defaults.ApplyDefaults()
	engine, err := convert.NewEngine(convert.Config{
		MaxStreams:     4_000_000,
		MaxStale:       defaults.Conversion.MaxStale.Duration,
		LateDataWindow: workerconfig.GatewayRetryBudget,
	})
	if err != nil {
		b.Fatal(err)
	}
	store, err := state.Open(state.Options{Directory: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	// An empty directory: the restore only opens the journal.
	if _, err := store.Restore(context.Background(), engine, func(pmetric.Metrics) {}); err != nil {
		b.Fatal(err)
	}
	p := &peer{name: fmt.Sprintf("bench-worker-%d", ordinal), engine: engine, store: store}
	p.h, err = handoff.New(handoff.Options{
		Member:       p.name,
		Keyer:        keyer,
		PeerEndpoint: "127.0.0.1:0",
		TokenFile:    tokenFile,
		Engine:       func() *convert.Engine { return engine },
		Journal: func(ctx context.Context, frame []byte) (func(), error) {
			p.frameBytes.Add(int64(len(frame)))
			p.frames.Add(1)
			return store.RecordFrame(ctx, frame)
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	p.h.Start()
	p.h.SetReady(true)
	return p
}

func (p *peer) close(b testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.h.Close(ctx); err != nil {
		b.Errorf("closing %s's hand-over: %v", p.name, err)
	}
	if err := p.store.Close(ctx, nil); err != nil {
		b.Errorf("closing %s's store: %v", p.name, err)
	}
}

// pair is worker 0 holding every stream at epoch 1 and worker 1, which
// joins the ring at epoch 2.
type pair struct {
	keyer   *ring.Keyer
	workers [2]*peer
	members []ring.Member
}

func newPair(b testing.TB, streams int) *pair {
	b.Helper()
	keyer, err := ring.NewKeyer(ring.KeyStreamID, nil)
	if err != nil {
		b.Fatal(err)
	}
	tokenFile := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("bench-peer-token"), 0o600); err != nil {
		b.Fatal(err)
	}
	p := &pair{keyer: keyer}
	for i := range p.workers {
		p.workers[i] = newPeer(b, i, keyer, tokenFile)
		addr := p.workers[i].h.PeerAddr().String()
		p.members = append(p.members, ring.Member{Name: p.workers[i].name, Endpoint: addr, Peer: addr})
	}
	p.publish(b, ring.Membership{Epoch: 1, Members: p.members[:1]})
	for first := 0; first < streams; first += pointsPerRequest {
		n := min(pointsPerRequest, streams-first)
		res, err := p.workers[0].h.Apply(context.Background(), tokenUsage(span(first, n), 0))
		if err != nil || res.Applied != n {
			b.Fatalf("filling worker 0: applied %d of %d points (%s), error %v", res.Applied, n, res.Message(), err)
		}
	}
	if got := p.workers[0].engine.Streams(); got != streams {
		b.Fatalf("worker 0 holds %d streams, want %d", got, streams)
	}
	return p
}

// publish installs m on worker 1 first: a worker refuses frames of an
// epoch it has not seen yet, so the new owner learns of it before the old
// one starts sending.
func (p *pair) publish(b testing.TB, m ring.Membership) {
	b.Helper()
	doc, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for i := len(p.workers) - 1; i >= 0; i-- {
		if err := p.workers[i].h.Membership(doc); err != nil {
			b.Fatalf("installing membership epoch %d on %s: %v", m.Epoch, p.workers[i].name, err)
		}
	}
}

// grow publishes epoch 2, the ring of both workers handing over from
// worker 0 alone.
func (p *pair) grow(b testing.TB) {
	p.publish(b, ring.Membership{Epoch: 2, Members: p.members, Previous: p.members[:1]})
}

// awaitComplete waits until both workers report their part of epoch
// complete, as the operator reads it from /handoff.
func (p *pair) awaitComplete(b testing.TB, epoch uint64, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done := true
		var last [2]handoff.Status
		for i, w := range p.workers {
			last[i] = w.h.Status()
			done = done && last[i].Epoch == epoch && last[i].Complete
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("hand-over of epoch %d not complete within %s: %+v", epoch, timeout, last)
		}
		// Status counts moving streams over every shard (a few ms at a
		// million streams): polled more often, it would take a visible
		// share of the CPU from the hand-over it measures.
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *pair) close(b testing.TB) {
	for _, w := range p.workers {
		w.close(b)
	}
}

// BenchmarkHandoff measures one hand-over from one worker to two: from
// the new membership to both workers reporting it complete (every moved
// stream journaled and restored by its new owner, and forgotten by its old
// one). Bytes per moved stream are the frame bytes the new owner received.
func BenchmarkHandoff(b *testing.B) {
	for _, streams := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			var elapsed time.Duration
			var moved, bytes, frames int64
			for range b.N {
				b.StopTimer()
				p := newPair(b, streams)
				from, to := p.workers[0], p.workers[1]
				handedOff := from.h.Status().HandedOff
				b.StartTimer()
				start := time.Now()
				p.grow(b)
				p.awaitComplete(b, 2, 5*time.Minute)
				took := time.Since(start)
				b.StopTimer()
				n := from.h.Status().HandedOff - handedOff
				if n == 0 || int(n) >= streams {
					b.Fatalf("epoch 2 moved %d of %d streams", n, streams)
				}
				if from.engine.Streams()+to.engine.Streams() != streams || to.engine.Streams() != int(n) {
					b.Fatalf("after the hand-over worker 0 holds %d streams and worker 1 %d; %d of %d moved",
						from.engine.Streams(), to.engine.Streams(), n, streams)
				}
				elapsed += took
				moved += n
				bytes += to.frameBytes.Load()
				frames += to.frames.Load()
				p.close(b)
			}
			b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/handoff")
			b.ReportMetric(float64(moved)/float64(b.N), "moved-streams")
			b.ReportMetric(float64(bytes)/float64(moved), "bytes/moved-stream")
			b.ReportMetric(float64(moved)/elapsed.Seconds(), "moved-streams/s")
			b.ReportMetric(float64(frames)/float64(b.N), "frames/handoff")
		})
	}
}

// ingestLoad applies requests of the streams each worker owns at epoch 2
// through that worker's Handoff.Apply, as the gateways route them, from
// one goroutine per worker, until stop is closed. Each request is decoded
// from its encoding first, as the receiver does.
type ingestLoad struct {
	templates [2][][]byte // encoded requests by owner
	next      [2]int      // templates applied so far, by owner
	accepted  atomic.Int64
	refused   atomic.Int64 // requests refused with the forward queue full
	rejected  atomic.Int64
	failure   atomic.Pointer[string]
}

func newIngestLoad(b *testing.B, p *pair, streams int) *ingestLoad {
	b.Helper()
	m := ring.Membership{Epoch: 2, Members: p.members}
	var owned [2][]int
	for first := 0; first < streams; first += pointsPerRequest {
		ids := span(first, min(pointsPerRequest, streams-first))
		md := tokenUsage(ids, 0)
		rm := md.ResourceMetrics().At(0)
		sm := rm.ScopeMetrics().At(0)
		metric := sm.Metrics().At(0)
		level := p.keyer.Metric(p.keyer.Scope(p.keyer.Resource(rm.Resource()), sm.Scope()), metric)
		dps := metric.Sum().DataPoints()
		for i := range dps.Len() {
			o := m.Owner(p.keyer.Point(level, dps.At(i).Attributes()))
			owned[o] = append(owned[o], ids[i])
		}
	}
	l := &ingestLoad{}
	var marshaler pmetric.ProtoMarshaler
	for o := range owned {
		for first := 0; first < len(owned[o]); first += pointsPerRequest {
			ids := owned[o][first:min(first+pointsPerRequest, len(owned[o]))]
			enc, err := marshaler.MarshalMetrics(tokenUsage(ids, 0))
			if err != nil {
				b.Fatal(err)
			}
			l.templates[o] = append(l.templates[o], enc)
		}
		if len(l.templates[o]) == 0 {
			b.Fatalf("worker %d owns none of %d streams at epoch 2", o, streams)
		}
	}
	return l
}

// run loads p until stop is closed.
func (l *ingestLoad) run(p *pair, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for o := range l.templates {
		wg.Go(func() {
			var unmarshaler pmetric.ProtoUnmarshaler
			h := p.workers[o].h
			for {
				select {
				case <-stop:
					return
				default:
				}
				t := l.templates[o]
				k := l.next[o]
				l.next[o]++
				md, err := unmarshaler.UnmarshalMetrics(t[k%len(t)])
				if err != nil {
					l.fail(err.Error())
					return
				}
				// Every pass over the streams is the next interval; the
				// fill was round 0.
				setRound(md, 1+k/len(t))
				res, err := h.Apply(context.Background(), md)
				switch {
				case err != nil:
					// The gateway retries a refused request; the load goes on
					// with the next one, as other gateway queues would.
					l.refused.Add(1)
				default:
					l.accepted.Add(int64(res.Applied + res.Forwarded))
					l.rejected.Add(int64(res.RejectedTotal()))
				}
			}
		})
	}
	wg.Wait()
}

func (l *ingestLoad) fail(msg string) { l.failure.CompareAndSwap(nil, &msg) }

// measure runs the load until until returns, and returns the points
// accepted per second.
func (l *ingestLoad) measure(b *testing.B, p *pair, until func()) (float64, time.Duration) {
	b.Helper()
	stop := make(chan struct{})
	loaded := make(chan struct{})
	before := l.accepted.Load()
	start := time.Now()
	go func() {
		l.run(p, stop)
		close(loaded)
	}()
	until()
	close(stop)
	<-loaded
	took := time.Since(start)
	if f := l.failure.Load(); f != nil {
		b.Fatalf("load: %s", *f)
	}
	if n := l.rejected.Load(); n > 0 {
		b.Fatalf("load: %d points rejected", n)
	}
	return float64(l.accepted.Load()-before) / took.Seconds(), took
}

// BenchmarkHandoffIngest measures the points per second two workers accept
// while a hand-over from one to two runs, and with the same load once the
// two-worker ring is steady (epoch 3, nothing moving), over as long as
// the hand-over took. The load sends every stream to its owner at epoch 2,
// as the gateways do once they route by it: points of streams moving to
// worker 1 reach it before their record and are forwarded to worker 0
// until worker 0's done marker arrives.
func BenchmarkHandoffIngest(b *testing.B) {
	const streams = 100_000
	var during, steady float64
	var handoffTime time.Duration
	var refused int64
	for range b.N {
		b.StopTimer()
		p := newPair(b, streams)
		load := newIngestLoad(b, p, streams)
		b.StartTimer()
		rate, took := load.measure(b, p, func() {
			p.grow(b)
			p.awaitComplete(b, 2, 5*time.Minute)
		})
		b.StopTimer()
		during += rate
		handoffTime += took
		p.publish(b, ring.Membership{Epoch: 3, Members: p.members})
		p.awaitComplete(b, 3, time.Minute)
		rate, _ = load.measure(b, p, func() { time.Sleep(max(took, time.Second)) })
		steady += rate
		refused += load.refused.Load()
		p.close(b)
	}
	n := float64(b.N)
	b.ReportMetric(during/n, "points/s-during-handoff")
	b.ReportMetric(steady/n, "points/s-steady")
	b.ReportMetric(during/steady, "during/steady")
	b.ReportMetric(handoffTime.Seconds()/n, "s/handoff-under-load")
	b.ReportMetric(float64(refused)/n, "refused-requests")
}
