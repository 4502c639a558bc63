// Package telemetry owns the worker's view of itself: the self-metrics
// registry, the liveness and readiness state behind /healthz and /readyz,
// the HTTP server exposing them, and the process logger.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "deltapipeline_worker"

// Metrics holds every self-metric of the worker on its own registry, so that
// tests can build as many workers as they like in one process.
type Metrics struct {
	Registry *prometheus.Registry

	// Ingest path.
	ReceivedPoints    *prometheus.CounterVec // by transport
	AppliedPoints     prometheus.Counter
	DuplicatePoints   prometheus.Counter
	PassthroughPoints prometheus.Counter
	RejectedPoints    *prometheus.CounterVec // by reason
	RequestsRefused   *prometheus.CounterVec // by transport, reason
	ActiveStreams     prometheus.GaugeFunc
	// StreamLimit is conversion.maxStreams, so that a rule can compare
	// ActiveStreams with it.
	StreamLimit prometheus.Gauge

	// Emit loop.
	EmittedPoints  prometheus.Counter
	ExpiredStreams prometheus.Counter

	// Exporters.
	ExportRequests *prometheus.CounterVec   // by exporter, outcome
	ExportLatency  *prometheus.HistogramVec // by exporter
	ExportRetries  *prometheus.CounterVec   // by exporter
	ExportedSeries *prometheus.CounterVec   // by exporter
	DroppedPoints  *prometheus.CounterVec   // by exporter, reason
	QueueLength    *prometheus.GaugeVec     // by exporter
	QueueCapacity  *prometheus.GaugeVec     // by exporter
	ScrapeSeries   prometheus.Gauge

	// CheckpointInterval is state.checkpointInterval, so that a rule can
	// tell a stale checkpoint from a slow schedule.
	CheckpointInterval prometheus.Gauge
}

// NewMetrics registers every self-metric on a fresh registry. streams reports
// the engine's live stream count at scrape time; it may be nil until the
// engine exists.
func NewMetrics(streams func() int) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		ReceivedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "received_points_total",
			Help: "Data points decoded from OTLP requests, by transport (grpc, http).",
		}, []string{"transport"}),
		AppliedPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "applied_points_total",
			Help: "Delta points folded into per-stream state.",
		}),
		DuplicatePoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "duplicate_points_total",
			Help: "Delta points whose interval was already applied (redelivered by a retry); counted once.",
		}),
		PassthroughPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "passthrough_points_total",
			Help: "Points that need no conversion (cumulative, gauge, summary) forwarded unchanged to the exporters.",
		}),
		RejectedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rejected_points_total",
			Help: "Points refused by the converter and reported as OTLP partial success, by reason.",
		}, []string{"reason"}),
		RequestsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "refused_requests_total",
			Help: "Whole OTLP requests refused, by transport and reason (malformed, too_large, overloaded, not_ready, unsupported_media_type, method_not_allowed, journal).",
		}, []string{"transport", "reason"}),
		EmittedPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "emitted_points_total",
			Help: "Cumulative points emitted by the converter to the exporters.",
		}),
		ExpiredStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "expired_streams_total",
			Help: "Streams forgotten after conversion.maxStale without a point.",
		}),
		ExportRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "export_requests_total",
			Help: "Requests sent by an exporter, by exporter and outcome (success, failure).",
		}, []string{"exporter", "outcome"}),
		ExportLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "export_request_duration_seconds",
			Help:    "Time to send one export request including retries, by exporter.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"exporter"}),
		ExportRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "export_retries_total",
			Help: "Export attempts repeated after a retryable failure, by exporter.",
		}, []string{"exporter"}),
		ExportedSeries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "exported_points_total",
			Help: "Points or samples accepted by the destination, by exporter.",
		}, []string{"exporter"}),
		DroppedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "export_dropped_points_total",
			Help: "Points or samples an exporter gave up on, by exporter and reason.",
		}, []string{"exporter", "reason"}),
		QueueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "export_queue_length",
			Help: "Requests waiting in an exporter's queue.",
		}, []string{"exporter"}),
		QueueCapacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "export_queue_capacity",
			Help: "Capacity of an exporter's queue.",
		}, []string{"exporter"}),
		ScrapeSeries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "scrape_series",
			Help: "Series currently served by the Prometheus pull exporter.",
		}),
		StreamLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "stream_limit",
			Help: "Streams the converter may hold (conversion.maxStreams); points of further streams are rejected.",
		}),
		CheckpointInterval: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "checkpoint_interval_seconds",
			Help: "How often the worker writes a checkpoint (state.checkpointInterval); 0 without durable state.",
		}),
	}
	if streams == nil {
		streams = func() int { return 0 }
	}
	m.ActiveStreams = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "active_streams",
		Help: "Streams whose running total the converter holds.",
	}, func() float64 { return float64(streams()) })

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ReceivedPoints, m.AppliedPoints, m.DuplicatePoints, m.PassthroughPoints,
		m.RejectedPoints, m.RequestsRefused, m.ActiveStreams,
		m.EmittedPoints, m.ExpiredStreams,
		m.ExportRequests, m.ExportLatency, m.ExportRetries, m.ExportedSeries,
		m.DroppedPoints, m.QueueLength, m.QueueCapacity, m.ScrapeSeries,
		m.StreamLimit, m.CheckpointInterval,
	)
	return m
}

// InitExporter creates an exporter's request, retry, exported and dropped
// series at zero, so that they exist before the first event: a counter that
// appears with its first increment hides that increment from increase() and
// from the alert rules built on it.
func (m *Metrics) InitExporter(exporter string, dropReasons ...string) {
	m.ExportRequests.WithLabelValues(exporter, "success")
	m.ExportRequests.WithLabelValues(exporter, "failure")
	m.ExportRetries.WithLabelValues(exporter)
	m.ExportedSeries.WithLabelValues(exporter)
	for _, r := range dropReasons {
		m.DroppedPoints.WithLabelValues(exporter, r)
	}
}
