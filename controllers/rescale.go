package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/ring"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// HandoffStatusReader reads one worker's hand-over progress (what the
// worker serves at /handoff on its telemetry port).
type HandoffStatusReader interface {
	HandoffStatus(ctx context.Context, p *v1alpha1.DeltaPipeline, ordinal int) (handoff.Status, error)
}

// HTTPHandoffStatus reads the progress from the worker pods through their
// stable DNS names.
type HTTPHandoffStatus struct{ Client *http.Client }

// HandoffStatus implements HandoffStatusReader.
func (h HTTPHandoffStatus) HandoffStatus(ctx context.Context, p *v1alpha1.DeltaPipeline, ordinal int) (handoff.Status, error) {
	url := "http://" + naming.WorkerPodHost(p, p.Namespace, ordinal) + ":" + strconv.Itoa(workerconfig.DefaultTelemetryPort) + "/handoff"
	return FetchHandoffStatus(ctx, h.Client, url)
}

// FetchHandoffStatus reads a worker's /handoff document at url.
func FetchHandoffStatus(ctx context.Context, c *http.Client, url string) (handoff.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return handoff.Status{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return handoff.Status{}, fmt.Errorf("reading hand-over progress: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return handoff.Status{}, fmt.Errorf("reading hand-over progress from %s: HTTP %d", url, resp.StatusCode)
	}
	var st handoff.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return handoff.Status{}, fmt.Errorf("decoding hand-over progress from %s: %w", url, err)
	}
	return st, nil
}

// handoverStallBound is how long a hand-over may run before the Rescaling
// condition calls it stalled: moving a million streams takes seconds, so
// minutes mean a worker cannot reach another, or one does not come back.
const handoverStallBound = 10 * time.Minute

const eventActionRescale = "Rescale"

// rescalePoll is how often a running rescale is looked at again.
const rescalePoll = 2 * time.Second

// ringProgress is what the workers reported for the published epoch.
type ringProgress struct {
	complete, total int
	moving, pending int
	waiting         []string
}

// planRing reads the published membership, the StatefulSet and, while
// streams are handed over, every worker's progress, and decides the ring
// to run (manifests.PlanRing).
func (r *DeltaPipelineReconciler) planRing(ctx context.Context, p *v1alpha1.DeltaPipeline) (manifests.RingPlan, ringProgress, error) {
	var obs manifests.RingObservation
	var progress ringProgress
	if p.Status.Membership != nil && p.Status.Membership.Epoch > 0 {
		obs.RecordedEpoch = uint64(p.Status.Membership.Epoch)
	}
	published, err := r.publishedMembership(ctx, p)
	if err != nil {
		return manifests.RingPlan{}, progress, err
	}
	obs.Published = published

	var sts appsv1.StatefulSet
	switch err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: naming.WorkerStatefulSet(p)}, &sts); {
	case err == nil:
		if sts.Status.ObservedGeneration >= sts.Generation {
			obs.ReadyWorkers = sts.Status.ReadyReplicas
		}
	case !apierrors.IsNotFound(err):
		return manifests.RingPlan{}, progress, fmt.Errorf("reading the worker StatefulSet: %w", err)
	}

	if published != nil && published.Rescaling() {
		progress = r.handoverProgress(ctx, p, *published)
		obs.HandoverComplete = progress.complete == progress.total
	}
	return manifests.PlanRing(p, obs), progress, nil
}

// publishedMembership is the membership in the ConfigMap; nil when there is
// none or it does not parse (it is then published again).
func (r *DeltaPipelineReconciler) publishedMembership(ctx context.Context, p *v1alpha1.DeltaPipeline) (*ring.Membership, error) {
	var cm corev1.ConfigMap
	err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: naming.MembershipConfigMap(p)}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the published membership ConfigMap %s: %w", naming.MembershipConfigMap(p), err)
	}
	published, err := ring.ParseMembership([]byte(cm.Data[manifests.MembershipKey]))
	if err != nil {
		log.FromContext(ctx).Info("republishing an unreadable membership", "configmap", cm.Name, "error", err.Error())
		return nil, nil
	}
	return &published, nil
}

// handoverProgress asks every worker of both rings how far it is.
func (r *DeltaPipelineReconciler) handoverProgress(ctx context.Context, p *v1alpha1.DeltaPipeline, m ring.Membership) ringProgress {
	n := max(len(m.Members), len(m.Previous))
	progress := ringProgress{total: n}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for i := range n {
		name := naming.WorkerPod(p, i)
		st, err := r.handoffStatus().HandoffStatus(ctx, p, i)
		switch {
		case err != nil:
			progress.waiting = append(progress.waiting, name+" (unreachable: "+err.Error()+")")
		case st.Epoch < m.Epoch:
			progress.waiting = append(progress.waiting, fmt.Sprintf("%s (still on epoch %d)", name, st.Epoch))
		case !st.Complete:
			progress.moving += st.Moving
			progress.pending += st.Pending
			progress.waiting = append(progress.waiting, fmt.Sprintf("%s (%d streams moving, %d entries unacknowledged)", name, st.Moving, st.Pending))
		default:
			progress.complete++
		}
	}
	return progress
}

func (r *DeltaPipelineReconciler) handoffStatus() HandoffStatusReader {
	if r.HandoffStatus != nil {
		return r.HandoffStatus
	}
	return HTTPHandoffStatus{Client: &http.Client{Timeout: 2 * time.Second}}
}

// rescalingCondition reports the plan's phase and progress; a hand-over
// past handoverStallBound is reported as stalled, and still runs.
func rescalingCondition(p *v1alpha1.DeltaPipeline, plan manifests.RingPlan, progress ringProgress, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionRescaling, Message: plan.Describe(p)}
	switch plan.Phase {
	case manifests.RingStartingWorkers:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonStartingWorkers
	case manifests.RingHandingOver:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonHandingOver
		if progress.total > 0 {
			c.Message += fmt.Sprintf(": %d of %d workers done, %d streams moving", progress.complete, progress.total, progress.moving)
			if len(progress.waiting) > 0 {
				c.Message += "; waiting for " + strings.Join(progress.waiting, ", ")
			}
		}
		if prev := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionRescaling); prev != nil &&
			prev.Status == metav1.ConditionTrue && now.Sub(prev.LastTransitionTime.Time) > handoverStallBound {
			c.Reason = v1alpha1.ReasonHandoverStalled
			c.Message = fmt.Sprintf("the hand-over runs for more than %s; nothing is cut, the leaving workers keep running: %s",
				handoverStallBound, c.Message)
		}
	default:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonRingSteady
	}
	return c
}

// noteRescale records an Event when a rescale starts, stalls or ends.
func (r *DeltaPipelineReconciler) noteRescale(p *v1alpha1.DeltaPipeline, c metav1.Condition) {
	prev := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionRescaling)
	if prev != nil && prev.Reason == c.Reason {
		return
	}
	switch c.Reason {
	case v1alpha1.ReasonStartingWorkers, v1alpha1.ReasonHandingOver:
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, c.Reason, eventActionRescale, "%s", c.Message)
	case v1alpha1.ReasonHandoverStalled:
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, c.Reason, eventActionRescale, "%s", c.Message)
	case v1alpha1.ReasonRingSteady:
		if prev != nil && prev.Status == metav1.ConditionTrue {
			r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, "RescaleComplete", eventActionRescale, "%s", c.Message)
		}
	}
}

// peerToken is the token workers present to each other: the one the
// pipeline's Secret holds, or a new random one, as for the worker token.
// Empty when the workers do not hand streams over.
func (r *DeltaPipelineReconciler) peerToken(ctx context.Context, p *v1alpha1.DeltaPipeline) (string, error) {
	if !manifests.HandoffEnabled(p) {
		return "", nil
	}
	return r.storedOrNewToken(ctx, p, naming.PeerTokenSecret(p), manifests.PeerTokenFile, "the worker-to-worker peer token")
}
