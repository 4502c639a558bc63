package manifests

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayDeployment runs the collectors. configHash is the ContentHash of
// what the collector reads only at start (the ConfigMap data and the worker
// token): a new value rolls the pods onto the new configuration.
func GatewayDeployment(p *v1alpha1.DeltaPipeline, opts Options, configHash string) *appsv1.Deployment {
	selector := naming.SelectorLabels(p, naming.ComponentGateway)
	ingressVolumes, ingressMounts := gatewayIngressVolumes(p)
	spec := corev1.PodSpec{
		ServiceAccountName:            naming.GatewayServiceAccount(p),
		AutomountServiceAccountToken:  ptr.To(GatewayReadsKubernetesAPI(p)),
		SecurityContext:               RestrictedPodSecurityContext(gatewayUserID),
		TerminationGracePeriodSeconds: ptr.To[int64](GatewayTerminationGracePeriodSeconds),
		Containers: []corev1.Container{{
			Name:  "collector",
			Image: gatewayImage(p, opts),
			Args:  []string{"--config=" + GatewayConfigDir + "/" + GatewayConfigFile},
			Ports: []corev1.ContainerPort{
				tcpPort("otlp-grpc", OTLPGRPCPort),
				tcpPort("otlp-http", OTLPHTTPPort),
				tcpPort("health", CollectorHealthPort),
				tcpPort("metrics", CollectorMetricsPort),
			},
			Resources:       GatewayResources(p),
			LivenessProbe:   httpProbe("/", CollectorHealthPort, 5, 10, 3),
			ReadinessProbe:  httpProbe("/", CollectorHealthPort, 2, 5, 3),
			Lifecycle:       gatewayLifecycle(),
			SecurityContext: RestrictedContainerSecurityContext(),
			VolumeMounts:    append([]corev1.VolumeMount{{Name: "config", MountPath: GatewayConfigDir, ReadOnly: true}}, ingressMounts...),
		}},
		Volumes: append([]corev1.Volume{{
			Name: "config",
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: naming.GatewayConfigMap(p)},
				DefaultMode:          ptr.To[int32](0o444),
			}},
		}}, ingressVolumes...),
	}
	applyScheduling(&spec, p.Spec.Gateway.Scheduling, selector)

	return &appsv1.Deployment{
		ObjectMeta: objectMeta(p, naming.GatewayDeployment(p), naming.ComponentGateway),
		Spec: appsv1.DeploymentSpec{
			Replicas: gatewayDeploymentReplicas(p),
			Selector: labelSelector(selector),
			Strategy: gatewayRolloutStrategy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      naming.Labels(p, naming.ComponentGateway),
					Annotations: map[string]string{naming.ConfigHashAnnotation: configHash},
				},
				Spec: spec,
			},
		},
	}
}

// Drain timing of a gateway pod. Clients of the gateway (Claude Code among
// them) never retry a refused export, so a stopping gateway must keep serving
// until no new connection can reach it, and the rollout must never run below
// the desired number of ready gateways.
//
// When a pod is deleted its endpoint turns not ready in the EndpointSlice at
// once, independent of the readiness probe: the probe only matters for pods
// that are not stopping. The slice change then has to reach every consumer:
// kube-proxy rewrites its rules within about a second (its default
// minSyncPeriod is 1 s), ingress controllers and the gRPC clients resolving
// the Service within a few seconds. GatewayPreStopDelaySeconds waits well
// beyond that before the collector gets SIGTERM; a cloud load balancer that
// deregisters targets more slowly (several health-check intervals) needs
// its own deregistration delay below this value or a longer pre-stop.
//
// After the sleep the collector shuts down in pipeline order: the OTLP
// receivers stop accepting and finish the requests in flight, then each
// per-worker sending queue is drained. The collector's exporter helper stops
// the retry sender before it drains the queue, so during shutdown every
// queued request gets one attempt, of at most perWorkerTimeoutSeconds, and
// is dropped (counted in otelcol_exporter_send_failed_metric_points) if its
// worker does not answer: the GatewayRetryBudget of retries does not run
// while a gateway stops, and a longer grace period would not bring it back.
// gatewayShutdownSeconds is the time the drain of live workers' queues
// needs: one request in flight per worker plus the queued ones, each a few
// milliseconds against a running worker.
const (
	GatewayPreStopDelaySeconds = 15
	gatewayShutdownSeconds     = perWorkerTimeoutSeconds + 20
	// GatewayTerminationGracePeriodSeconds covers the pre-stop delay and the
	// collector's shutdown; the kubelet kills the container only after it.
	GatewayTerminationGracePeriodSeconds = GatewayPreStopDelaySeconds + gatewayShutdownSeconds
)

// gatewayLifecycle delays SIGTERM by GatewayPreStopDelaySeconds with the
// kubelet's own sleep action, which needs no shell in the collector image.
func gatewayLifecycle() *corev1.Lifecycle {
	return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		Sleep: &corev1.SleepAction{Seconds: GatewayPreStopDelaySeconds},
	}}
}

// gatewayRolloutStrategy starts a new gateway, and waits for it to be ready,
// before it stops an old one, so a rollout never removes serving capacity.
func gatewayRolloutStrategy() appsv1.DeploymentStrategy {
	maxUnavailable := intstr.FromInt32(0)
	maxSurge := intstr.FromInt32(1)
	return appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: &maxUnavailable,
			MaxSurge:       &maxSurge,
		},
	}
}

// gatewayDeploymentReplicas leaves the replica count to the HPA when autoscaling
// is on; writing it would fight the autoscaler on every reconcile.
func gatewayDeploymentReplicas(p *v1alpha1.DeltaPipeline) *int32 {
	if AutoscalingEnabled(p) {
		return nil
	}
	return ptr.To(GatewayReplicas(p))
}

func labelSelector(labels map[string]string) *metav1.LabelSelector {
	m := make(map[string]string, len(labels))
	for k, v := range labels {
		m[k] = v
	}
	return &metav1.LabelSelector{MatchLabels: m}
}
