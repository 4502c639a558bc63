package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// Report compares what the load generator sent with every sample the
// receiver stored.
type Report struct {
	SentSeries      int
	SentStreams     int
	SentPoints      int64
	ReceivedSeries  int
	ReceivedSamples int64
	// ExactMatches counts sent series whose latest value equals the sum of
	// the deltas sent, exactly (float64 equality).
	ExactMatches int
	// SeriesByWorker counts received series per worker.
	SeriesByWorker []int

	Missing    []string   // sent, never received
	Mismatched []Mismatch // received, latest value differs from what was sent
	Unexpected []string   // received, never sent
	// Decreasing series went down at some point: a counter reset as
	// Prometheus would see it.
	Decreasing []string
	// OutOfOrder series received a sample older than one before it, or a
	// different value for a timestamp already received: Prometheus would
	// reject it.
	OutOfOrder []string
	// SplitAcrossWorkers series were written by more than one worker at
	// overlapping times: in timestamp order, a worker wrote the series
	// again after another one had.
	SplitAcrossWorkers []string
	// Moved series were written by more than one worker, each taking over
	// from the one before: their stream was handed over. A problem unless
	// moves are allowed (AllowingMoves), as across a rescale.
	Moved []string
	// runs are the writers of each series with more than one, in
	// timestamp order, one entry per run of samples from one worker.
	runs         map[string][]int
	movesAllowed bool
}

// AllowingMoves is the report for a run during which the ring changed
// rescales times: a stream may change owner once per change (a stream
// handed from worker 0 to 4 on a scale-up may go back to 0 on a scale-down),
// but a series whose writer changed more often than that was written by two
// workers at once.
func (r Report) AllowingMoves(rescales int) Report {
	r.movesAllowed = true
	r.SplitAcrossWorkers, r.Moved = nil, nil
	for _, key := range slices.Sorted(maps.Keys(r.runs)) {
		if runs := r.runs[key]; len(runs)-1 > rescales {
			r.SplitAcrossWorkers = append(r.SplitAcrossWorkers, fmt.Sprintf("%s (writers in time order %v)", key, runs))
		} else {
			r.Moved = append(r.Moved, fmt.Sprintf("%s (workers in time order %v)", key, runs))
		}
	}
	return r
}

// Mismatch is a series whose final value is wrong.
type Mismatch struct {
	Series    string
	Sent, Got float64
}

// Verify builds the report.
func Verify(sent totals.Totals, received map[string][]Sample, workers int) Report {
	r := Report{
		SentSeries:     len(sent.Series),
		SentStreams:    sent.Streams,
		SentPoints:     sent.Points,
		ReceivedSeries: len(received),
		SeriesByWorker: make([]int, workers),
		runs:           map[string][]int{},
	}
	for _, key := range slices.Sorted(maps.Keys(received)) {
		samples := received[key]
		r.ReceivedSamples += int64(len(samples))
		if _, ok := sent.Series[key]; !ok {
			r.Unexpected = append(r.Unexpected, key)
		}
		runs := writerRuns(samples)
		switch {
		case len(runs) > len(writers(samples)):
			// A worker came back after another wrote: two at once, unless
			// the ring changed twice (see AllowingMoves).
			r.runs[key] = runs
			r.SplitAcrossWorkers = append(r.SplitAcrossWorkers, fmt.Sprintf("%s (writers in time order %v)", key, runs))
		case len(runs) > 1:
			r.runs[key] = runs
			r.Moved = append(r.Moved, fmt.Sprintf("%s (workers in time order %v)", key, runs))
		}
		if last := runs[len(runs)-1]; last < workers {
			r.SeriesByWorker[last]++
		}
		if i := firstOutOfOrder(samples); i > 0 {
			r.OutOfOrder = append(r.OutOfOrder, fmt.Sprintf("%s (sample %d of %d: %s after %s)", key, i, len(samples), samples[i], samples[i-1]))
		}
		if i := firstDecrease(samples); i > 0 {
			r.Decreasing = append(r.Decreasing, key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(sent.Series)) {
		samples, ok := received[key]
		if !ok {
			r.Missing = append(r.Missing, key)
			continue
		}
		want, got := sent.Series[key], latest(samples).Value
		if got == want {
			r.ExactMatches++
		} else {
			r.Mismatched = append(r.Mismatched, Mismatch{Series: key, Sent: want, Got: got})
		}
	}
	return r
}

// OK reports whether every sent series arrived exactly, and nothing else is
// wrong.
func (r Report) OK() bool { return len(r.Problems()) == 0 }

// Problems describes each failed property, with up to five examples.
func (r Report) Problems() []string {
	var out []string
	add := func(what string, items []string) {
		if len(items) > 0 {
			out = append(out, fmt.Sprintf("%d %s, e.g. %s", len(items), what, strings.Join(items[:min(5, len(items))], "; ")))
		}
	}
	add("sent series never received", r.Missing)
	mismatched := make([]string, len(r.Mismatched))
	for i, m := range r.Mismatched {
		mismatched[i] = fmt.Sprintf("%s sent %v got %v", m.Series, m.Sent, m.Got)
	}
	add("series whose final value differs from what was sent", mismatched)
	add("received series that were never sent", r.Unexpected)
	add("series that decreased (a counter reset)", r.Decreasing)
	add("series with a sample older than an earlier one or a changed value for a timestamp", r.OutOfOrder)
	add("series written by two workers at overlapping times", r.SplitAcrossWorkers)
	if !r.movesAllowed {
		add("series that moved from one worker to another", r.Moved)
	}
	return out
}

// Figures is the one-line summary printed by the suite and the demo.
func (r Report) Figures() string {
	return fmt.Sprintf("sent %d points on %d streams = %d Prometheus series; received %d series, %d samples (per worker, by last writer: %v series); exact matches %d/%d; missing %d, wrong %d, unexpected %d, decreasing %d, out of order %d, split across workers %d, moved between workers %d",
		r.SentPoints, r.SentStreams, r.SentSeries, r.ReceivedSeries, r.ReceivedSamples, r.SeriesByWorker,
		r.ExactMatches, r.SentSeries, len(r.Missing), len(r.Mismatched), len(r.Unexpected), len(r.Decreasing), len(r.OutOfOrder), len(r.SplitAcrossWorkers), len(r.Moved))
}

// WaitForTotals polls the receiver until every sent series shows its sent
// value or timeout passes, then reports on everything received.
func (p *Pipeline) WaitForTotals(ctx context.Context, sent totals.Totals, timeout time.Duration) Report {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for !allReached(sent, p.Receiver.LastValues()) {
		select {
		case <-ctx.Done():
			return Verify(sent, p.Receiver.Series(), len(p.Workers))
		case <-ticker.C:
		}
	}
	// One more conversion interval, so a late extra sample (a wrong one)
	// would be seen too.
	select {
	case <-ctx.Done():
	case <-time.After(2 * p.ConversionInterval):
	}
	return Verify(sent, p.Receiver.Series(), len(p.Workers))
}

func allReached(sent totals.Totals, last map[string]float64) bool {
	for key, want := range sent.Series {
		if got, ok := last[key]; !ok || got != want {
			return false
		}
	}
	return true
}

// writerRuns is the sequence of workers that wrote the series, in
// timestamp order, each run of one worker's samples once: [0 3] for a
// stream handed from worker 0 to worker 3, [0 3 0] for two writers at once.
func writerRuns(samples []Sample) []int {
	sorted := slices.Clone(samples)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].TimestampMs < sorted[j].TimestampMs })
	var runs []int
	for _, s := range sorted {
		if len(runs) == 0 || runs[len(runs)-1] != s.Worker {
			runs = append(runs, s.Worker)
		}
	}
	return runs
}

func writers(samples []Sample) []int {
	seen := map[int]bool{}
	for _, s := range samples {
		seen[s.Worker] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// firstOutOfOrder checks arrival order the way Prometheus's TSDB does:
// timestamps never go back; a repeated timestamp must repeat its value (a
// redelivered request), anything else is a conflicting sample. It returns
// the index of the first offending sample, or 0.
func firstOutOfOrder(samples []Sample) int {
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		if cur.TimestampMs < prev.TimestampMs || (cur.TimestampMs == prev.TimestampMs && cur.Value != prev.Value) {
			return i
		}
	}
	return 0
}

// firstDecrease returns the index, in timestamp order, of the first sample
// lower than the one before it, or 0.
func firstDecrease(samples []Sample) int {
	sorted := slices.Clone(samples)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].TimestampMs < sorted[j].TimestampMs })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Value < sorted[i-1].Value {
			return i
		}
	}
	return 0
}

func latest(samples []Sample) Sample {
	last := samples[0]
	for _, s := range samples[1:] {
		if s.TimestampMs >= last.TimestampMs {
			last = s
		}
	}
	return last
}
