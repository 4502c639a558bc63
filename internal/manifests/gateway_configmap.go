package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// GatewayConfigMap holds the rendered collector configuration.
func GatewayConfigMap(p *v1alpha1.DeltaPipeline) (*corev1.ConfigMap, error) {
	data, err := GatewayCollectorConfigYAML(p)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(p, naming.GatewayConfigMap(p), naming.ComponentGateway),
		Data:       map[string]string{GatewayConfigFile: string(data)},
	}, nil
}
