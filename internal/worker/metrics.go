package worker

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

// engineMetrics count what the worker learns from the conversion engine's
// results on the ingest path and in the emit loop. The engine itself counts
// nothing: it returns what it did, and the worker, which runs it, counts.
type engineMetrics struct {
	appliedPoints     prometheus.Counter
	duplicatePoints   prometheus.Counter
	passthroughPoints prometheus.Counter
	inPlacePoints     prometheus.Counter
	rejectedPoints    *prometheus.CounterVec // by reason
	emittedPoints     prometheus.Counter
	expiredStreams    prometheus.Counter
}

// newEngineMetrics registers the engine-side metrics on reg; streams reports
// the live stream count at scrape time.
func newEngineMetrics(reg prometheus.Registerer, streams func() int) (*engineMetrics, error) {
	m := &engineMetrics{
		appliedPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "applied_points_total",
			Help: "Delta points folded into per-stream state.",
		}),
		duplicatePoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "duplicate_points_total",
			Help: "Delta points whose interval was already applied (redelivered by a retry); counted once.",
		}),
		passthroughPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "passthrough_points_total",
			Help: "Points that need no conversion (cumulative, gauge, summary) forwarded unchanged to the exporters.",
		}),
		inPlacePoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "in_place_points_total",
			Help: "Points of held streams read from the request's protobuf bytes in place, without decoding them; the other received points were decoded.",
		}),
		rejectedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "rejected_points_total",
			Help: "Points refused by the converter and reported as OTLP partial success, by reason.",
		}, []string{"reason"}),
		emittedPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "emitted_points_total",
			Help: "Cumulative points emitted by the converter to the exporters.",
		}),
		expiredStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "expired_streams_total",
			Help: "Streams forgotten after conversion.maxStale without a point.",
		}),
	}
	activeStreams := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "active_streams",
		Help: "Streams whose running total the converter holds.",
	}, func() float64 { return float64(streams()) })
	for _, c := range []prometheus.Collector{
		m.appliedPoints, m.duplicatePoints, m.passthroughPoints, m.inPlacePoints, m.rejectedPoints,
		m.emittedPoints, m.expiredStreams, activeStreams,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the worker's metrics: %w", err)
		}
	}
	// Every reason at zero from the start, so that the first rejection
	// shows in increase() and in the alert rules built on it.
	for r := range convert.NumReasons {
		m.rejectedPoints.WithLabelValues(r.String())
	}
	return m, nil
}

// registerLimits publishes the configured stream limit and checkpoint
// interval, so that rules can compare active_streams and the checkpoint age
// with what the worker was configured for.
func registerLimits(reg prometheus.Registerer, maxStreams int, checkpointInterval time.Duration) error {
	streamLimit := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "stream_limit",
		Help: "Streams the converter may hold (conversion.maxStreams); points of further streams are rejected.",
	})
	interval := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Name: "checkpoint_interval_seconds",
		Help: "How often the worker writes a checkpoint (state.checkpointInterval); 0 without durable state.",
	})
	streamLimit.Set(float64(maxStreams))
	interval.Set(checkpointInterval.Seconds())
	for _, c := range []prometheus.Collector{streamLimit, interval} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering the worker's limits: %w", err)
		}
	}
	return nil
}

// countApply counts the result of applying one request.
func (m *engineMetrics) countApply(res convert.Result) {
	m.appliedPoints.Add(float64(res.Applied))
	m.duplicatePoints.Add(float64(res.Duplicates))
	m.passthroughPoints.Add(float64(res.Passthrough))
	for reason, n := range res.Rejected {
		if n > 0 {
			m.rejectedPoints.WithLabelValues(convert.Reason(reason).String()).Add(float64(n))
		}
	}
}

// countEmit counts the result of one emit.
func (m *engineMetrics) countEmit(res convert.EmitResult) {
	m.emittedPoints.Add(float64(res.Points))
	m.expiredStreams.Add(float64(res.Expired))
}
