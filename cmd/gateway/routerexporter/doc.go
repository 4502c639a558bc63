// Package routerexporter is DeltaPipeline's routing exporter: it sends every
// data point to the worker that owns its stream, by the ring both tiers
// share (internal/ring).
//
// It owns the gateway side of delivery: splitting a request by owner, one
// ordered queue and one sender per worker, bounded retries of the part a
// worker did not take (never of a whole request: the other workers already
// counted their parts), and following the membership the operator publishes
// without a restart. A worker that restarts stays a member, so its streams
// wait in its queue instead of moving.
package routerexporter
