package manifests

import (
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayPodDisruptionBudget lets node drains take one gateway at a time: an
// eviction is refused while another gateway is stopping or not yet ready, so
// the other replicas keep serving while the evicted one drains. Rollouts are
// not evictions and ignore it; gatewayRolloutStrategy keeps their capacity
// instead. With a single replica the evicted gateway has no peer to take its
// clients, which is why spec.gateway.replicas defaults to 2.
func GatewayPodDisruptionBudget(p *v1alpha1.DeltaPipeline) *policyv1.PodDisruptionBudget {
	return podDisruptionBudget(p, naming.GatewayPodDisruptionBudget(p), naming.ComponentGateway)
}

func podDisruptionBudget(p *v1alpha1.DeltaPipeline, name, component string) *policyv1.PodDisruptionBudget {
	maxUnavailable := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(p, name, component),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       labelSelector(naming.SelectorLabels(p, component)),
		},
	}
}
