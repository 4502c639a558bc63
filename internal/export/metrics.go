package export

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

// Metrics are the self-metrics every exporter counts, told apart by the
// exporter label (the exporter's Name). They are registered once per worker
// and shared by its exporters.
type Metrics struct {
	Requests       *prometheus.CounterVec   // by exporter, outcome (success, failure)
	Latency        *prometheus.HistogramVec // by exporter
	Retries        *prometheus.CounterVec   // by exporter
	ExportedPoints *prometheus.CounterVec   // by exporter; samples for remote write
	DroppedPoints  *prometheus.CounterVec   // by exporter, reason; samples for remote write
	QueueLength    *prometheus.GaugeVec     // by exporter
	QueueCapacity  *prometheus.GaugeVec     // by exporter
}

// NewMetrics registers the exporters' metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "export_requests_total",
			Help: "Requests sent by an exporter, by exporter and outcome (success, failure).",
		}, []string{"exporter", "outcome"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: telemetry.Namespace, Name: "export_request_duration_seconds",
			Help:    "Time to send one export request including retries, by exporter.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"exporter"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "export_retries_total",
			Help: "Export attempts repeated after a retryable failure, by exporter.",
		}, []string{"exporter"}),
		ExportedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "exported_points_total",
			Help: "Points or samples accepted by the destination, by exporter.",
		}, []string{"exporter"}),
		DroppedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "export_dropped_points_total",
			Help: "Points or samples an exporter gave up on, by exporter and reason.",
		}, []string{"exporter", "reason"}),
		QueueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "export_queue_length",
			Help: "Requests waiting in an exporter's queue.",
		}, []string{"exporter"}),
		QueueCapacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: telemetry.Namespace, Name: "export_queue_capacity",
			Help: "Capacity of an exporter's queue.",
		}, []string{"exporter"}),
	}
	for _, c := range []prometheus.Collector{
		m.Requests, m.Latency, m.Retries, m.ExportedPoints, m.DroppedPoints, m.QueueLength, m.QueueCapacity,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the exporters' metrics: %w", err)
		}
	}
	return m, nil
}

// Dropped counts n points or samples exporter gave up on, for reason.
func (m *Metrics) Dropped(exporter, reason string, n int) {
	m.DroppedPoints.WithLabelValues(exporter, reason).Add(float64(n))
}

// Init creates an exporter's request, retry, exported and dropped series at
// zero, so that they exist before the first event: a counter that appears
// with its first increment hides that increment from increase() and from
// the alert rules built on it.
func (m *Metrics) Init(exporter string, dropReasons ...string) {
	m.Requests.WithLabelValues(exporter, "success")
	m.Requests.WithLabelValues(exporter, "failure")
	m.Retries.WithLabelValues(exporter)
	m.ExportedPoints.WithLabelValues(exporter)
	for _, r := range dropReasons {
		m.DroppedPoints.WithLabelValues(exporter, r)
	}
}
