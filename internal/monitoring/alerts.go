package monitoring

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Alert is one Prometheus alerting rule. Summary and Description may use
// {{ $labels.NAME }} for the labels the expression keeps. Its runbook is the
// section of docs/operations.md titled with its name.
type Alert struct {
	Name        string
	Expr        string
	For         time.Duration
	Severity    string
	Summary     string
	Description string
	// Tests are the promtool unit tests of this rule: at least one that
	// fires and one that does not.
	Tests []AlertTest
}

// AlertTest feeds series to promtool and says what the rule must do at
// EvalTime: fire once per entry of Fires (the alert's labels besides
// alertname and severity), or not at all when Fires is empty.
type AlertTest struct {
	Name     string
	Series   []InputSeries
	EvalTime time.Duration
	Fires    []map[string]string
}

// InputSeries is a series in promtool's expanding notation, one sample per
// minute ("0+1x30": 0, 1, ..., 30).
type InputSeries struct {
	Series, Values string
}

// RunbookBase is where the runbook anchors point.
const RunbookBase = "https://github.com/deltapipeline/deltapipeline/blob/main/docs/operations.md#"

// RescalingFailureCases is the part of docs/rescaling.md the hand-over
// alerts point to: what each failure of a hand-over does and how it ends.
const RescalingFailureCases = "https://github.com/deltapipeline/deltapipeline/blob/main/docs/rescaling.md#failure-cases"

// HandoverStuckFor is how long a worker may have streams moving or entries
// pending before DeltaPipelineWorkerHandoverStuck fires: the operator's
// bound before it reports the Rescaling condition as HandoverStalled
// (controllers/rescale.go), so that both say so at the same time.
const HandoverStuckFor = 10 * time.Minute

// Severities.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// CheckpointStaleIntervals is how many checkpoint intervals may pass without
// a successful checkpoint before DeltaPipelineCheckpointStale fires.
const CheckpointStaleIntervals = 3

// StreamLimitShare is the share of the stream limit at which
// DeltaPipelineStreamLimitNear fires.
const StreamLimitShare = 0.9

// Kubernetes object names of the tiers, as internal/naming forms them
// (NAME-gateway, NAME-worker); kube-state-metrics reports them by name.
const (
	gatewayDeploymentPattern = ".+-gateway"
	workerStatefulSetPattern = ".+-worker"
)

func series(metric string, labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return metric + "{" + strings.Join(parts, ", ") + "}"
}

func workerLabels(extra ...string) map[string]string {
	m := map[string]string{"namespace": "telemetry", "pod": "claude-worker-0"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func gatewayLabels(extra ...string) map[string]string {
	m := map[string]string{"namespace": "telemetry", "pod": "claude-gateway-7d9f-abcde"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// Alerts are the rules the chart ships.
func Alerts() []Alert {
	return []Alert{
		{
			Name:     "DeltaPipelineWorkerRejectingPoints",
			Expr:     fmt.Sprintf("sum by (namespace, pod, reason) (increase(%s[10m])) > 0", WorkerRejectedPoints),
			For:      time.Minute,
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline worker rejects points ({{ $labels.reason }}).",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} refused points with reason {{ $labels.reason }} " +
				"in the last 10 minutes; the gateway was told (OTLP partial success) and those points are not in any total.",
			Tests: []AlertTest{
				{Name: "out of order points for 10 minutes", EvalTime: 10 * time.Minute,
					Series: []InputSeries{{series(WorkerRejectedPoints, workerLabels("reason", "out_of_order")), "0+5x15"}},
					Fires:  []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0", "reason": "out_of_order"}}},
				{Name: "a counter that stays at zero", EvalTime: 10 * time.Minute,
					Series: []InputSeries{{series(WorkerRejectedPoints, workerLabels("reason", "out_of_order")), "0x15"}}},
			},
		},
		{
			Name:     "DeltaPipelineWorkerDroppingPoints",
			Expr:     fmt.Sprintf("sum by (namespace, pod, exporter, reason) (increase(%s[10m])) > 0", WorkerExportDropped),
			For:      0,
			Severity: SeverityCritical,
			Summary:  "A DeltaPipeline worker drops converted points ({{ $labels.exporter }}, {{ $labels.reason }}).",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} gave up exporting points through {{ $labels.exporter }} " +
				"with reason {{ $labels.reason }}; the destination misses them.",
			Tests: []AlertTest{
				{Name: "retries exhausted", EvalTime: 5 * time.Minute,
					Series: []InputSeries{{series(WorkerExportDropped, workerLabels("exporter", "prometheusremotewrite", "reason", "retries_exhausted")), "0 0 0 120 120 120"}},
					Fires:  []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0", "exporter": "prometheusremotewrite", "reason": "retries_exhausted"}}},
				{Name: "drops older than the window", EvalTime: 30 * time.Minute,
					Series: []InputSeries{{series(WorkerExportDropped, workerLabels("exporter", "prometheusremotewrite", "reason", "retries_exhausted")), "0 120x30"}}},
			},
		},
		{
			Name: "DeltaPipelineJournalFailing",
			Expr: fmt.Sprintf("min by (namespace, pod) (%s) == 0 or sum by (namespace, pod) (increase(%s[5m])) > 0",
				WorkerWALWritable, selector(WorkerRefusedRequests, fmt.Sprintf("reason=%q", RefusedJournal))),
			For:      0,
			Severity: SeverityCritical,
			Summary:  "A DeltaPipeline worker cannot write its journal.",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} cannot write its write-ahead log and refuses requests " +
				"(disk full, volume read-only or failing); the gateways retry them while it lasts.",
			Tests: []AlertTest{
				{Name: "requests refused for the journal", EvalTime: 5 * time.Minute,
					Series: []InputSeries{
						{series(WorkerRefusedRequests, workerLabels("transport", "grpc", "reason", "journal")), "0 0 3 9 20 40"},
						{series(WorkerRefusedRequests, workerLabels("transport", "grpc", "reason", "overloaded")), "0x5"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				{Name: "the journal reports it cannot write", EvalTime: 3 * time.Minute,
					Series: []InputSeries{
						{series(WorkerWALWritable, workerLabels()), "1 1 0 0"},
						{series(WorkerRefusedRequests, workerLabels("transport", "grpc", "reason", "journal")), "0x3"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				{Name: "refused for another reason only", EvalTime: 5 * time.Minute,
					Series: []InputSeries{
						{series(WorkerWALWritable, workerLabels()), "1x5"},
						{series(WorkerRefusedRequests, workerLabels("transport", "grpc", "reason", "journal")), "0x5"},
						{series(WorkerRefusedRequests, workerLabels("transport", "grpc", "reason", "overloaded")), "0 5 10 15 20 25"},
					}},
			},
		},
		{
			Name: "DeltaPipelineWorkerHandoverStuck",
			// Either gauge keeps the alert pending: a hand-over whose streams
			// were acknowledged but whose forwards or done markers still wait
			// is as stuck as one whose streams do not move.
			Expr: fmt.Sprintf("max by (namespace, pod) (%s) > 0 or max by (namespace, pod) (%s) > 0",
				HandoffMovingStreams, HandoffPendingEntries),
			For:      HandoverStuckFor,
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline worker's hand-over has not finished for 10 minutes.",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} has had streams handed over and not acknowledged, " +
				"or entries waiting for a peer, for 10 minutes: a peer is unreachable, refuses its calls or cannot make them durable. " +
				"Nothing is dropped while it waits, but the rescale does not complete. Read the DeltaPipeline's Rescaling condition " +
				"(it names the workers waited for) and deltapipeline_worker_handoff_peer_errors_total by reason, then fix the peer: " +
				RescalingFailureCases + ".",
			Tests: []AlertTest{
				// Active from the first evaluation, so firing exactly at the bound.
				{Name: "streams that never leave", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(HandoffMovingStreams, workerLabels()), "120x15"},
						{series(HandoffPendingEntries, workerLabels()), "0x15"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				{Name: "entries pending for a peer that does not answer", EvalTime: 15 * time.Minute,
					Series: []InputSeries{
						{series(HandoffMovingStreams, workerLabels()), "0x15"},
						{series(HandoffPendingEntries, workerLabels()), "3x15"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				// Streams acknowledged after 6 minutes, then their done marker
				// waits: the hand-over never stopped.
				{Name: "moving, then pending, without a gap", EvalTime: 13 * time.Minute,
					Series: []InputSeries{
						{series(HandoffMovingStreams, workerLabels()), "50x6 0x7"},
						{series(HandoffPendingEntries, workerLabels()), "0x6 1x7"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				// Still pending at its last minute: a shorter For would fire here.
				{Name: "a hand-over that lasts 9 minutes", EvalTime: 9 * time.Minute,
					Series: []InputSeries{
						{series(HandoffMovingStreams, workerLabels()), "800x9 0x6"},
						{series(HandoffPendingEntries, workerLabels()), "40x9 0x6"},
					}},
				// 15 minutes with streams moving, but not continuously.
				{Name: "two short hand-overs in a row", EvalTime: 15 * time.Minute,
					Series: []InputSeries{
						{series(HandoffMovingStreams, workerLabels()), "30x7 0 30x7"},
						{series(HandoffPendingEntries, workerLabels()), "0x15"},
					}},
			},
		},
		{
			Name: "DeltaPipelineWorkerPeerRefused",
			Expr: fmt.Sprintf("sum by (namespace, pod) (increase(%s[10m])) > 0",
				selector(HandoffPeerRefused, fmt.Sprintf("reason=%q", PeerRefusedUnauthenticated))),
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline worker's peer port is called without the peer token.",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} refused peer calls without a valid peer token in the last 10 minutes: " +
				"something other than the pipeline's workers reaches port 4319 (the worker NetworkPolicy is not enforced, or was widened). " +
				"Right after the NAME-peer-token Secret was generated again, workers disagree for up to a minute and this stops by itself. " +
				"Find the caller in the worker's log and check the NetworkPolicy: " + RescalingFailureCases + ".",
			Tests: []AlertTest{
				{Name: "calls without the token", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(HandoffPeerRefused, workerLabels("reason", "unauthenticated")), "0x5 1 2 2 2 2"},
						{series(HandoffPeerRefused, workerLabels("reason", "epoch_ahead")), "0x10"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				// epoch_ahead is the receiver waiting for its membership watch:
				// part of every rescale, retried by the sender.
				{Name: "refusals that are part of a rescale", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(HandoffPeerRefused, workerLabels("reason", "unauthenticated")), "0x10"},
						{series(HandoffPeerRefused, workerLabels("reason", "epoch_ahead")), "0 4 9 9 12 12 12 12 12 12 12"},
					}},
				{Name: "an unauthenticated call older than the window", EvalTime: 30 * time.Minute,
					Series: []InputSeries{
						{series(HandoffPeerRefused, workerLabels("reason", "unauthenticated")), "0 1x30"},
					}},
			},
		},
		{
			Name:     "DeltaPipelineWorkerHandoverStreamsRefused",
			Expr:     fmt.Sprintf("sum by (namespace, pod) (increase(%s[10m])) > 0", HandoffStreamsRefused),
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline worker could not restore streams handed over to it.",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} received stream records in the last 10 minutes that it could not restore: " +
				"it holds conversion.maxStreams streams already, or the record does not decode (workers of different versions). " +
				"The running totals of those streams are lost, not retried: their series restart from their next point. " +
				"The worker's log names each record's sender and the error; raise spec.worker.conversion.maxStreams, " +
				"or finish rolling the workers to one version before rescaling: " + RescalingFailureCases + ".",
			Tests: []AlertTest{
				{Name: "records beyond the stream limit", EvalTime: 6 * time.Minute,
					Series: []InputSeries{{series(HandoffStreamsRefused, workerLabels()), "0 0 0 0 25 25 25"}},
					Fires:  []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				{Name: "every record restored", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(HandoffStreamsRefused, workerLabels()), "0x10"},
						{series(HandoffStreamsReceived, workerLabels()), "0 300 900 1200x8"},
					}},
			},
		},
		{
			Name: "DeltaPipelineCheckpointStale",
			Expr: fmt.Sprintf("time() - max by (namespace, pod) (%s) > %d * max by (namespace, pod) (%s)",
				WorkerCheckpointSuccess, CheckpointStaleIntervals, WorkerCheckpointInterval),
			For:      5 * time.Minute,
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline worker has not written a checkpoint for 3 intervals.",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} wrote its last successful checkpoint more than " +
				"3 checkpoint intervals ago; its write-ahead log grows and a restart replays more.",
			Tests: []AlertTest{
				// The last checkpoint at t=60 s, interval 60 s: stale from t=240 s, firing 5 minutes later.
				{Name: "no checkpoint after the first", EvalTime: 12 * time.Minute,
					Series: []InputSeries{
						{series(WorkerCheckpointSuccess, workerLabels()), "0 60x15"},
						{series(WorkerCheckpointInterval, workerLabels()), "60x15"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				{Name: "a checkpoint every minute", EvalTime: 12 * time.Minute,
					Series: []InputSeries{
						{series(WorkerCheckpointSuccess, workerLabels()), "0+60x15"},
						{series(WorkerCheckpointInterval, workerLabels()), "60x15"},
					}},
			},
		},
		{
			Name: "DeltaPipelineExporterFailing",
			Expr: fmt.Sprintf("sum by (namespace, pod, exporter) (rate(%s[5m])) / sum by (namespace, pod, exporter) (rate(%s[5m])) > 0.1",
				selector(WorkerExportRequests, fmt.Sprintf("outcome=%q", ExportOutcomeFailure)), WorkerExportRequests),
			For:      10 * time.Minute,
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline exporter fails more than 10% of its requests.",
			Description: "Exporter {{ $labels.exporter }} of worker {{ $labels.namespace }}/{{ $labels.pod }} failed more than " +
				"10% of its requests (after retries) for 10 minutes; the destination is unreachable, refuses the data or is throttling.",
			Tests: []AlertTest{
				{Name: "half the requests fail", EvalTime: 20 * time.Minute,
					Series: []InputSeries{
						{series(WorkerExportRequests, workerLabels("exporter", "prometheusremotewrite", "outcome", "success")), "0+60x20"},
						{series(WorkerExportRequests, workerLabels("exporter", "prometheusremotewrite", "outcome", "failure")), "0+60x20"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0", "exporter": "prometheusremotewrite"}}},
				{Name: "one failure in a hundred", EvalTime: 20 * time.Minute,
					Series: []InputSeries{
						{series(WorkerExportRequests, workerLabels("exporter", "prometheusremotewrite", "outcome", "success")), "0+100x20"},
						{series(WorkerExportRequests, workerLabels("exporter", "prometheusremotewrite", "outcome", "failure")), "0+1x20"},
					}},
			},
		},
		{
			Name: "DeltaPipelineStreamLimitNear",
			Expr: fmt.Sprintf("max by (namespace, pod) (%s) / max by (namespace, pod) (%s) > %g",
				WorkerActiveStreams, WorkerStreamLimit, StreamLimitShare),
			For:      15 * time.Minute,
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline worker holds more than 90% of its stream limit.",
			Description: "Worker {{ $labels.namespace }}/{{ $labels.pod }} holds more than 90% of conversion.maxStreams; " +
				"points of new streams beyond the limit are rejected (reason stream_limit).",
			Tests: []AlertTest{
				{Name: "95% of the limit", EvalTime: 20 * time.Minute,
					Series: []InputSeries{
						{series(WorkerActiveStreams, workerLabels()), "950x20"},
						{series(WorkerStreamLimit, workerLabels()), "1000x20"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-worker-0"}}},
				{Name: "half the limit", EvalTime: 20 * time.Minute,
					Series: []InputSeries{
						{series(WorkerActiveStreams, workerLabels()), "500x20"},
						{series(WorkerStreamLimit, workerLabels()), "1000x20"},
					}},
			},
		},
		{
			Name: "DeltaPipelineGatewayQueueFull",
			Expr: fmt.Sprintf("max by (namespace, pod, worker) (%s / %s) > 0.9",
				selector(GatewayRouterQueueSize), selector(GatewayRouterQueueCapacity)),
			For:      2 * time.Minute,
			Severity: SeverityCritical,
			Summary:  "A DeltaPipeline gateway's queue for a worker is almost full.",
			Description: "Gateway {{ $labels.namespace }}/{{ $labels.pod }} holds more than 90% of its queue for worker {{ $labels.worker }}: " +
				"the worker is down or too slow for longer than the queue lasts. Once the queue is full the gateway refuses data " +
				"that Claude Code will not send again.",
			Tests: []AlertTest{
				{Name: "queue filling", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(GatewayRouterQueueSize, gatewayLabels("worker", "claude-worker-1")), "9200+50x10"},
						{series(GatewayRouterQueueCapacity, gatewayLabels("worker", "claude-worker-1")), "10000x10"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-gateway-7d9f-abcde", "worker": "claude-worker-1"}}},
				{Name: "queue draining", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(GatewayRouterQueueSize, gatewayLabels("worker", "claude-worker-1")), "20x10"},
						{series(GatewayRouterQueueCapacity, gatewayLabels("worker", "claude-worker-1")), "10000x10"},
					}},
			},
		},
		{
			Name:     "DeltaPipelineGatewayDroppingPoints",
			Expr:     fmt.Sprintf("sum by (namespace, pod, worker, reason) (rate(%s[5m])) > 0", selector(GatewayRouterDroppedPoints)),
			Severity: SeverityCritical,
			Summary:  "A DeltaPipeline gateway is losing points it accepted.",
			Description: "Gateway {{ $labels.namespace }}/{{ $labels.pod }} drops points for worker {{ $labels.worker }} " +
				"(reason {{ $labels.reason }}): the worker was unreachable for the whole retry budget or refused them.",
			Tests: []AlertTest{
				{Name: "retry budget exhausted", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(GatewayRouterDroppedPoints, gatewayLabels("worker", "claude-worker-1", "reason", "retry_budget_exhausted")), "0+500x10"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "pod": "claude-gateway-7d9f-abcde", "worker": "claude-worker-1", "reason": "retry_budget_exhausted"}}},
				{Name: "nothing dropped", EvalTime: 10 * time.Minute,
					Series: []InputSeries{
						{series(GatewayRouterDroppedPoints, gatewayLabels("worker", "claude-worker-1", "reason", "retry_budget_exhausted")), "7x10"},
					}},
			},
		},
		{
			Name: "DeltaPipelineGatewayReplicasUnavailable",
			Expr: fmt.Sprintf("%s < %s",
				selector(KubeDeploymentAvailableReplicas, fmt.Sprintf("deployment=~%q", gatewayDeploymentPattern)),
				selector(KubeDeploymentSpecReplicas, fmt.Sprintf("deployment=~%q", gatewayDeploymentPattern))),
			For:      10 * time.Minute,
			Severity: SeverityWarning,
			Summary:  "A DeltaPipeline gateway tier has fewer available replicas than desired.",
			Description: "Deployment {{ $labels.namespace }}/{{ $labels.deployment }} has had fewer available replicas than " +
				"desired for 10 minutes; the remaining gateways take all clients.",
			Tests: []AlertTest{
				{Name: "one of two gateways unavailable", EvalTime: 15 * time.Minute,
					Series: []InputSeries{
						{series(KubeDeploymentAvailableReplicas, map[string]string{"namespace": "telemetry", "deployment": "claude-gateway"}), "1x15"},
						{series(KubeDeploymentSpecReplicas, map[string]string{"namespace": "telemetry", "deployment": "claude-gateway"}), "2x15"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "deployment": "claude-gateway"}}},
				{Name: "every gateway available", EvalTime: 15 * time.Minute,
					Series: []InputSeries{
						{series(KubeDeploymentAvailableReplicas, map[string]string{"namespace": "telemetry", "deployment": "claude-gateway"}), "2x15"},
						{series(KubeDeploymentSpecReplicas, map[string]string{"namespace": "telemetry", "deployment": "claude-gateway"}), "2x15"},
					}},
			},
		},
		{
			Name: "DeltaPipelineWorkerReplicasNotReady",
			Expr: fmt.Sprintf("%s < %s",
				selector(KubeStatefulSetReadyReplicas, fmt.Sprintf("statefulset=~%q", workerStatefulSetPattern)),
				selector(KubeStatefulSetReplicas, fmt.Sprintf("statefulset=~%q", workerStatefulSetPattern))),
			For:      10 * time.Minute,
			Severity: SeverityCritical,
			Summary:  "A DeltaPipeline worker tier has fewer ready replicas than desired.",
			Description: "StatefulSet {{ $labels.namespace }}/{{ $labels.statefulset }} has had fewer ready workers than desired " +
				"for 10 minutes; the streams of a missing worker wait in the gateways' queues until it is back.",
			Tests: []AlertTest{
				{Name: "two of three workers ready", EvalTime: 15 * time.Minute,
					Series: []InputSeries{
						{series(KubeStatefulSetReadyReplicas, map[string]string{"namespace": "telemetry", "statefulset": "claude-worker"}), "2x15"},
						{series(KubeStatefulSetReplicas, map[string]string{"namespace": "telemetry", "statefulset": "claude-worker"}), "3x15"},
					},
					Fires: []map[string]string{{"namespace": "telemetry", "statefulset": "claude-worker"}}},
				{Name: "a worker back within 10 minutes", EvalTime: 15 * time.Minute,
					Series: []InputSeries{
						{series(KubeStatefulSetReadyReplicas, map[string]string{"namespace": "telemetry", "statefulset": "claude-worker"}), "3x5 2x5 3x5"},
						{series(KubeStatefulSetReplicas, map[string]string{"namespace": "telemetry", "statefulset": "claude-worker"}), "3x15"},
					}},
			},
		},
	}
}
