package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayService is the address clients send OTLP to.
func GatewayService(p *v1alpha1.DeltaPipeline) *corev1.Service {
	svcType := p.Spec.Gateway.Service.Type
	if svcType == "" {
		svcType = corev1.ServiceTypeClusterIP
	}
	meta := objectMeta(p, naming.GatewayService(p), naming.ComponentGateway)
	meta.Annotations = p.Spec.Gateway.Service.Annotations
	return &corev1.Service{
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: naming.SelectorLabels(p, naming.ComponentGateway),
			Ports: []corev1.ServicePort{
				servicePort("otlp-grpc", OTLPGRPCPort, "grpc"),
				servicePort("otlp-http", OTLPHTTPPort, "http"),
			},
		},
	}
}
