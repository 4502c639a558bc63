package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
)

// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;list;watch;create;update;patch;delete

// PodMonitors are not watched: prometheus-operator's CRD may be installed
// after the operator started, or never. They are applied on every reconcile
// of a pipeline that asks for them, and read straight from the API server
// (the client does not cache unstructured objects).

// reconcileMonitoring applies or removes the pipeline's PodMonitors and
// reports the Monitoring condition. A missing CRD is reported, not failed:
// the pipeline runs without scrape objects.
func (r *DeltaPipelineReconciler) reconcileMonitoring(ctx context.Context, p *v1alpha1.DeltaPipeline, status *v1alpha1.DeltaPipelineStatus) error {
	installed, err := r.podMonitorCRDInstalled()
	if err != nil {
		return err
	}
	if !manifests.PodMonitorsEnabled(p) {
		meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ConditionMonitoring)
		if !installed {
			return nil
		}
		for _, m := range manifests.PodMonitorNames(p) {
			if err := r.removePodMonitor(ctx, p, m); err != nil {
				return err
			}
		}
		return nil
	}
	if !installed {
		c := metav1.Condition{Type: v1alpha1.ConditionMonitoring, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPodMonitorCRDMissing,
			Message: "spec.monitoring.podMonitor.enabled is set but the cluster has no monitoring.coreos.com/v1 PodMonitor CRD (install prometheus-operator); the pipeline runs without PodMonitors"}
		r.warnOnChange(p, c)
		setCondition(status, p, c)
		return nil
	}
	for _, desired := range []*unstructured.Unstructured{manifests.GatewayPodMonitor(p), manifests.WorkerPodMonitor(p)} {
		if err := r.applyPodMonitor(ctx, p, desired); err != nil {
			return err
		}
	}
	setCondition(status, p, metav1.Condition{Type: v1alpha1.ConditionMonitoring, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPodMonitorsApplied,
		Message: "PodMonitors for the gateway and worker telemetry are applied"})
	return nil
}

// podMonitorCRDInstalled asks the API server's discovery, through the
// manager's REST mapper, whether PodMonitors can be stored.
func (r *DeltaPipelineReconciler) podMonitorCRDInstalled() (bool, error) {
	_, err := r.RESTMapper().RESTMapping(manifests.PodMonitorKind.GroupKind(), manifests.PodMonitorKind.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up the PodMonitor CRD: %w", err)
	}
	return true, nil
}

func (r *DeltaPipelineReconciler) applyPodMonitor(ctx context.Context, p *v1alpha1.DeltaPipeline, desired *unstructured.Unstructured) error {
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(manifests.PodMonitorKind)
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, desired); err != nil {
			return fmt.Errorf("creating PodMonitor %s: %w", desired.GetName(), err)
		}
		log.FromContext(ctx).Info("object created", "kind", "PodMonitor", "name", desired.GetName())
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading PodMonitor %s: %w", desired.GetName(), err)
	}
	if ctrl := metav1.GetControllerOf(existing); ctrl == nil || ctrl.UID != p.UID {
		return fmt.Errorf("PodMonitor %s already exists and is not controlled by this pipeline", desired.GetName())
	}
	labels := existing.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	changed := false
	for k, v := range desired.GetLabels() {
		if labels[k] != v {
			labels[k] = v
			changed = true
		}
	}
	if !equality.Semantic.DeepEqual(existing.Object["spec"], desired.Object["spec"]) {
		existing.Object["spec"] = desired.Object["spec"]
		changed = true
	}
	if !changed {
		return nil
	}
	existing.SetLabels(labels)
	if err := r.Update(ctx, existing); err != nil {
		return fmt.Errorf("updating PodMonitor %s: %w", desired.GetName(), err)
	}
	log.FromContext(ctx).Info("object updated", "kind", "PodMonitor", "name", desired.GetName())
	return nil
}

// removePodMonitor deletes a PodMonitor of monitoring turned off, if this
// pipeline controls it.
func (r *DeltaPipelineReconciler) removePodMonitor(ctx context.Context, p *v1alpha1.DeltaPipeline, m metav1.ObjectMeta) error {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(manifests.PodMonitorKind)
	err := r.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading PodMonitor %s: %w", m.Name, err)
	}
	if !metav1.IsControlledBy(obj, p) {
		return nil
	}
	if err := r.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting PodMonitor %s: %w", m.Name, err)
	}
	log.FromContext(ctx).Info("object pruned", "kind", "PodMonitor", "name", m.Name)
	return nil
}
