package cluster

import (
	"fmt"
	"slices"
	"strings"
	"time"

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
	// handoffDuplicateMetric counts records of streams held already: a
	// redelivery.
	handoffDuplicateMetric = "deltapipeline_worker_handoff_streams_duplicate_total"
)

// restartCounts reads as "claude-code-worker-0=0@16:02:11 claude-code-worker-1=2@15:58:40":
// container restarts and when the pod started, which tells a pod replaced
// since (its counters start over) from one that only restarted.
func restartCounts(pods []corev1.Pod) string {
	parts := make([]string, 0, len(pods))
	for _, pod := range pods {
		var n int32
		for _, s := range pod.Status.ContainerStatuses {
			n += s.RestartCount
		}
		started := "-"
		if pod.Status.StartTime != nil {
			started = pod.Status.StartTime.UTC().Format(time.TimeOnly)
		}
		parts = append(parts, fmt.Sprintf("%s=%d@%s", pod.Name, n, started))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

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
	// events are the reasons of the pipeline's Events since the rescale
	// began (eventReasons).
	events []string
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
	return fmt.Sprintf("Rescaling reasons polled %s, Events %s, %d progress messages naming an unreachable worker",
		strings.Join(w.reasons, " -> "), strings.Join(w.events, " -> "), w.unreachable)
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

// eventReasons are the reasons of the Events about DeltaPipeline name seen
// at or after since, oldest first. The operator records one when a rescale
// starts a phase and when it completes (controllers/rescale.go); a phase of
// a second is easily missed by polling the condition, never by the Events.
func eventReasons(events []corev1.Event, name string, since time.Time) []string {
	type seen struct {
		at     time.Time
		reason string
	}
	var found []seen
	for _, e := range events {
		if e.InvolvedObject.Kind != "DeltaPipeline" || e.InvolvedObject.Name != name {
			continue
		}
		at := e.CreationTimestamp.Time
		for _, t := range []time.Time{e.EventTime.Time, e.LastTimestamp.Time} {
			if t.After(at) {
				at = t
			}
		}
		if e.Series != nil && e.Series.LastObservedTime.After(at) {
			at = e.Series.LastObservedTime.Time
		}
		// The API server keeps whole seconds of CreationTimestamp.
		if !at.Before(since.Truncate(time.Second)) {
			found = append(found, seen{at, e.Reason})
		}
	}
	slices.SortStableFunc(found, func(a, b seen) int { return a.at.Compare(b.at) })
	reasons := make([]string, len(found))
	for i, f := range found {
		reasons[i] = f.reason
	}
	return reasons
}
