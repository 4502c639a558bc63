package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// podMonitors returns the PodMonitors each tier gets, by component, and
// reports the Monitoring condition. PodMonitors are an owned kind
// (owned_kinds.go) whose CRD may be missing: then the condition says so and
// the tiers get none, nothing fails. Turned off, the tiers get none and
// pruning removes those the pipeline had.
func (r *DeltaPipelineReconciler) podMonitors(p *v1alpha1.DeltaPipeline, status *v1alpha1.DeltaPipelineStatus) (map[string][]client.Object, error) {
	if !manifests.PodMonitorsEnabled(p) {
		meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ConditionMonitoring)
		return nil, nil
	}
	installed, err := r.crdInstalled(manifests.PodMonitorKind.GroupKind(), manifests.PodMonitorKind.Version)
	if err != nil {
		return nil, err
	}
	if !installed {
		c := metav1.Condition{Type: v1alpha1.ConditionMonitoring, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPodMonitorCRDMissing,
			Message: "spec.monitoring.podMonitor.enabled is set but the cluster has no monitoring.coreos.com/v1 PodMonitor CRD (install prometheus-operator); the pipeline runs without PodMonitors"}
		r.warnOnChange(p, c)
		setCondition(status, p, c)
		return nil, nil
	}
	setCondition(status, p, metav1.Condition{Type: v1alpha1.ConditionMonitoring, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPodMonitorsApplied,
		Message: "PodMonitors for the gateway and worker telemetry are applied"})
	return map[string][]client.Object{
		naming.ComponentGateway: {manifests.GatewayPodMonitor(p)},
		naming.ComponentWorker:  {manifests.WorkerPodMonitor(p)},
	}, nil
}

// kindInstalled says whether the API server serves an owned kind: always
// for the built-in kinds, for an optional kind when its CRD exists.
func (r *DeltaPipelineReconciler) kindInstalled(k ownedKind) (bool, error) {
	if k.optional == nil {
		return true, nil
	}
	return r.crdInstalled(k.optional.GroupKind(), k.optional.Version)
}

// crdInstalled asks the API server's discovery, through the manager's REST
// mapper (which looks again when it does not know a kind), whether a kind
// can be stored.
func (r *DeltaPipelineReconciler) crdInstalled(gk schema.GroupKind, version string) (bool, error) {
	_, err := r.RESTMapper().RESTMapping(gk, version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up the %s CRD: %w", gk.Kind, err)
	}
	return true, nil
}
