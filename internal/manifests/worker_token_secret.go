package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// WorkerTokenSecret holds the gateway-to-worker token, mounted at
// WorkerTokenMountPath in gateway and worker pods. The token is an input: the
// controller keeps the one already stored and generates one only when there
// is none, so a reconcile never changes it. Nil when
// spec.worker.authentication.enabled is false.
func WorkerTokenSecret(p *v1alpha1.DeltaPipeline, token string) *corev1.Secret {
	if !WorkerAuthenticationEnabled(p) {
		return nil
	}
	return tokenSecret(p, naming.WorkerTokenSecret(p), naming.ComponentShared, WorkerTokenFile, token)
}

// tokenSecret holds one generated token under key.
func tokenSecret(p *v1alpha1.DeltaPipeline, name, component, key, token string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(p, name, component),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{key: []byte(token)},
	}
}
