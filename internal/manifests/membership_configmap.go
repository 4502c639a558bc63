package manifests

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/ring"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// MembershipKey is the key of the membership document in its ConfigMap.
const MembershipKey = "membership.json"

// RingPlan is the worker ring the controller runs at one reconcile: the
// membership it publishes and the StatefulSet size that goes with it
// (PlanRing decides them).
type RingPlan struct {
	// Epoch of the published membership.
	Epoch uint64
	// Workers are the members; 0 means spec.worker.replicas.
	Workers int32
	// PreviousWorkers, when not 0, are the members streams are handed over
	// from: the ring is rescaling.
	PreviousWorkers int32
	// Phase says what the ring waits for.
	Phase RingPhase
}

// RingPhase is the state of a rescale.
type RingPhase string

const (
	// RingSteady: the ring has spec.worker.replicas members and no
	// hand-over runs.
	RingSteady RingPhase = "Steady"
	// RingStartingWorkers: the StatefulSet grew; the new workers join the
	// ring once they are ready.
	RingStartingWorkers RingPhase = "StartingWorkers"
	// RingHandingOver: streams move to their new owners; the StatefulSet
	// keeps every worker of both rings until they are done.
	RingHandingOver RingPhase = "HandingOver"
)

// SteadyRing is the plan of a ring of spec.worker.replicas members at epoch.
func SteadyRing(epoch uint64) RingPlan { return RingPlan{Epoch: epoch, Phase: RingSteady} }

func (r RingPlan) workers(p *v1alpha1.DeltaPipeline) int32 {
	if r.Workers == 0 {
		return WorkerReplicas(p)
	}
	return r.Workers
}

// StatefulSetReplicas is how many worker pods the plan runs: every member
// of both rings while streams move between them.
func (r RingPlan) StatefulSetReplicas(p *v1alpha1.DeltaPipeline) int32 {
	if r.Phase == RingStartingWorkers {
		return WorkerReplicas(p)
	}
	return max(r.workers(p), r.PreviousWorkers)
}

// members lists n workers: each named after its pod (which keeps its
// ordinal through restarts) and reached at its stable DNS name.
func members(p *v1alpha1.DeltaPipeline, n int32) []ring.Member {
	out := make([]ring.Member, n)
	for i := range out {
		host := naming.WorkerPodHost(p, p.Namespace, i)
		out[i] = ring.Member{
			Name:     naming.WorkerPod(p, i),
			Endpoint: host + ":" + strconv.Itoa(OTLPGRPCPort),
			Peer:     host + ":" + strconv.Itoa(workerconfig.DefaultPeerPort),
		}
	}
	return out
}

// Membership is the ring of plan that the gateways route by and the
// workers hand streams over by.
func Membership(p *v1alpha1.DeltaPipeline, plan RingPlan) ring.Membership {
	m := ring.Membership{Epoch: plan.Epoch, Members: members(p, plan.workers(p))}
	if plan.PreviousWorkers > 0 {
		m.Previous = members(p, plan.PreviousWorkers)
	}
	return m
}

// MembershipConfigMap publishes Membership for the gateways' router and the
// workers, which watch it.
func MembershipConfigMap(p *v1alpha1.DeltaPipeline, plan RingPlan) (*corev1.ConfigMap, error) {
	doc, err := Membership(p, plan).Marshal()
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(p, naming.MembershipConfigMap(p), naming.ComponentWorker),
		Data:       map[string]string{MembershipKey: string(doc)},
	}, nil
}

// RingObservation is what PlanRing decides from.
type RingObservation struct {
	// Published is the membership in the ConfigMap, nil when there is none
	// or it does not parse.
	Published *ring.Membership
	// RecordedEpoch is the epoch the status last reported.
	RecordedEpoch uint64
	// ReadyWorkers are the StatefulSet's ready pods, once its status
	// describes its current spec (0 otherwise).
	ReadyWorkers int32
	// HandoverComplete: every worker of both rings of Published reported
	// its part of the hand-over at Published's epoch acknowledged.
	HandoverComplete bool
}

// PlanRing decides the ring to run from the spec and what was observed:
//
//   - growing: the StatefulSet grows first; the new workers join the ring
//     (a new epoch listing the old ring as previous) once they are ready;
//   - shrinking: the leaving workers leave the ring first (a new epoch) and
//     keep running until the hand-over is complete;
//   - a complete hand-over is settled by one more epoch without previous
//     members, and only then does a shrunk StatefulSet lose its pods;
//   - a change of spec.worker.replicas during a hand-over waits for it.
//
// Epochs only grow, even when the ConfigMap was deleted or damaged: a
// gateway or worker ignores an epoch older than the one it has.
func PlanRing(p *v1alpha1.DeltaPipeline, obs RingObservation) RingPlan {
	desired := WorkerReplicas(p)
	pub := obs.Published
	next := obs.RecordedEpoch + 1
	if pub != nil {
		next = max(next, pub.Epoch+1)
	}
	if pub == nil || pub.Epoch < obs.RecordedEpoch {
		// Nothing trustworthy is published: publish the spec's ring. The
		// workers still hand over whatever is not theirs in it.
		return RingPlan{Epoch: next, Workers: desired, Phase: RingSteady}
	}
	have := int32(len(pub.Members))
	same := Membership(p, RingPlan{Epoch: pub.Epoch, Workers: have, PreviousWorkers: int32(len(pub.Previous))})
	if !same.SameMembers(*pub) || len(same.Previous) != len(pub.Previous) {
		// Renamed or moved workers: route by the names they have now.
		return RingPlan{Epoch: next, Workers: desired, Phase: RingSteady}
	}
	if pub.Rescaling() {
		if obs.HandoverComplete {
			return RingPlan{Epoch: next, Workers: have, Phase: RingSteady}
		}
		return RingPlan{Epoch: pub.Epoch, Workers: have, PreviousWorkers: int32(len(pub.Previous)), Phase: RingHandingOver}
	}
	switch {
	case desired > have && obs.ReadyWorkers >= desired:
		return RingPlan{Epoch: next, Workers: desired, PreviousWorkers: have, Phase: RingHandingOver}
	case desired > have:
		return RingPlan{Epoch: pub.Epoch, Workers: have, Phase: RingStartingWorkers}
	case desired < have:
		return RingPlan{Epoch: next, Workers: desired, PreviousWorkers: have, Phase: RingHandingOver}
	}
	return RingPlan{Epoch: pub.Epoch, Workers: have, Phase: RingSteady}
}

// Describe is the plan in words, for the Rescaling condition.
func (r RingPlan) Describe(p *v1alpha1.DeltaPipeline) string {
	switch r.Phase {
	case RingStartingWorkers:
		return fmt.Sprintf("starting workers: the ring grows from %d to %d workers once the new ones are ready", r.workers(p), WorkerReplicas(p))
	case RingHandingOver:
		return fmt.Sprintf("handing streams over from %d to %d workers (membership epoch %d)", r.PreviousWorkers, r.workers(p), r.Epoch)
	default:
		return fmt.Sprintf("%d workers, membership epoch %d", r.workers(p), r.Epoch)
	}
}
