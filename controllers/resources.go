package controllers

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
)

// reportResources shows the resources each tier is rendered with in the
// status and sets WorkerMemoryFits; call it after observeTiers, which
// replaces the tier statuses.
func (r *DeltaPipelineReconciler) reportResources(p *v1alpha1.DeltaPipeline, status *v1alpha1.DeltaPipelineStatus) {
	gateway := manifests.GatewayResources(p)
	worker := manifests.WorkerResources(p)
	status.Gateway.Resources = &gateway
	status.Workers.Resources = &worker

	c := workerMemoryCondition(manifests.WorkerMemoryFitFor(p))
	if c.Status == metav1.ConditionFalse {
		r.warnOnChange(p, c)
	}
	setCondition(status, p, c)
}

// workerMemoryCondition turns a worker's memory fit into WorkerMemoryFits:
// False names the stream count the limit holds, so the overcommit is seen
// before a full worker is OOM-killed.
func workerMemoryCondition(f manifests.WorkerMemoryFit) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionWorkerMemoryFits}
	switch {
	case !f.Limited:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonNoMemoryLimit
		c.Message = fmt.Sprintf("workers have no memory limit; %d streams need about %s", f.MaxStreams, mebibytes(f.Needed))
	case f.Fits():
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonStreamsFitMemory
		c.Message = fmt.Sprintf("the worker memory limit %s holds about %d streams, spec.worker.conversion.maxStreams is %d", mebibytes(f.Limit), f.Capacity, f.MaxStreams)
	default:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonMaxStreamsExceedMemory
		c.Message = fmt.Sprintf("spec.worker.conversion.maxStreams %d needs a worker memory limit of about %s, but spec.worker.resources.limits.memory is %s, which holds about %d streams: a worker would be OOM-killed before it reached its stream limit; raise the limit, lower maxStreams, or remove the limit (limits.memory: \"0\")",
			f.MaxStreams, mebibytes(f.Needed), mebibytes(f.Limit), f.Capacity)
	}
	return c
}

func mebibytes(bytes int64) string {
	return fmt.Sprintf("%dMi", (bytes+1<<20-1)>>20)
}
