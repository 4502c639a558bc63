package receive

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

// metrics are what the receivers count: points decoded and requests refused.
type metrics struct {
	receivedPoints  *prometheus.CounterVec // by transport
	refusedRequests *prometheus.CounterVec // by transport, reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		receivedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "received_points_total",
			Help: "Data points decoded from OTLP requests, by transport (grpc, http).",
		}, []string{"transport"}),
		refusedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "refused_requests_total",
			Help: "Whole OTLP requests refused, by transport and reason (malformed, too_large, overloaded, not_ready, unsupported_media_type, method_not_allowed, journal, consumer_error, internal).",
		}, []string{"transport", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.receivedPoints, m.refusedRequests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the receivers' metrics: %w", err)
		}
	}
	return m, nil
}
