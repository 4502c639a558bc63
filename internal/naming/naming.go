// Package naming owns the names and labels of every object the operator
// creates for a DeltaPipeline, so the builders, the controller and the tests
// agree on them without repeating string formats.
package naming

import (
	"fmt"
	"strings"
)

// MaxPipelineNameLength keeps every derived name a valid DNS label: the
// longest is a worker pod's controller-revision-hash label value,
// "<name>-worker-<10 character hash>", which must fit in 63 characters.
const MaxPipelineNameLength = 40

// Components of a pipeline, the value of the component label.
const (
	ComponentGateway = "gateway"
	ComponentWorker  = "worker"
	// ComponentShared labels objects both tiers use (the gateway-to-worker
	// token Secret): they are applied before either tier.
	ComponentShared = "shared"
)

// Label keys and fixed values.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"

	AppName   = "deltapipeline"
	ManagedBy = "deltapipeline-operator"
)

// Annotation keys.
const (
	// ConfigHashAnnotation on a pod template changes with the rendered
	// configuration, which rolls the pods when the configuration changes.
	ConfigHashAnnotation = "telemetry.deltapipeline.io/config-hash"
	// DesiredHashAnnotation on an owned object records what the operator last
	// wrote, so an unchanged pipeline needs no write.
	DesiredHashAnnotation = "telemetry.deltapipeline.io/desired-hash"
)

// Named is anything with a name, such as a *v1alpha1.DeltaPipeline.
type Named interface {
	GetName() string
}

func suffixed(p Named, suffix string) string { return p.GetName() + "-" + suffix }

// GatewayConfigMap holds the gateway collector configuration.
func GatewayConfigMap(p Named) string { return suffixed(p, "gateway") }

// GatewayDeployment runs the gateway collectors.
func GatewayDeployment(p Named) string { return suffixed(p, "gateway") }

// GatewayService is where clients send OTLP.
func GatewayService(p Named) string { return suffixed(p, "gateway") }

// GatewayPodDisruptionBudget limits voluntary gateway evictions.
func GatewayPodDisruptionBudget(p Named) string { return suffixed(p, "gateway") }

// GatewayServiceAccount is the identity of gateway pods.
func GatewayServiceAccount(p Named) string { return suffixed(p, "gateway") }

// GatewayResolverRole lets the gateway's k8s resolver watch worker endpoints.
func GatewayResolverRole(p Named) string { return suffixed(p, "gateway-resolver") }

// GatewayResolverRoleBinding binds GatewayResolverRole to GatewayServiceAccount.
func GatewayResolverRoleBinding(p Named) string { return suffixed(p, "gateway-resolver") }

// GatewayNetworkPolicy limits who may connect to gateway pods.
func GatewayNetworkPolicy(p Named) string { return suffixed(p, "gateway") }

// GatewayHorizontalPodAutoscaler scales the gateway Deployment.
func GatewayHorizontalPodAutoscaler(p Named) string { return suffixed(p, "gateway") }

// MembershipConfigMap publishes the worker ring the gateways' router follows.
func MembershipConfigMap(p Named) string { return suffixed(p, "membership") }

// GatewayClientTokensSecret holds the tokens of spec.gateway.auth.bearerTokens,
// one per line, for the gateway's bearertokenauth extension.
func GatewayClientTokensSecret(p Named) string { return suffixed(p, "gateway-client-tokens") }

// WorkerTokenSecret holds the token the gateways send to the workers.
func WorkerTokenSecret(p Named) string { return suffixed(p, "worker-token") }

// PeerTokenSecret holds the token workers of one pipeline present to each
// other's peer port.
func PeerTokenSecret(p Named) string { return suffixed(p, "peer-token") }

// WorkerMembershipRole lets the workers watch the membership ConfigMap.
func WorkerMembershipRole(p Named) string { return suffixed(p, "worker-membership") }

// WorkerMembershipRoleBinding binds WorkerMembershipRole to WorkerServiceAccount.
func WorkerMembershipRoleBinding(p Named) string { return suffixed(p, "worker-membership") }

// WorkerConfigMap holds the worker configuration file.
func WorkerConfigMap(p Named) string { return suffixed(p, "worker") }

// WorkerStatefulSet runs the workers.
func WorkerStatefulSet(p Named) string { return suffixed(p, "worker") }

// WorkerHeadlessService gives each worker pod a stable DNS name and lets the
// gateway resolver discover the workers.
func WorkerHeadlessService(p Named) string { return suffixed(p, "worker") }

// WorkerPodDisruptionBudget limits voluntary worker evictions.
func WorkerPodDisruptionBudget(p Named) string { return suffixed(p, "worker") }

// WorkerNetworkPolicy limits who may connect to worker pods.
func WorkerNetworkPolicy(p Named) string { return suffixed(p, "worker") }

// WorkerHorizontalPodAutoscaler scales the workers through the pipeline's
// scale subresource.
func WorkerHorizontalPodAutoscaler(p Named) string { return suffixed(p, "worker") }

// WorkerServiceAccount is the identity of worker pods (IRSA, Pod Identity).
func WorkerServiceAccount(p Named) string { return suffixed(p, "worker") }

// WorkerStateVolumeClaim is the StatefulSet volume claim template name.
const WorkerStateVolumeClaim = "state"

// WorkerPod is the name of worker pod ordinal i.
func WorkerPod(p Named, ordinal int) string {
	return fmt.Sprintf("%s-%d", WorkerStatefulSet(p), ordinal)
}

// WorkerPodHost is the stable in-cluster DNS name of worker pod ordinal i,
// published by the worker headless Service.
func WorkerPodHost(p Named, namespace string, ordinal int) string {
	return WorkerPod(p, ordinal) + "." + ServiceHost(WorkerHeadlessService(p), namespace)
}

// ServiceHost is the in-cluster DNS name of a Service.
func ServiceHost(service, namespace string) string {
	return service + "." + namespace + ".svc"
}

// SelectorLabels select the pods of one component of one pipeline. They never
// change for an existing pipeline because Deployment and StatefulSet
// selectors are immutable.
func SelectorLabels(p Named, component string) map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelInstance:  p.GetName(),
		LabelComponent: component,
	}
}

// Labels are set on every object of one component of one pipeline.
func Labels(p Named, component string) map[string]string {
	l := SelectorLabels(p, component)
	l[LabelManagedBy] = ManagedBy
	l[LabelPartOf] = AppName
	return l
}

// SecretVolume is the pod volume name for a mounted Secret. Volume names are
// DNS labels of at most 63 characters while Secret names may be longer and
// contain dots, so the name is shortened and made unique with a hash.
func SecretVolume(secret string) string { return volumeName("secret-", secret) }

// ConfigMapVolume is the pod volume name for a mounted ConfigMap.
func ConfigMapVolume(configMap string) string { return volumeName("configmap-", configMap) }

func volumeName(prefix, name string) string {
	clean := strings.ReplaceAll(name, ".", "-")
	const maxLen = 63
	if len(prefix)+len(clean) <= maxLen {
		return prefix + clean
	}
	h := fnv32(name)
	keep := maxLen - len(prefix) - 9
	return fmt.Sprintf("%s%s-%08x", prefix, strings.TrimRight(clean[:keep], "-"), h)
}

func fnv32(s string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

// GatewayPodMonitor is the PodMonitor scraping the gateways' telemetry.
func GatewayPodMonitor(p Named) string { return suffixed(p, "gateway") }

// WorkerPodMonitor is the PodMonitor scraping the workers' telemetry.
func WorkerPodMonitor(p Named) string { return suffixed(p, "worker") }
