package routerexporter

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Names of the exporter's own metrics, as the collector's Prometheus reader
// exposes them (counters without a _total suffix, like the collector's own
// otelcol_receiver_accepted_metric_points).
const (
	metricSent           = "otelcol_deltapipeline_router_sent_points"
	metricDropped        = "otelcol_deltapipeline_router_dropped_points"
	metricRefused        = "otelcol_deltapipeline_router_refused_points"
	metricRetries        = "otelcol_deltapipeline_router_retries"
	metricQueueSize      = "otelcol_deltapipeline_router_queue_size"
	metricQueueCapacity  = "otelcol_deltapipeline_router_queue_capacity"
	metricEpoch          = "otelcol_deltapipeline_router_membership_epoch"
	metricMembers        = "otelcol_deltapipeline_router_members"
	metricMembershipErrs = "otelcol_deltapipeline_router_membership_errors"
)

// telemetry records what the exporter does, per worker (the pod name) and,
// for losses, per reason.
type telemetry struct {
	sentPoints, droppedPoints, refusedPoints, retries, membershipErrors metric.Int64Counter
	registration                                                        metric.Registration

	// attrs caches the attribute sets of each worker, so recording does
	// not allocate.
	mu    sync.Mutex
	attrs map[[2]string]metric.MeasurementOption
}

func newTelemetry(mp metric.MeterProvider, r *router) (*telemetry, error) {
	m := mp.Meter("github.com/deltapipeline/deltapipeline/cmd/gateway/routerexporter")
	t := &telemetry{attrs: make(map[[2]string]metric.MeasurementOption)}
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{points}"))
		return c
	}
	t.sentPoints = counter(metricSent, "Points a worker accepted.")
	t.droppedPoints = counter(metricDropped, "Points accepted from clients and then lost, by worker and reason.")
	t.refusedPoints = counter(metricRefused, "Points refused to clients with a retryable error, by reason.")
	t.retries = counter(metricRetries, "Export calls to a worker that were retried.")
	t.membershipErrors = counter(metricMembershipErrs, "Published memberships that could not be used.")
	if err != nil {
		return nil, fmt.Errorf("creating the router's metrics: %w", err)
	}
	queueSize, err := m.Int64ObservableGauge(metricQueueSize, metric.WithDescription("Requests waiting for or being sent to a worker."), metric.WithUnit("{requests}"))
	if err != nil {
		return nil, fmt.Errorf("creating the router's metrics: %w", err)
	}
	queueCap, err := m.Int64ObservableGauge(metricQueueCapacity, metric.WithDescription("Requests a worker's queue holds."), metric.WithUnit("{requests}"))
	if err != nil {
		return nil, fmt.Errorf("creating the router's metrics: %w", err)
	}
	epoch, err := m.Int64ObservableGauge(metricEpoch, metric.WithDescription("Epoch of the membership the router routes by."))
	if err != nil {
		return nil, fmt.Errorf("creating the router's metrics: %w", err)
	}
	members, err := m.Int64ObservableGauge(metricMembers, metric.WithDescription("Workers in the membership the router routes by."))
	if err != nil {
		return nil, fmt.Errorf("creating the router's metrics: %w", err)
	}
	t.registration, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := r.table.Load()
		if st == nil {
			return nil
		}
		o.ObserveInt64(epoch, int64(st.membership.Epoch))
		o.ObserveInt64(members, int64(len(st.membership.Members)))
		for _, q := range r.allQueues() {
			set := metric.WithAttributes(attribute.String("worker", q.member.Name))
			o.ObserveInt64(queueSize, q.len(), set)
			o.ObserveInt64(queueCap, int64(q.cfg.Queue.Size), set)
		}
		return nil
	}, queueSize, queueCap, epoch, members)
	if err != nil {
		return nil, fmt.Errorf("registering the router's gauges: %w", err)
	}
	return t, nil
}

func (t *telemetry) set(worker, reason string) metric.MeasurementOption {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]string{worker, reason}
	o, ok := t.attrs[k]
	if !ok {
		kv := []attribute.KeyValue{attribute.String("worker", worker)}
		if reason != "" {
			kv = append(kv, attribute.String("reason", reason))
		}
		o = metric.WithAttributeSet(attribute.NewSet(kv...))
		t.attrs[k] = o
	}
	return o
}

func (t *telemetry) sent(worker string, points int) {
	t.sentPoints.Add(context.Background(), int64(points), t.set(worker, ""))
}

func (t *telemetry) dropped(worker, reason string, points int) {
	t.droppedPoints.Add(context.Background(), int64(points), t.set(worker, reason))
}

func (t *telemetry) retried(worker string) {
	t.retries.Add(context.Background(), 1, t.set(worker, ""))
}

func (t *telemetry) refused(reason string, points int) {
	t.refusedPoints.Add(context.Background(), int64(points), metric.WithAttributes(attribute.String("reason", reason)))
}

func (t *telemetry) membershipError() { t.membershipErrors.Add(context.Background(), 1) }

func (t *telemetry) shutdown() error {
	if t.registration == nil {
		return nil
	}
	return t.registration.Unregister()
}
