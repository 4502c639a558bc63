package handoff

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deltapipeline/deltapipeline/internal/telemetry"
)

// metrics are the hand-over's self-metrics, listed in docs/worker.md.
type metrics struct {
	epoch               prometheus.Gauge
	pending             prometheus.Gauge
	streamsSent         prometheus.Counter
	streamsReceived     prometheus.Counter
	streamsDuplicate    prometheus.Counter
	streamsRefused      prometheus.Counter
	streamsForwarded    prometheus.Counter
	pointsForwarded     prometheus.Counter
	forwardRequestsSent prometheus.Counter
	pointsReceived      prometheus.Counter
	forwardRefused      prometheus.Counter
	peerErrors          *prometheus.CounterVec
	refused             *prometheus.CounterVec
	membershipErrors    prometheus.Counter
	duration            prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, h *Handoff) (*metrics, error) {
	n := func(name string) string { return telemetry.Namespace + "_handoff_" + name }
	m := &metrics{
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: n("membership_epoch"),
			Help: "Membership epoch this worker acts on."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: n("pending_entries"),
			Help: "Stream records, forwarded requests and done markers waiting for a peer's acknowledgement."}),
		streamsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: n("streams_sent_total"),
			Help: "Streams handed over to their new owner and acknowledged by it."}),
		streamsReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: n("streams_received_total"),
			Help: "Streams received from their previous owner."}),
		streamsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{Name: n("streams_duplicate_total"),
			Help: "Stream records received for a stream held already (a redelivery); the held state is kept."}),
		streamsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: n("streams_refused_total"),
			Help: "Stream records received that could not be restored (malformed, or beyond the stream limit)."}),
		streamsForwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: n("streams_forwarded_total"),
			Help: "Stream records received for a stream another worker owns at this worker's epoch, passed on to it."}),
		pointsForwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: n("points_forwarded_total"),
			Help: "Points of streams held by another worker, queued for it."}),
		forwardRequestsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: n("forward_requests_sent_total"),
			Help: "Requests of forwarded points acknowledged by their peer."}),
		pointsReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: n("points_received_total"),
			Help: "Points forwarded by peers."}),
		forwardRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: n("points_forward_refused_total"),
			Help: "Points whose request was refused, retryable, because the queue to their holder was full."}),
		peerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("peer_errors_total"),
			Help: "Failed calls to a peer, by reason; the call is retried."}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: n("peer_requests_refused_total"),
			Help: "Peer calls this worker refused, by reason."}, []string{"reason"}),
		membershipErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: n("membership_errors_total"),
			Help: "Published memberships this worker could not act on."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: n("duration_seconds"),
			Help:    "Time from a new membership to this worker's part of the hand-over being acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
	}
	for _, reason := range []string{"unauthenticated", "malformed", "malformed_points", "not_ready", "epoch_ahead", "journal"} {
		m.refused.WithLabelValues(reason)
	}
	for _, reason := range []string{"unavailable", "unauthenticated", "epoch_ahead", "timeout", "refused", "other"} {
		m.peerErrors.WithLabelValues(reason)
	}
	moving := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: n("moving_streams"),
		Help: "Streams handed over and not yet acknowledged by their new owner."},
		func() float64 { return float64(h.Status().Moving) })
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.epoch, m.pending, m.streamsSent, m.streamsReceived, m.streamsDuplicate,
		m.streamsRefused, m.streamsForwarded, m.pointsForwarded, m.forwardRequestsSent, m.pointsReceived, m.forwardRefused, m.peerErrors,
		m.refused, m.membershipErrors, m.duration, moving} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the hand-over metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) refuse(reason string) { m.refused.WithLabelValues(reason).Inc() }
