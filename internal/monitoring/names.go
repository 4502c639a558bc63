// Package monitoring owns what DeltaPipeline ships for the people who look at
// it: the Grafana dashboards (built with the Grafana Foundation SDK), the
// Prometheus alert rules and their promtool unit tests, all rendered into the
// Helm chart by `make dashboards`. Every metric name they use is listed in
// this file and nowhere else, so that renaming a metric is one edit here and
// a regeneration.
package monitoring

// Series written by Claude Code, as Prometheus stores them after the
// pipeline converted them: OTLP names translated the way Prometheus'
// otlptranslator does (dots to underscores, the unit, then _total for a
// monotonic sum). See /docs/conversion.md and the Claude Code telemetry
// reference.
const (
	ClaudeSessions      = "claude_code_session_count_total"
	ClaudeTokens        = "claude_code_token_usage_tokens_total"
	ClaudeCost          = "claude_code_cost_usage_USD_total"
	ClaudeActiveTime    = "claude_code_active_time_seconds_total"
	ClaudeLinesOfCode   = "claude_code_lines_of_code_count_total"
	ClaudeEditDecisions = "claude_code_code_edit_tool_decision_total"
	ClaudeCommits       = "claude_code_commit_count_total"
	ClaudePullRequests  = "claude_code_pull_request_count_total"
)

// Labels of the Claude Code series (OTLP point attributes translated).
const (
	LabelUser      = "user_id"
	LabelSession   = "session_id"
	LabelModel     = "model"
	LabelType      = "type"
	LabelDecision  = "decision"
	LabelToolName  = "tool_name"
	LabelStartType = "start_type"
)

// The worker's self-metrics (internal/telemetry, internal/state), served on
// its telemetry port.
const (
	WorkerReceivedPoints     = "deltapipeline_worker_received_points_total"
	WorkerAppliedPoints      = "deltapipeline_worker_applied_points_total"
	WorkerDuplicatePoints    = "deltapipeline_worker_duplicate_points_total"
	WorkerEmittedPoints      = "deltapipeline_worker_emitted_points_total"
	WorkerRejectedPoints     = "deltapipeline_worker_rejected_points_total"
	WorkerRefusedRequests    = "deltapipeline_worker_refused_requests_total"
	WorkerActiveStreams      = "deltapipeline_worker_active_streams"
	WorkerStreamLimit        = "deltapipeline_worker_stream_limit"
	WorkerExportRequests     = "deltapipeline_worker_export_requests_total"
	WorkerExportDuration     = "deltapipeline_worker_export_request_duration_seconds"
	WorkerExportRetries      = "deltapipeline_worker_export_retries_total"
	WorkerExportedPoints     = "deltapipeline_worker_exported_points_total"
	WorkerExportDropped      = "deltapipeline_worker_export_dropped_points_total"
	WorkerExportQueueLength  = "deltapipeline_worker_export_queue_length"
	WorkerExportQueueCap     = "deltapipeline_worker_export_queue_capacity"
	WorkerWALFsyncDuration   = "deltapipeline_worker_wal_fsync_duration_seconds"
	WorkerCheckpointSuccess  = "deltapipeline_worker_checkpoint_last_success_timestamp_seconds"
	WorkerCheckpointInterval = "deltapipeline_worker_checkpoint_interval_seconds"
	WorkerCheckpointFailures = "deltapipeline_worker_checkpoint_failures_total"
	// WorkerWALWritable is 1 while the write-ahead log accepts records, 0
	// while the worker refuses requests because it cannot.
	WorkerWALWritable = "deltapipeline_worker_wal_writable"
)

// The worker's hand-over self-metrics (internal/handoff), registered when
// the worker has a handoff section (router deltapipeline).
const (
	HandoffEpoch            = "deltapipeline_worker_handoff_membership_epoch"
	HandoffMovingStreams    = "deltapipeline_worker_handoff_moving_streams"
	HandoffPendingEntries   = "deltapipeline_worker_handoff_pending_entries"
	HandoffStreamsSent      = "deltapipeline_worker_handoff_streams_sent_total"
	HandoffStreamsReceived  = "deltapipeline_worker_handoff_streams_received_total"
	HandoffStreamsRefused   = "deltapipeline_worker_handoff_streams_refused_total"
	HandoffPointsForwarded  = "deltapipeline_worker_handoff_points_forwarded_total"
	HandoffPointsReceived   = "deltapipeline_worker_handoff_points_received_total"
	HandoffForwardRefused   = "deltapipeline_worker_handoff_points_forward_refused_total"
	HandoffPeerErrors       = "deltapipeline_worker_handoff_peer_errors_total"
	HandoffPeerRefused      = "deltapipeline_worker_handoff_peer_requests_refused_total"
	HandoffMembershipErrors = "deltapipeline_worker_handoff_membership_errors_total"
)

// Reason label values the rules single out.
const (
	// RefusedJournal: a request refused because the write-ahead log could not
	// make it durable (internal/worker).
	RefusedJournal = "journal"
	// ExportOutcomeFailure is the outcome label of a failed export request.
	ExportOutcomeFailure = "failure"
	// PeerRefusedUnauthenticated: a peer call without the pipeline's peer
	// token (internal/handoff).
	PeerRefusedUnauthenticated = "unauthenticated"
)

// The gateway's self-metrics: the collector's own telemetry (collector
// v0.161.0, Prometheus pull reader, counters without _total) and the
// DeltaPipeline router's (cmd/gateway/routerexporter, label worker).
const (
	GatewayAcceptedPoints      = "otelcol_receiver_accepted_metric_points"
	GatewayRefusedPoints       = "otelcol_receiver_refused_metric_points"
	GatewaySentPoints          = "otelcol_exporter_sent_metric_points"
	GatewaySendFailedPoints    = "otelcol_exporter_send_failed_metric_points"
	GatewayRouterSentPoints    = "otelcol_deltapipeline_router_sent_points"
	GatewayRouterDroppedPoints = "otelcol_deltapipeline_router_dropped_points"
	GatewayRouterRefusedPoints = "otelcol_deltapipeline_router_refused_points"
	GatewayRouterQueueSize     = "otelcol_deltapipeline_router_queue_size"
	GatewayRouterQueueCapacity = "otelcol_deltapipeline_router_queue_capacity"
)

// kube-state-metrics series the replica rules read.
const (
	KubeDeploymentSpecReplicas      = "kube_deployment_spec_replicas"
	KubeDeploymentAvailableReplicas = "kube_deployment_status_replicas_available"
	KubeStatefulSetReplicas         = "kube_statefulset_replicas"
	KubeStatefulSetReadyReplicas    = "kube_statefulset_status_replicas_ready"
)

// MetricNames lists every metric name the dashboards and rules may use; a
// test fails when a query names a metric missing here.
var MetricNames = []string{
	ClaudeSessions, ClaudeTokens, ClaudeCost, ClaudeActiveTime, ClaudeLinesOfCode,
	ClaudeEditDecisions, ClaudeCommits, ClaudePullRequests,

	WorkerReceivedPoints, WorkerAppliedPoints, WorkerDuplicatePoints, WorkerEmittedPoints,
	WorkerRejectedPoints, WorkerRefusedRequests, WorkerActiveStreams, WorkerStreamLimit,
	WorkerExportRequests, WorkerExportDuration, WorkerExportRetries, WorkerExportedPoints,
	WorkerExportDropped, WorkerExportQueueLength, WorkerExportQueueCap, WorkerWALFsyncDuration,
	WorkerCheckpointSuccess, WorkerCheckpointInterval, WorkerCheckpointFailures, WorkerWALWritable,

	HandoffEpoch, HandoffMovingStreams, HandoffPendingEntries, HandoffStreamsSent, HandoffStreamsReceived,
	HandoffStreamsRefused, HandoffPointsForwarded, HandoffPointsReceived, HandoffForwardRefused,
	HandoffPeerErrors, HandoffPeerRefused, HandoffMembershipErrors,

	GatewayAcceptedPoints, GatewayRefusedPoints, GatewaySentPoints, GatewaySendFailedPoints,
	GatewayRouterSentPoints, GatewayRouterDroppedPoints, GatewayRouterRefusedPoints,
	GatewayRouterQueueSize, GatewayRouterQueueCapacity,

	KubeDeploymentSpecReplicas, KubeDeploymentAvailableReplicas, KubeStatefulSetReplicas,
	KubeStatefulSetReadyReplicas,
}
