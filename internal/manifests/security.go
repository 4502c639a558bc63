package manifests

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// RestrictedPodSecurityContext satisfies the "restricted" Pod Security
// Standard; the cluster suite's own pods use it too.
func RestrictedPodSecurityContext(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To(uid),
		RunAsGroup:     ptr.To(uid),
		FSGroup:        ptr.To(uid),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// RestrictedContainerSecurityContext is the container half of the
// "restricted" Pod Security Standard.
func RestrictedContainerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// httpProbe sets every field the API server would otherwise default, so the
// built object compares equal to the stored one.
func httpProbe(path string, port int32, initialDelay, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path:   path,
			Port:   intstr.FromInt32(port),
			Scheme: corev1.URISchemeHTTP,
		}},
		InitialDelaySeconds: initialDelay,
		PeriodSeconds:       period,
		TimeoutSeconds:      2,
		SuccessThreshold:    1,
		FailureThreshold:    failures,
	}
}

func tcpPort(name string, port int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}
}

func servicePort(name string, port int32, appProtocol string) corev1.ServicePort {
	sp := corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP}
	if appProtocol != "" {
		sp.AppProtocol = ptr.To(appProtocol)
	}
	return sp
}

// topologySpread spreads a tier across nodes unless the user placed it
// explicitly: losing one node should not take a whole tier down.
func topologySpread(s v1alpha1.Scheduling, selector map[string]string) []corev1.TopologySpreadConstraint {
	if len(s.TopologySpreadConstraints) > 0 {
		return s.TopologySpreadConstraints
	}
	return []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       corev1.LabelHostname,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector:     labelSelector(selector),
	}}
}

func applyScheduling(spec *corev1.PodSpec, s v1alpha1.Scheduling, selector map[string]string) {
	spec.NodeSelector = s.NodeSelector
	spec.Tolerations = s.Tolerations
	spec.Affinity = s.Affinity
	spec.TopologySpreadConstraints = topologySpread(s, selector)
}
