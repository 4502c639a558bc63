package convert

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// delivery is one delta point as a writer sends it.
type delivery struct {
	stream     string
	start, end float64
	value      float64
}

func applyDeliveries(e *Engine, ds []delivery) Result {
	req := newRequest()
	for _, d := range ds {
		req.deltaSum("tokens", d.start, d.end, d.value, withAttr("session.id", d.stream))
	}
	return e.Apply(req.md)
}

func totals(t *testing.T, e *Engine) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, p := range emitPoints(t, e, epoch.Add(24*time.Hour)) {
		out[p.attrs] = p.value
	}
	return out
}

// Redeliveries within the remembered intervals, in any order and any
// batching, never change totals: every distinct point counts exactly once.
func TestPropertyRedeliveryCountsOnce(t *testing.T) {
	for seed := uint64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			e := newTestEngine(t)
			want := map[string]float64{}
			const streams, rounds = 8, 30
			var history [][]delivery
			for r := range rounds {
				var batch []delivery
				for s := range streams {
					d := delivery{stream: fmt.Sprint("s", s), start: float64(10 * r), end: float64(10*r + 10), value: float64(rng.IntN(100))}
					want["session.id="+d.stream+","] += d.value
					batch = append(batch, d)
				}
				history = append(history, batch)
				// Gateways retry whole batches of the last few rounds.
				for back := 1; back < recentSingleWriter && back <= r; back++ {
					if rng.IntN(3) == 0 {
						batch = append(batch, history[r-back]...)
					}
				}
				rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				for len(batch) > 0 {
					n := 1 + rng.IntN(len(batch))
					if res := applyDeliveries(e, batch[:n]); res.RejectedTotal() != 0 {
						t.Fatalf("round %d refused points: %s", r, res.Message())
					}
					batch = batch[n:]
				}
			}
			got := totals(t, e)
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("stream %s: total %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// Several writers of one stream with unaligned intervals are all summed in
// shared mode, even with their own retries interleaved.
func TestPropertySharedWritersAreSummed(t *testing.T) {
	for seed := uint64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			e := newTestEngine(t)
			const writers, rounds = 3, 15
			var want float64
			var sent [][]delivery
			for range writers {
				offset := rng.Float64() * 10
				var ds []delivery
				for r := range rounds {
					d := delivery{stream: "shared", start: offset + float64(10*r), end: offset + float64(10*r+10), value: float64(1 + rng.IntN(50))}
					want += d.value
					ds = append(ds, d)
				}
				sent = append(sent, ds)
			}
			// Writers export on the same period, in any order within it.
			for r := range rounds {
				for _, w := range rng.Perm(writers) {
					batch := []delivery{sent[w][r]}
					if r > 0 && rng.IntN(2) == 0 {
						batch = append(batch, sent[w][r-1])
					}
					if res := applyDeliveries(e, batch); res.RejectedTotal() != 0 {
						t.Fatalf("round %d writer %d refused: %s", r, w, res.Message())
					}
				}
			}
			if got := totals(t, e)["session.id=shared,"]; got != want {
				t.Fatalf("total %v, want %v", got, want)
			}
		})
	}
}

// Two writers of one stream, exporting every second, reach the worker
// through two gateways. Writer
// A's gateway stalls (its queue waits out a retry backoff) right after a
// request the worker applied but never acknowledged; meanwhile the other
// gateway delivers a burst of writer B's intervals, all newer than
// anything applied so far, so nothing yet shows that the stream has two
// writers. When the stalled gateway catches up, its redelivery counts once
// and every one of writer A's queued points counts.
func TestPropertyStalledGatewayBacklogCounts(t *testing.T) {
	for seed := uint64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 13))
			before, burst := 1+rng.IntN(6), recentSingleWriter+1+rng.IntN(20)
			offset := 0.1 + rng.Float64()*0.8
			clock := &fakeClock{now: epoch.Add(time.Duration(before+burst+5) * time.Second)}
			e := newTestEngine(t, withClock(clock))
			point := func(start float64) delivery {
				return delivery{stream: "shared", start: start, end: start + 1, value: float64(1 + rng.IntN(9))}
			}
			var want float64
			for r := range before {
				a := point(float64(r))
				want += a.value
				applyDeliveries(e, []delivery{a})
			}
			unacknowledged := point(float64(before))
			want += unacknowledged.value
			applyDeliveries(e, []delivery{unacknowledged})
			queuedA := []delivery{unacknowledged}
			for r := before + 1; r <= before+burst; r++ {
				a, b := point(float64(r)), point(float64(r)+offset)
				want += a.value + b.value
				queuedA = append(queuedA, a)
				if res := applyDeliveries(e, []delivery{b}); res.Applied != 1 {
					t.Fatalf("writer B round %d: %+v", r, res)
				}
			}
			var res Result
			for _, a := range queuedA {
				r := applyDeliveries(e, []delivery{a})
				res.Applied += r.Applied
				res.Duplicates += r.Duplicates
				if r.RejectedTotal() != 0 {
					t.Fatalf("stalled gateway's backlog refused: %s", r.Message())
				}
			}
			if res.Duplicates != 1 || res.Applied != len(queuedA)-1 {
				t.Fatalf("backlog: %+v, want %d applied and 1 duplicate", res, len(queuedA)-1)
			}
			if got := totals(t, e)["session.id=shared,"]; got != want {
				t.Fatalf("total %v, want %v", got, want)
			}
		})
	}
}

// A stream exported once a minute forgets old intervals and never pays for
// the larger interval memory, however long it lives.
func TestMinuteStreamsKeepTheSmallIntervalMemory(t *testing.T) {
	clock := &fakeClock{now: epoch}
	e := newTestEngine(t, withClock(clock))
	for r := range 20 {
		clock.now = epoch.Add(time.Duration(60*r+61) * time.Second)
		if res := applyDeliveries(e, []delivery{{stream: "s", start: float64(60 * r), end: float64(60*r + 60), value: 1}}); res.Applied != 1 {
			t.Fatalf("round %d: %+v", r, res)
		}
	}
	for i := range e.shards {
		sh := &e.shards[i]
		for slot := uint32(0); slot < sh.used; slot++ {
			if s := sh.at(slot); s.kind != 0 && s.ext != nil {
				t.Fatalf("stream holds the larger interval memory (%d intervals remembered)", s.ringLen)
			}
		}
	}
	if got := totals(t, e)["session.id=s,"]; got != 20 {
		t.Fatalf("total %v, want 20", got)
	}
}

// Concurrent Apply and Emit calls lose nothing.
func TestConcurrentApplyAndEmit(t *testing.T) {
	e := newTestEngine(t)
	const workers, rounds, streamsPerWorker = 4, 50, 20
	var wg sync.WaitGroup
	stop := make(chan struct{})
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for {
			select {
			case <-stop:
				return
			default:
				emitPoints(t, e, epoch)
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var ds []delivery
				for s := range streamsPerWorker {
					ds = append(ds, delivery{stream: fmt.Sprintf("w%d-s%d", w, s), start: float64(r), end: float64(r + 1), value: 1})
				}
				if res := applyDeliveries(e, ds); res.Applied != streamsPerWorker {
					t.Errorf("worker %d round %d: %+v", w, r, res)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-emitted
	out := pmetricsAll(t, e)
	if len(out) != workers*streamsPerWorker {
		t.Fatalf("got %d streams, want %d", len(out), workers*streamsPerWorker)
	}
	for _, p := range out {
		if p.value != rounds {
			t.Fatalf("stream %s total %v, want %d", p.attrs, p.value, rounds)
		}
	}
}

func pmetricsAll(t *testing.T, e *Engine) []emitted {
	t.Helper()
	out := pmetric.NewMetrics()
	e.EmitAll(epoch, out)
	return collect(t, out)
}
