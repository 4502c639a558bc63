package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// Where the workers find the peer token.
const (
	PeerTokenMountPath = "/etc/deltapipeline/peer-token"
	PeerTokenFile      = "token"
	PeerTokenPath      = PeerTokenMountPath + "/" + PeerTokenFile
	peerTokenVolume    = "peer-token"
)

// PeerTokenSecret holds the token the pipeline's workers present to each
// other when they hand streams over; only workers mount it, so a gateway
// (or anything else) cannot call the peer port. The token is an input, as
// WorkerTokenSecret's is. Nil when the workers do not hand streams over.
func PeerTokenSecret(p *v1alpha1.DeltaPipeline, token string) *corev1.Secret {
	if !HandoffEnabled(p) {
		return nil
	}
	return tokenSecret(p, naming.PeerTokenSecret(p), naming.ComponentWorker, PeerTokenFile, token)
}

func peerTokenVolumes(p *v1alpha1.DeltaPipeline) ([]corev1.Volume, []corev1.VolumeMount) {
	if !HandoffEnabled(p) {
		return nil, nil
	}
	v, m := secretFiles(peerTokenVolume, naming.PeerTokenSecret(p), PeerTokenMountPath, PeerTokenFile)
	return []corev1.Volume{v}, []corev1.VolumeMount{m}
}
