package manifests

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayHorizontalPodAutoscaler scales the gateway on CPU; nil when
// spec.gateway.autoscaling is unset.
func GatewayHorizontalPodAutoscaler(p *v1alpha1.DeltaPipeline) *autoscalingv2.HorizontalPodAutoscaler {
	a := p.Spec.Gateway.Autoscaling
	if a == nil {
		return nil
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: objectMeta(p, naming.GatewayHorizontalPodAutoscaler(p), naming.ComponentGateway),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1",
				Kind:       "Deployment",
				Name:       naming.GatewayDeployment(p),
			},
			MinReplicas: ptr.To(ptr.Deref(a.MinReplicas, 2)),
			MaxReplicas: a.MaxReplicas,
			Metrics: []autoscalingv2.MetricSpec{
				utilizationMetric(corev1.ResourceCPU, ptr.Deref(a.TargetCPUUtilizationPercentage, 70)),
			},
		},
	}
}

// utilizationMetric keeps the pods' average use of a resource at percent of
// their containers' requests.
func utilizationMetric(resource corev1.ResourceName, percent int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name: resource,
			Target: autoscalingv2.MetricTarget{
				Type:               autoscalingv2.UtilizationMetricType,
				AverageUtilization: ptr.To(percent),
			},
		},
	}
}
