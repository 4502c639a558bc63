package manifests

import (
	"maps"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// PodMonitorKind is prometheus-operator's PodMonitor. It is built as an
// unstructured object so that the operator needs neither prometheus-operator's
// Go module nor its CRD to start.
var PodMonitorKind = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}

// Container port names the PodMonitors scrape (gateway_deployment.go,
// worker_statefulset.go).
const (
	gatewayMetricsPortName  = "metrics"
	workerTelemetryPortName = "telemetry"
	telemetryMetricsPath    = "/metrics"
)

// PodMonitorsEnabled says whether the pipeline asks for PodMonitors.
func PodMonitorsEnabled(p *v1alpha1.DeltaPipeline) bool { return p.Spec.Monitoring.PodMonitor.Enabled }

// GatewayPodMonitor scrapes every gateway pod's collector telemetry.
func GatewayPodMonitor(p *v1alpha1.DeltaPipeline) *unstructured.Unstructured {
	return podMonitor(p, naming.GatewayPodMonitor(p), naming.ComponentGateway, gatewayMetricsPortName)
}

// WorkerPodMonitor scrapes every worker pod's telemetry port.
func WorkerPodMonitor(p *v1alpha1.DeltaPipeline) *unstructured.Unstructured {
	return podMonitor(p, naming.WorkerPodMonitor(p), naming.ComponentWorker, workerTelemetryPortName)
}

// podMonitor selects one tier's pods by their selector labels in the
// pipeline's namespace. prometheus-operator adds the namespace and pod
// labels the dashboards and alert rules group by.
func podMonitor(p *v1alpha1.DeltaPipeline, name, component, port string) *unstructured.Unstructured {
	spec := p.Spec.Monitoring.PodMonitor
	endpoint := map[string]any{"port": port, "path": telemetryMetricsPath}
	if spec.Interval != "" {
		endpoint["interval"] = spec.Interval
	}
	matchLabels := map[string]any{}
	for k, v := range naming.SelectorLabels(p, component) {
		matchLabels[k] = v
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector":            map[string]any{"matchLabels": matchLabels},
			"namespaceSelector":   map[string]any{"matchNames": []any{p.Namespace}},
			"podMetricsEndpoints": []any{endpoint},
		},
	}}
	obj.SetGroupVersionKind(PodMonitorKind)
	meta := objectMeta(p, name, component)
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, meta.Labels)
	obj.SetName(meta.Name)
	obj.SetNamespace(meta.Namespace)
	obj.SetLabels(labels)
	obj.SetOwnerReferences(meta.OwnerReferences)
	return obj
}
