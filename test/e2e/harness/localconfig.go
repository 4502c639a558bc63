package harness

import "github.com/deltapipeline/deltapipeline/internal/localconfig"

// The configurations run here are the ones the operator rendered into the
// API server, rewritten for local processes by package localconfig, which
// the benchmarks share.

// GatewayAddresses are one local gateway's listen addresses.
type GatewayAddresses = localconfig.GatewayAddresses

// WorkerAddresses are one local worker's addresses and directory.
type WorkerAddresses = localconfig.WorkerAddresses

// LocalGatewayConfig rewrites a rendered gateway configuration for a local
// process (see localconfig.Gateway).
func LocalGatewayConfig(rendered string, a GatewayAddresses) (string, error) {
	return localconfig.Gateway(rendered, a)
}

// LocalWorkerConfig rewrites a rendered worker configuration for a local
// process (see localconfig.Worker).
func LocalWorkerConfig(rendered string, a WorkerAddresses) (string, error) {
	return localconfig.Worker(rendered, a)
}
