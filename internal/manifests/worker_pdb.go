package manifests

import (
	policyv1 "k8s.io/api/policy/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// WorkerPodDisruptionBudget lets node drains restart one worker at a time, so
// at most one worker's streams wait in the gateway queues at once.
func WorkerPodDisruptionBudget(p *v1alpha1.DeltaPipeline) *policyv1.PodDisruptionBudget {
	return podDisruptionBudget(p, naming.WorkerPodDisruptionBudget(p), naming.ComponentWorker)
}
