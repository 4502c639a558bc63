package harness

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Self-metrics read for the live status. The gateway's are the upstream
// collector's own; the worker's are documented in docs/worker.md.
const (
	// The collector exposes its counters without the _total suffix.
	gatewayAcceptedPoints = "otelcol_receiver_accepted_metric_points"
	workerActiveStreams   = "deltapipeline_worker_active_streams"
	workerAppliedPoints   = "deltapipeline_worker_applied_points_total"
	workerRejectedPoints  = "deltapipeline_worker_rejected_points_total"
	workerDroppedExports  = "deltapipeline_worker_export_dropped_points_total"
)

// Status is one look at the running pipeline.
type Status struct {
	At time.Time
	// GatewayAcceptedPoints is the sum over gateways of points their otlp
	// receiver accepted since they started.
	GatewayAcceptedPoints float64
	// WorkerStreams is each worker's live stream count; -1 while a worker is down.
	WorkerStreams []float64
	// WorkerRejectedPoints and WorkerDroppedPoints sum over the workers
	// that are up (counters restart with a worker).
	WorkerRejectedPoints float64
	WorkerDroppedPoints  float64
	ExportedSeries       int
	ExportedSamples      int64
}

// Status scrapes every gateway and worker. A process that is down or does
// not answer counts as down rather than failing the look.
func (p *Pipeline) Status(ctx context.Context) Status {
	p.workersMu.Lock()
	workers := append([]*Worker(nil), p.Workers...)
	p.workersMu.Unlock()
	s := Status{At: time.Now(), WorkerStreams: make([]float64, len(workers))}
	for _, g := range p.Gateways {
		if m, err := ScrapeMetrics(ctx, g.MetricsURL); err == nil {
			s.GatewayAcceptedPoints += m.Sum(gatewayAcceptedPoints, nil)
		}
	}
	for i, w := range workers {
		m, err := ScrapeMetrics(ctx, w.MetricsURL())
		if err != nil || !w.Running() {
			s.WorkerStreams[i] = -1
			continue
		}
		s.WorkerStreams[i] = m.Sum(workerActiveStreams, nil)
		s.WorkerRejectedPoints += m.Sum(workerRejectedPoints, nil)
		s.WorkerDroppedPoints += m.Sum(workerDroppedExports, nil)
	}
	rs := p.Receiver.Stats()
	s.ExportedSeries, s.ExportedSamples = rs.Series, rs.Samples
	return s
}

// Line renders s as one status line; prev (zero for the first) gives the rate.
func (s Status) Line(prev Status) string {
	rate := 0.0
	if !prev.At.IsZero() {
		if dt := s.At.Sub(prev.At).Seconds(); dt > 0 {
			rate = (s.GatewayAcceptedPoints - prev.GatewayAcceptedPoints) / dt
		}
	}
	var total float64
	for _, n := range s.WorkerStreams {
		if n > 0 {
			total += n
		}
	}
	shares := make([]string, len(s.WorkerStreams))
	for i, n := range s.WorkerStreams {
		switch {
		case n < 0:
			shares[i] = fmt.Sprintf("w%d down", i)
		case total == 0:
			shares[i] = fmt.Sprintf("w%d 0", i)
		default:
			shares[i] = fmt.Sprintf("w%d %.0f (%.0f%%)", i, n, 100*n/total)
		}
	}
	return fmt.Sprintf("into gateways %6.0f points/s | streams per worker: %s | exported %d series, %d samples | rejected %.0f, dropped %.0f",
		rate, strings.Join(shares, ", "), s.ExportedSeries, s.ExportedSamples, s.WorkerRejectedPoints, s.WorkerDroppedPoints)
}
