package monitoring

import "fmt"

// Variables of the pipeline health dashboard. Both tiers are scraped with
// the pod's namespace and name as labels (the operator's PodMonitors do
// so, as does any Kubernetes service discovery with the usual relabelling).
var namespaceVariable = Variable{Name: "namespace", Label: "Namespace", Metric: WorkerActiveStreams, LabelName: "namespace"}

func ns() string { return matchVariable(namespaceVariable) }

func rateBy(metric string, by string, legend string, extra ...string) Query {
	return Query{
		Expr:   fmt.Sprintf("sum by (%s) (rate(%s[$__rate_interval]))", by, selector(metric, append([]string{ns()}, extra...)...)),
		Legend: legend,
	}
}

func quantile(q float64, histogram, by, legend string) Query {
	return Query{
		Expr: fmt.Sprintf("histogram_quantile(%g, sum by (%s, le) (rate(%s[$__rate_interval])))",
			q, by, selector(histogram+"_bucket", ns())),
		Legend: legend,
	}
}

// PipelineHealth is what the people running the pipeline look at: points in
// and out of each tier, what was refused or dropped and why, streams per
// worker, the gateways' per-worker delivery, the hand-over between workers,
// exporters, journal and checkpoints.
func PipelineHealth() Dashboard {
	return Dashboard{
		UID:   "deltapipeline-health",
		Title: "DeltaPipeline health",
		File:  "deltapipeline-health.json",
		Description: "Gateway tier (DeltaPipeline gateway) and worker tier (DeltaPipeline worker) " +
			"of every DeltaPipeline: throughput, refusals and drops, streams, hand-over between workers, exporters, journal and checkpoints.",
		Tags:      []string{"deltapipeline"},
		Variables: []Variable{namespaceVariable},
		Rows: []Row{
			{Title: "Gateway tier", Panels: []Panel{
				{Title: "Gateway points in / out", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Points per second the gateways accepted from clients and sent on to the workers.",
					Queries: []Query{
						{Expr: fmt.Sprintf("sum by (pod) (rate(%s[$__rate_interval]))", selector(GatewayAcceptedPoints, ns())), Legend: "in {{pod}}"},
						{Expr: fmt.Sprintf("sum by (pod) (rate(%s[$__rate_interval]))", selector(GatewaySentPoints, ns())), Legend: "out {{pod}}"},
					}},
				{Title: "Gateway refusals and failures", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Points per second the gateways refused to clients or failed to send.",
					Queries: []Query{
						rateBy(GatewayRefusedPoints, "pod", "refused {{pod}}"),
						// The collector creates this counter at the first failure;
						// until then the panel shows 0 rather than nothing.
						{Expr: fmt.Sprintf("sum by (pod) (rate(%s[$__rate_interval])) or (sum by (pod) (rate(%s[$__rate_interval])) * 0)",
							selector(GatewaySendFailedPoints, ns()), selector(GatewaySentPoints, ns())), Legend: "send failed {{pod}}"},
					}},
				{Title: "Gateway points per worker", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Points per second the gateways' router delivered to each worker (spec.gateway.router: deltapipeline).",
					Queries:     []Query{rateBy(GatewayRouterSentPoints, "worker", "{{worker}}")}},
				{Title: "Gateway queue per worker", Kind: TimeSeries, Unit: "percentunit", Width: 12,
					Description: "How full each gateway's queue for each worker is. A worker that is down or too slow fills its queues; " +
						"a full queue makes the gateway refuse requests.",
					Queries: []Query{{
						Expr: fmt.Sprintf("max by (worker) (%s / %s)",
							selector(GatewayRouterQueueSize, ns()), selector(GatewayRouterQueueCapacity, ns())),
						Legend: "{{worker}}",
					}}},
				{Title: "Gateway points lost, by reason", Kind: TimeSeries, Unit: "short", Width: 12,
					Description: "Points per second the router dropped after accepting them (retry budget exhausted, refused by the worker, " +
						"shutdown) or refused to clients (queue full, no membership).",
					Queries: []Query{
						// The router creates these counters at the first loss;
						// until then the panel shows 0 rather than nothing.
						{Expr: fmt.Sprintf("sum by (reason) (rate(%s[$__rate_interval])) or (sum(rate(%s[$__rate_interval])) * 0)",
							selector(GatewayRouterDroppedPoints, ns()), selector(GatewayRouterSentPoints, ns())), Legend: "dropped {{reason}}"},
						{Expr: fmt.Sprintf("sum by (reason) (rate(%s[$__rate_interval])) or (sum(rate(%s[$__rate_interval])) * 0)",
							selector(GatewayRouterRefusedPoints, ns()), selector(GatewayRouterSentPoints, ns())), Legend: "refused {{reason}}"},
					}},
			}},
			{Title: "Worker tier", Panels: []Panel{
				{Title: "Worker points in / out", Kind: TimeSeries, Unit: "short", Width: 12,
					Description: "Points per second each worker received, emitted as cumulative points, and had accepted by the destination.",
					Queries: []Query{
						{Expr: fmt.Sprintf("sum by (pod) (rate(%s[$__rate_interval]))", selector(WorkerReceivedPoints, ns())), Legend: "received {{pod}}"},
						{Expr: fmt.Sprintf("sum by (pod) (rate(%s[$__rate_interval]))", selector(WorkerEmittedPoints, ns())), Legend: "emitted {{pod}}"},
						{Expr: fmt.Sprintf("sum by (pod) (rate(%s[$__rate_interval]))", selector(WorkerExportedPoints, ns())), Legend: "exported {{pod}}"},
					}},
				{Title: "Active streams per worker", Kind: TimeSeries, Unit: "short", Width: 12,
					Description: "Streams whose running total each worker holds, against its stream limit.",
					Queries: []Query{
						{Expr: fmt.Sprintf("sum by (pod) (%s)", selector(WorkerActiveStreams, ns())), Legend: "{{pod}}"},
						{Expr: fmt.Sprintf("max(%s)", selector(WorkerStreamLimit, ns())), Legend: "limit"},
					}},
				{Title: "Rejected points by reason", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Points per second the converter refused (reported to the gateway as partial success).",
					Queries:     []Query{rateBy(WorkerRejectedPoints, "reason", "{{reason}}")}},
				{Title: "Refused requests by reason", Kind: TimeSeries, Unit: "reqps", Width: 8,
					Description: "Whole OTLP requests refused, by reason (journal: the write-ahead log failed).",
					Queries:     []Query{rateBy(WorkerRefusedRequests, "reason", "{{reason}}")}},
				{Title: "Dropped points by exporter and reason", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Points per second an exporter gave up on.",
					Queries:     []Query{rateBy(WorkerExportDropped, "exporter, reason", "{{exporter}} {{reason}}")}},
			}},
			// Hand-over: what moves between workers while the ring rescales
			// (docs/rescaling.md). Flat outside a rescale.
			{Title: "Hand-over", Panels: []Panel{
				{Title: "Membership epoch per worker", Kind: TimeSeries, Unit: "none", Width: 8,
					Description: "The membership epoch each worker acts on. During a rescale the workers step to the new epoch " +
						"together; a worker that stays behind has not seen the published membership (see membership errors).",
					Queries: []Query{{Expr: fmt.Sprintf("max by (pod) (%s)", selector(HandoffEpoch, ns())), Legend: "{{pod}}"}}},
				{Title: "Moving streams and pending entries", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Streams each worker handed over and its new owner has not acknowledged, and records, forwarded " +
						"requests and done markers waiting for a peer. Both return to 0 when a hand-over completes; 10 minutes above 0 " +
						"fires DeltaPipelineWorkerHandoverStuck.",
					Queries: []Query{
						{Expr: fmt.Sprintf("max by (pod) (%s)", selector(HandoffMovingStreams, ns())), Legend: "moving {{pod}}"},
						{Expr: fmt.Sprintf("max by (pod) (%s)", selector(HandoffPendingEntries, ns())), Legend: "pending {{pod}}"},
					}},
				{Title: "Streams handed over", Kind: TimeSeries, Unit: "short", Width: 8,
					Description: "Streams per second each worker handed over (acknowledged by their new owner), received from their " +
						"previous owner, and could not restore (their running totals are lost; DeltaPipelineWorkerHandoverStreamsRefused).",
					Queries: []Query{
						rateBy(HandoffStreamsSent, "pod", "sent {{pod}}"),
						rateBy(HandoffStreamsReceived, "pod", "received {{pod}}"),
						rateBy(HandoffStreamsRefused, "pod", "refused {{pod}}"),
					}},
				{Title: "Points forwarded between workers", Kind: TimeSeries, Unit: "short", Width: 12,
					Description: "Points per second that reached a worker which does not hold their stream and were queued for its holder, " +
						"points received from peers, and points refused (retryable, the gateway retries) because the queue to the holder was full.",
					Queries: []Query{
						rateBy(HandoffPointsForwarded, "pod", "forwarded {{pod}}"),
						rateBy(HandoffPointsReceived, "pod", "received {{pod}}"),
						rateBy(HandoffForwardRefused, "pod", "refused, queue full {{pod}}"),
					}},
				{Title: "Peer errors by reason", Kind: TimeSeries, Unit: "short", Width: 12,
					Description: "Failed calls to a peer per second (retried), peer calls refused by the receiving worker " +
						"(unauthenticated fires DeltaPipelineWorkerPeerRefused; epoch_ahead and not_ready are part of a rescale), " +
						"and published memberships a worker could not act on.",
					Queries: []Query{
						rateBy(HandoffPeerErrors, "reason", "call failed {{reason}}"),
						rateBy(HandoffPeerRefused, "reason", "refused {{reason}}"),
						{Expr: fmt.Sprintf("sum(rate(%s[$__rate_interval]))", selector(HandoffMembershipErrors, ns())), Legend: "membership not acted on"},
					}},
			}},
			{Title: "Exporters", Panels: []Panel{
				{Title: "Export latency (p50, p99)", Kind: TimeSeries, Unit: "s", Width: 8,
					Description: "Time to send one export request including retries.",
					Queries: []Query{
						quantile(0.5, WorkerExportDuration, "exporter", "p50 {{exporter}}"),
						quantile(0.99, WorkerExportDuration, "exporter", "p99 {{exporter}}"),
					}},
				{Title: "Export requests by outcome, retries", Kind: TimeSeries, Unit: "reqps", Width: 8,
					Queries: []Query{
						rateBy(WorkerExportRequests, "exporter, outcome", "{{exporter}} {{outcome}}"),
						rateBy(WorkerExportRetries, "exporter", "{{exporter}} retries"),
					}},
				{Title: "Export queue fill", Kind: TimeSeries, Unit: "percentunit", Width: 8,
					Description: "Share of each worker's exporter queue in use.",
					Queries: []Query{{
						Expr: fmt.Sprintf("max by (pod, exporter) (%s / %s)",
							selector(WorkerExportQueueLength, ns()), selector(WorkerExportQueueCap, ns())),
						Legend: "{{pod}} {{exporter}}",
					}}},
			}},
			{Title: "Durability", Panels: []Panel{
				{Title: "Journal fsync latency (p99)", Kind: TimeSeries, Unit: "s", Width: 12,
					Description: "Latency of one write-ahead log group commit.",
					Queries:     []Query{quantile(0.99, WorkerWALFsyncDuration, "pod", "{{pod}}")}},
				{Title: "Checkpoint age", Kind: TimeSeries, Unit: "s", Width: 12,
					Description: "Seconds since each worker's last successful checkpoint, against its checkpoint interval.",
					Queries: []Query{
						// The timestamp is 0 until a worker's first checkpoint.
						{Expr: fmt.Sprintf("time() - (max by (pod) (%s) > 0)", selector(WorkerCheckpointSuccess, ns())), Legend: "{{pod}}"},
						{Expr: fmt.Sprintf("max(%s)", selector(WorkerCheckpointInterval, ns())), Legend: "interval"},
					}},
			}},
		},
	}
}
