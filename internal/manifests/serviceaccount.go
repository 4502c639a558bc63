package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayServiceAccount is the gateway pods' identity, bound to the resolver Role.
func GatewayServiceAccount(p *v1alpha1.DeltaPipeline) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta: objectMeta(p, naming.GatewayServiceAccount(p), naming.ComponentGateway),
	}
}

// WorkerServiceAccount is the workers' identity. Its annotations come from
// spec.serviceAccount so IRSA or Pod Identity can give workers the AWS role
// that signs remote write requests to AMP.
func WorkerServiceAccount(p *v1alpha1.DeltaPipeline) *corev1.ServiceAccount {
	meta := objectMeta(p, naming.WorkerServiceAccount(p), naming.ComponentWorker)
	meta.Annotations = p.Spec.ServiceAccount.Annotations
	return &corev1.ServiceAccount{ObjectMeta: meta}
}
