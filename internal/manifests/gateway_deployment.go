package manifests

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayDeployment runs the collectors. configHash is the ContentHash of the
// gateway ConfigMap data: a new value rolls the pods onto the new configuration.
func GatewayDeployment(p *v1alpha1.DeltaPipeline, opts Options, configHash string) *appsv1.Deployment {
	selector := naming.SelectorLabels(p, naming.ComponentGateway)
	spec := corev1.PodSpec{
		ServiceAccountName:            naming.GatewayServiceAccount(p),
		AutomountServiceAccountToken:  ptr.To(UsesKubernetesResolver(p)),
		SecurityContext:               restrictedPodSecurityContext(gatewayUserID),
		TerminationGracePeriodSeconds: ptr.To[int64](30),
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
			SecurityContext: restrictedContainerSecurityContext(),
			VolumeMounts:    []corev1.VolumeMount{{Name: "config", MountPath: GatewayConfigDir, ReadOnly: true}},
		}},
		Volumes: []corev1.Volume{{
			Name: "config",
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: naming.GatewayConfigMap(p)},
				DefaultMode:          ptr.To[int32](0o444),
			}},
		}},
	}
	applyScheduling(&spec, p.Spec.Gateway.Scheduling, selector)

	return &appsv1.Deployment{
		ObjectMeta: objectMeta(p, naming.GatewayDeployment(p), naming.ComponentGateway),
		Spec: appsv1.DeploymentSpec{
			Replicas: gatewayDeploymentReplicas(p),
			Selector: labelSelector(selector),
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
