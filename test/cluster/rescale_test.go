package cluster

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// Metrics of the workers' hand-over (docs/worker.md): streams a worker handed
// over and its new owner acknowledged, and streams it received.
const (
	handoffSentMetric     = "deltapipeline_worker_handoff_streams_sent_total"
	handoffReceivedMetric = "deltapipeline_worker_handoff_streams_received_total"
	handoffEpochMetric    = "deltapipeline_worker_handoff_membership_epoch"
)

// ringSettled reports whether p's status describes a finished rescale to
// workers: the status is of the current generation, Rescaling is False and
// the published membership lists workers with no previous ring. Reading the
// membership count as well matters because right after `kubectl scale` the
// status still says False about the old ring.
func ringSettled(p *v1alpha1.DeltaPipeline, workers int32) error {
	if p.Status.ObservedGeneration != p.Generation {
		return fmt.Errorf("status of generation %d, spec at %d", p.Status.ObservedGeneration, p.Generation)
	}
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionRescaling)
	if c == nil || c.Status != metav1.ConditionFalse {
		return fmt.Errorf("Rescaling condition %+v", c)
	}
	m := p.Status.Membership
	if m == nil || m.Workers != workers || m.PreviousWorkers != 0 {
		return fmt.Errorf("status.membership %+v, want %d workers and no previous ring", m, workers)
	}
	return nil
}

// rescaleWatch keeps what the Rescaling condition said while a rescale ran:
// the reasons in the order seen, and how often a worker was unreachable for
// the operator (it reads each worker's /handoff through cluster DNS).
type rescaleWatch struct {
	reasons     []string
	unreachable int
	lastMessage string
}

func (w *rescaleWatch) observe(p *v1alpha1.DeltaPipeline) {
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionRescaling)
	if c == nil {
		return
	}
	if n := len(w.reasons); n == 0 || w.reasons[n-1] != c.Reason {
		w.reasons = append(w.reasons, c.Reason)
	}
	if c.Status == metav1.ConditionTrue && c.Message != w.lastMessage {
		w.lastMessage = c.Message
		if strings.Contains(c.Message, "unreachable") {
			w.unreachable++
		}
	}
}

func (w *rescaleWatch) String() string {
	return fmt.Sprintf("Rescaling reasons %s, %d progress messages naming an unreachable worker",
		strings.Join(w.reasons, " -> "), w.unreachable)
}

// workerClaimName is the StatefulSet's claim of ordinal i: template name,
// StatefulSet name, ordinal.
func workerClaimName(p naming.Named, ordinal int) string {
	return fmt.Sprintf("%s-%s", naming.WorkerStateVolumeClaim, naming.WorkerPod(p, ordinal))
}

// claimNames are the names of the claims not being deleted.
func claimNames(claims []corev1.PersistentVolumeClaim) []string {
	var names []string
	for _, c := range claims {
		if c.DeletionTimestamp == nil {
			names = append(names, c.Name)
		}
	}
	return names
}

// admittedFrom describes who the worker NetworkPolicy admits to port: every
// source when a rule for the port has no from list (what an empty
// spec.networkPolicy.telemetryFrom renders), else the peers of the rules
// naming it. An error when no rule names the port.
func admittedFrom(np *networkingv1.NetworkPolicy, port int32) (everyone bool, peers []networkingv1.NetworkPolicyPeer, err error) {
	found := false
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.IntVal != port {
				continue
			}
			found = true
			if len(rule.From) == 0 {
				return true, nil, nil
			}
			peers = append(peers, rule.From...)
		}
	}
	if !found {
		return false, nil, fmt.Errorf("no ingress rule of NetworkPolicy %s names port %d", np.Name, port)
	}
	return false, peers, nil
}
