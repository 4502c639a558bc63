package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// WorkerConfigMap holds the worker configuration file.
func WorkerConfigMap(p *v1alpha1.DeltaPipeline) (*corev1.ConfigMap, error) {
	data, err := WorkerConfigYAML(p)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(p, naming.WorkerConfigMap(p), naming.ComponentWorker),
		Data:       map[string]string{WorkerConfigKey: string(data)},
	}, nil
}
