package export

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// request stands for one export request of a given number of points.
type request struct{ points int }

// gatedSender sends nothing until let through, so that tests decide how
// far the sender is behind.
type gatedSender struct {
	started chan int
	gate    chan struct{}
	mu      sync.Mutex
	sent    []int
}

func newGatedSender() *gatedSender {
	return &gatedSender{started: make(chan int, 16), gate: make(chan struct{})}
}

func (s *gatedSender) send(ctx context.Context, r request) {
	s.started <- r.points
	select {
	case <-s.gate:
		s.mu.Lock()
		s.sent = append(s.sent, r.points)
		s.mu.Unlock()
	case <-ctx.Done():
	}
}

func startTestQueue(t *testing.T, capacity int, s *gatedSender) (*Queue[request], *prometheus.Registry, *Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	q := StartQueue(t.Context(), QueueConfig[request]{
		Exporter: "otlp",
		Capacity: capacity,
		Size:     func(r request) int { return r.points },
		Unit:     "points",
		Metrics:  m,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, s.send)
	return q, reg, m
}

func exposition(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestQueueCountsWhatItGivesUpByReason(t *testing.T) {
	s := newGatedSender()
	q, reg, m := startTestQueue(t, 1, s)
	if err := q.Enqueue(request{points: 1}); err != nil {
		t.Fatal(err)
	}
	<-s.started // the sender holds the first request; the queue is empty again
	for _, points := range []int{3, 5} {
		if err := q.Enqueue(request{points: points}); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(m.QueueLength.WithLabelValues("otlp")); got != 1 {
		t.Errorf("queue length %v, want 1", got)
	}
	close(s.gate)
	if err := q.Shutdown(t.Context()); err != nil {
		t.Fatalf("flush with time to spare: %v", err)
	}
	if err := q.Enqueue(request{points: 7}); err == nil || !strings.Contains(err.Error(), "queueing 7 points") {
		t.Errorf("enqueue after shutdown: %v, want a refusal naming 7 points", err)
	}
	if got := s.sent; len(got) != 2 || got[0] != 1 || got[1] != 5 {
		t.Errorf("sent %v, want [1 5]: the full queue gives up its oldest request", got)
	}
	got := exposition(t, reg)
	for _, want := range []string{
		`deltapipeline_worker_export_dropped_points_total{exporter="otlp",reason="queue_full"} 3`,
		`deltapipeline_worker_export_dropped_points_total{exporter="otlp",reason="shutdown"} 7`,
		`deltapipeline_worker_export_queue_capacity{exporter="otlp"} 1`,
		`deltapipeline_worker_export_queue_length{exporter="otlp"} 0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("self-metrics lack %q:\n%s", want, got)
		}
	}
}

func TestQueueShutdownCountsWhatTimeDidNotAllow(t *testing.T) {
	s := newGatedSender()
	q, _, m := startTestQueue(t, 4, s)
	for _, points := range []int{1, 2, 4} {
		if err := q.Enqueue(request{points: points}); err != nil {
			t.Fatal(err)
		}
	}
	<-s.started
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	err := q.Shutdown(ended)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "6 queued points not sent") {
		t.Errorf("shutdown out of time: %v, want context.Canceled and 6 points not sent", err)
	}
	if got := testutil.ToFloat64(m.DroppedPoints.WithLabelValues("otlp", DropShutdown)); got != 6 {
		t.Errorf("dropped at shutdown %v, want 6", got)
	}
}

func TestAwaitBacklogWakesWhenTheSenderTakesARequest(t *testing.T) {
	s := newGatedSender()
	q, _, _ := startTestQueue(t, 8, s)
	for _, points := range []int{1, 1, 1} {
		if err := q.Enqueue(request{points: points}); err != nil {
			t.Fatal(err)
		}
	}
	<-s.started // two wait behind the one being sent
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if err := q.AwaitBacklog(ended, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("await with 2 waiting for at most 1 on an ended context: %v", err)
	}
	awaited := make(chan error, 1)
	go func() { awaited <- q.AwaitBacklog(t.Context(), 1) }()
	s.gate <- struct{}{} // the first send completes; the sender takes the second
	if err := <-awaited; err != nil {
		t.Fatal(err)
	}
	if n := q.Pending(); n > 1 {
		t.Errorf("%d pending after the await returned, want at most 1", n)
	}
	close(s.gate)
	if err := q.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}
