package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// WorkerHeadlessService gives every worker pod a DNS name and is what the
// gateway resolver watches. Only ready workers are published, so a gateway
// never routes to a worker that has not restored its state yet.
func WorkerHeadlessService(p *v1alpha1.DeltaPipeline) *corev1.Service {
	ports := []corev1.ServicePort{servicePort("otlp-grpc", workerconfig.DefaultOTLPGRPCPort, "grpc")}
	if HandoffEnabled(p) {
		ports = append(ports, servicePort("peer", workerconfig.DefaultPeerPort, "grpc"))
	}
	if port := PrometheusPort(p); port != 0 {
		ports = append(ports, servicePort("prometheus", port, "http"))
	}
	return &corev1.Service{
		ObjectMeta: objectMeta(p, naming.WorkerHeadlessService(p), naming.ComponentWorker),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: false,
			Selector:                 naming.SelectorLabels(p, naming.ComponentWorker),
			Ports:                    ports,
		},
	}
}
