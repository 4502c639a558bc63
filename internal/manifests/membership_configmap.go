package manifests

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// MembershipKey is the key of the membership document in its ConfigMap.
const MembershipKey = "membership.json"

// Membership is the ring the gateways route by: one member per worker
// ordinal, named after its pod (which keeps its ordinal through restarts)
// and reached at its stable DNS name.
func Membership(p *v1alpha1.DeltaPipeline, epoch uint64) ring.Membership {
	m := ring.Membership{Epoch: epoch, Members: make([]ring.Member, WorkerReplicas(p))}
	for i := range m.Members {
		m.Members[i] = ring.Member{
			Name:     naming.WorkerPod(p, i),
			Endpoint: naming.WorkerPodHost(p, p.Namespace, i) + ":" + strconv.Itoa(OTLPGRPCPort),
		}
	}
	return m
}

// MembershipConfigMap publishes Membership for the gateways' router, which
// watches it.
func MembershipConfigMap(p *v1alpha1.DeltaPipeline, epoch uint64) (*corev1.ConfigMap, error) {
	doc, err := Membership(p, epoch).Marshal()
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(p, naming.MembershipConfigMap(p), naming.ComponentWorker),
		Data:       map[string]string{MembershipKey: string(doc)},
	}, nil
}

// MembershipEpoch is the epoch to publish: the published one while the
// members are unchanged, otherwise one more than any epoch published
// before. Gateways ignore an epoch older than theirs, so an epoch never
// goes back, even when the ConfigMap was deleted or damaged: recorded is
// the epoch the pipeline's status last reported, and published is nil when
// no readable membership is published.
func MembershipEpoch(p *v1alpha1.DeltaPipeline, published *ring.Membership, recorded uint64) uint64 {
	if published != nil && published.Epoch >= recorded && Membership(p, published.Epoch).SameMembers(*published) {
		return published.Epoch
	}
	last := recorded
	if published != nil {
		last = max(last, published.Epoch)
	}
	return last + 1
}
