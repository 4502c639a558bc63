package receive

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

// refusalReasons are the reasons of refused_requests_total: the receivers'
// own and those the worker gives through UnavailableError.
var refusalReasons = []string{
	reasonMalformed, reasonTooLarge, reasonOverloaded, reasonUnsupportedMediaType, reasonMethodNotAllowed, reasonInternal,
	"not_ready", "journal", reasonConsumerError,
}

// metrics are what the receivers count: points decoded and requests refused.
type metrics struct {
	receivedPoints  *prometheus.CounterVec // by transport
	refusedRequests *prometheus.CounterVec // by transport, reason
	unauthenticated *prometheus.CounterVec // by transport
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		receivedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "received_points_total",
			Help: "Data points in the OTLP requests received, decoded or read in place, by transport (grpc, http).",
		}, []string{"transport"}),
		refusedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "refused_requests_total",
			Help: "Whole OTLP requests refused, by transport and reason (malformed, too_large, overloaded, not_ready, unsupported_media_type, method_not_allowed, journal, consumer_error, internal).",
		}, []string{"transport", "reason"}),
		unauthenticated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Name: "receive_unauthenticated_requests_total",
			Help: "OTLP requests refused because they carried no valid gateway token (receivers.otlp.authTokenFile), by transport; answered UNAUTHENTICATED (gRPC) or 401 (HTTP).",
		}, []string{"transport"}),
	}
	for _, c := range []prometheus.Collector{m.receivedPoints, m.refusedRequests, m.unauthenticated} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the receivers' metrics: %w", err)
		}
	}
	// Every series at zero from the start, so that the first refusal shows
	// in increase() and in the alert rules built on it.
	for _, transport := range Transports {
		m.receivedPoints.WithLabelValues(transport)
		m.unauthenticated.WithLabelValues(transport)
		for _, reason := range refusalReasons {
			m.refusedRequests.WithLabelValues(transport, reason)
		}
	}
	return m, nil
}
