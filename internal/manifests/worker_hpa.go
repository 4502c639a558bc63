package manifests

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// The worker autoscaler's pace. Every change of the worker count hands the
// moved streams' state over to their new owners, so scaling in waits for ten
// minutes of lower recommendations and then removes one worker at most every
// five minutes; scaling out reacts within a minute, adding at most 100 % or
// two workers (whichever is more) per minute.
const (
	workerScaleDownStabilizationSeconds = 600
	workerScaleDownPeriodSeconds        = 300
	workerScaleUpStabilizationSeconds   = 60
	workerScaleUpPeriodSeconds          = 60
	workerScaleUpPercent                = 100
	workerScaleUpPods                   = 2
)

// defaultWorkerMinReplicas is the API server's default of
// spec.worker.autoscaling.minReplicas, for objects built before defaulting.
const defaultWorkerMinReplicas = 3

// WorkerHorizontalPodAutoscaler scales the workers on CPU, memory or both;
// nil when spec.worker.autoscaling is unset. Its target is the pipeline's
// scale subresource, not the StatefulSet: the autoscaler writes
// spec.worker.replicas, and the operator, the StatefulSet's only writer,
// rescales the workers from there.
func WorkerHorizontalPodAutoscaler(p *v1alpha1.DeltaPipeline) *autoscalingv2.HorizontalPodAutoscaler {
	a := p.Spec.Worker.Autoscaling
	if a == nil {
		return nil
	}
	var metrics []autoscalingv2.MetricSpec
	if a.TargetCPUUtilizationPercentage != nil {
		metrics = append(metrics, utilizationMetric(corev1.ResourceCPU, *a.TargetCPUUtilizationPercentage))
	}
	if a.TargetMemoryUtilizationPercentage != nil {
		metrics = append(metrics, utilizationMetric(corev1.ResourceMemory, *a.TargetMemoryUtilizationPercentage))
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: objectMeta(p, naming.WorkerHorizontalPodAutoscaler(p), naming.ComponentWorker),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: v1alpha1.GroupVersion.String(),
				Kind:       "DeltaPipeline",
				Name:       p.Name,
			},
			MinReplicas: ptr.To(ptr.Deref(a.MinReplicas, defaultWorkerMinReplicas)),
			MaxReplicas: a.MaxReplicas,
			Metrics:     metrics,
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](workerScaleUpStabilizationSeconds),
					SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PercentScalingPolicy, Value: workerScaleUpPercent, PeriodSeconds: workerScaleUpPeriodSeconds},
						{Type: autoscalingv2.PodsScalingPolicy, Value: workerScaleUpPods, PeriodSeconds: workerScaleUpPeriodSeconds},
					},
				},
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](workerScaleDownStabilizationSeconds),
					SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: workerScaleDownPeriodSeconds},
					},
				},
			},
		},
	}
}
