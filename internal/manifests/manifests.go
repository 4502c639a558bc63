// Package manifests owns what a DeltaPipeline turns into: pure functions that
// take a pipeline and return the typed Kubernetes objects (and the gateway and
// worker configuration files) the operator keeps in the cluster. Nothing here
// talks to the API server, so every shape is testable with golden files.
package manifests

import (
	"crypto/sha256"
	"encoding/hex"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/version"
)

// Options are the operator-wide settings the builders need besides the pipeline.
type Options struct {
	// WorkerImage is used when spec.worker.image is empty.
	WorkerImage string
	// GatewayImage is used when spec.gateway.image is empty and the router
	// is deltapipeline.
	GatewayImage string
	// UpstreamGatewayImage is used when spec.gateway.image is empty and the
	// router is loadBalancing.
	UpstreamGatewayImage string
}

// DefaultWorkerImage is the worker image of the operator's own version.
func DefaultWorkerImage() string {
	return "ghcr.io/deltapipeline/deltapipeline-worker:" + version.Version
}

// DefaultGatewayImage is the gateway distribution (cmd/gateway) of the
// operator's own version.
func DefaultGatewayImage() string {
	return "ghcr.io/deltapipeline/deltapipeline-gateway:" + version.Version
}

// DefaultOptions returns the options of an operator started without flags.
func DefaultOptions() Options {
	return Options{WorkerImage: DefaultWorkerImage(), GatewayImage: DefaultGatewayImage(), UpstreamGatewayImage: v1alpha1.UpstreamGatewayImage}
}

// Ports and paths shared by the builders.
const (
	OTLPGRPCPort         = 4317
	OTLPHTTPPort         = 4318
	CollectorHealthPort  = 13133
	CollectorMetricsPort = 8888

	GatewayConfigDir  = "/conf"
	GatewayConfigFile = "collector.yaml"

	WorkerConfigPath   = "/etc/deltapipeline/worker.yaml"
	WorkerConfigKey    = "worker.yaml"
	WorkerSecretsDir   = "/etc/deltapipeline/secrets"
	WorkerConfigMapDir = "/etc/deltapipeline/configmaps"
	WorkerStateDir     = "/var/lib/deltapipeline"

	// WorkerTerminationGracePeriodSeconds leaves the worker time to flush its
	// last emit and write its final checkpoint after SIGTERM.
	WorkerTerminationGracePeriodSeconds = 60

	gatewayUserID = 10001
	workerUserID  = 65532
)

// ownerReferences makes p the controller of an object, so the object is
// garbage-collected with p and its changes wake p's reconciler.
func ownerReferences(p *v1alpha1.DeltaPipeline) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(p, v1alpha1.GroupVersion.WithKind("DeltaPipeline"))}
}

func objectMeta(p *v1alpha1.DeltaPipeline, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       p.Namespace,
		Labels:          naming.Labels(p, component),
		OwnerReferences: ownerReferences(p),
	}
}

// ContentHash is a short, stable digest used in annotations to notice changes.
func ContentHash(data ...[]byte) string {
	h := sha256.New()
	for _, d := range data {
		h.Write(d)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func gatewayImage(p *v1alpha1.DeltaPipeline, opts Options) string {
	if p.Spec.Gateway.Image != "" {
		return p.Spec.Gateway.Image
	}
	if UsesLoadBalancing(p) {
		if opts.UpstreamGatewayImage != "" {
			return opts.UpstreamGatewayImage
		}
		return v1alpha1.UpstreamGatewayImage
	}
	if opts.GatewayImage != "" {
		return opts.GatewayImage
	}
	return DefaultGatewayImage()
}

func workerImage(p *v1alpha1.DeltaPipeline, opts Options) string {
	if p.Spec.Worker.Image != "" {
		return p.Spec.Worker.Image
	}
	if opts.WorkerImage != "" {
		return opts.WorkerImage
	}
	return DefaultWorkerImage()
}

// GatewayReplicas is the desired gateway size; the API server defaults it,
// this covers objects built before defaulting (tests, dry runs).
func GatewayReplicas(p *v1alpha1.DeltaPipeline) int32 {
	return ptr.Deref(p.Spec.Gateway.Replicas, 2)
}

// WorkerReplicas is the desired worker count.
func WorkerReplicas(p *v1alpha1.DeltaPipeline) int32 {
	return ptr.Deref(p.Spec.Worker.Replicas, 3)
}

// WorkerSelector selects the worker pods, in the string form of the scale
// subresource's selector: the selector the worker StatefulSet is built with.
func WorkerSelector(p *v1alpha1.DeltaPipeline) string {
	return metav1.FormatLabelSelector(labelSelector(naming.SelectorLabels(p, naming.ComponentWorker)))
}

// AutoscalingEnabled reports whether the gateway is sized by an HPA.
func AutoscalingEnabled(p *v1alpha1.DeltaPipeline) bool {
	return p.Spec.Gateway.Autoscaling != nil
}

// PersistenceEnabled reports whether workers keep state on a volume.
func PersistenceEnabled(p *v1alpha1.DeltaPipeline) bool {
	return ptr.Deref(p.Spec.Worker.Persistence.Enabled, true)
}

// UsesKubernetesResolver reports whether gateways discover workers through
// the Kubernetes API, which needs the resolver Role.
func UsesKubernetesResolver(p *v1alpha1.DeltaPipeline) bool {
	return UsesLoadBalancing(p) && p.Spec.Routing.Resolver == v1alpha1.ResolverK8s
}

// UsesLoadBalancing reports whether the gateways run the upstream collector
// and its load_balancing exporter instead of DeltaPipeline's router.
func UsesLoadBalancing(p *v1alpha1.DeltaPipeline) bool {
	return p.Spec.Gateway.Router == v1alpha1.GatewayRouterLoadBalancing
}

// HandoffEnabled reports whether the workers hand streams over when the
// ring changes: only with DeltaPipeline's router do the gateways route by
// the ring the workers know.
func HandoffEnabled(p *v1alpha1.DeltaPipeline) bool { return !UsesLoadBalancing(p) }

// GatewayReadsKubernetesAPI reports whether the gateways watch objects of
// the API server: the router's membership ConfigMap, or the worker
// endpoints the k8s resolver follows.
func GatewayReadsKubernetesAPI(p *v1alpha1.DeltaPipeline) bool {
	return !UsesLoadBalancing(p) || UsesKubernetesResolver(p)
}

// GatewayEndpoints are the in-cluster addresses clients send OTLP to.
func GatewayEndpoints(p *v1alpha1.DeltaPipeline) v1alpha1.Endpoints {
	host := naming.ServiceHost(naming.GatewayService(p), p.Namespace)
	return v1alpha1.Endpoints{
		GRPC: host + ":4317",
		HTTP: "http://" + host + ":4318",
	}
}
