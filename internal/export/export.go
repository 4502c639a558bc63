// Package export owns the contract every destination of converted metrics
// implements, the self-metrics every exporter counts (Metrics) and the send
// queue with its drop accounting that queueing exporters share (Queue). Its
// subpackages implement Prometheus remote write (remotewrite), OTLP/gRPC
// (otlpexport) and a Prometheus scrape endpoint (promexport); promseries
// holds the OTLP to Prometheus naming they share and sendqueue the bounded
// queue under Queue.
package export

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Exporter sends cumulative metrics to one destination.
type Exporter interface {
	// Name is the stable exporter label of the self-metrics.
	Name() string
	// Export hands md over. It must not block on the network for longer than
	// the exporter's own timeout. md is read-only for every party once handed
	// over: the exporter must not modify it and the caller must not modify
	// or reuse it afterwards, so an exporter may keep it until it is sent
	// without copying, and several exporters may share it.
	Export(ctx context.Context, md pmetric.Metrics) error
	// Shutdown flushes what is queued, giving up when ctx ends.
	Shutdown(ctx context.Context) error
}

// Backlog is implemented by exporters that queue requests for a sender.
// The worker's emit waits for the backlog to fall before it builds more
// output, so that an emit of many streams holds a few parts in memory
// rather than all of them.
type Backlog interface {
	// AwaitBacklog returns once at most n requests wait to be sent, woken
	// by the sender taking one, or with ctx's error when ctx ends first.
	AwaitBacklog(ctx context.Context, n int) error
}
