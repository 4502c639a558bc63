// Package telemetry owns the worker's view of itself: the self-metrics
// registry, the liveness and readiness state behind /healthz and /readyz,
// the HTTP server exposing them, and the process logger.
//
// The self-metrics themselves belong to the packages that count them
// (receive, export, state, worker); each registers its own on the registry
// built here, under Namespace.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every self-metric of the worker:
// deltapipeline_worker_<name>. Every package registering one uses it, so
// the prefix has one spelling.
const Namespace = "deltapipeline_worker"

// NewRegistry returns a registry holding the Go runtime and process
// collectors, for the packages of one worker to register their metrics on.
// Each worker has its own, so tests can build as many workers as they like
// in one process without touching the global default registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
