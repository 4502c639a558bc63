package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// membershipRelay plays the part of the gateways' ConfigMap watch: it reads
// the membership the operator publishes, replaces each member's pod address
// with its local worker's, and writes it to the file the local routers read.
// Only addresses change; the epoch and the members are the operator's.
type membershipRelay struct {
	pipeline *Pipeline
	path     string
	loop     *loop

	mu      sync.Mutex
	relayed uint64
}

// relayInterval is how often the relay reads the ConfigMap.
const relayInterval = 100 * time.Millisecond

func startMembershipRelay(ctx context.Context, p *Pipeline) (*membershipRelay, error) {
	r := &membershipRelay{pipeline: p, path: p.membershipPath()}
	// The first membership is written before any gateway starts.
	deadline := time.Now().Add(time.Minute)
	for {
		err := r.relayOnce(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("relaying the first published membership: %w", err)
		}
		time.Sleep(relayInterval)
	}
	r.loop = startLoop(ctx, p, "membership relay", relayInterval, r.relayOnce)
	return r, nil
}

func (r *membershipRelay) stop() { r.loop.stop() }

// epoch is the epoch last written for the gateways.
func (r *membershipRelay) epoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.relayed
}

func (r *membershipRelay) relayOnce(ctx context.Context) error {
	p := r.pipeline
	var cm corev1.ConfigMap
	key := types.NamespacedName{Namespace: p.Namespace, Name: naming.MembershipConfigMap(p.Object)}
	if err := p.ControlPlane.Client.Get(ctx, key, &cm); err != nil {
		return fmt.Errorf("reading ConfigMap %s: %w", key, err)
	}
	published, err := ring.ParseMembership([]byte(cm.Data[manifests.MembershipKey]))
	if err != nil {
		return fmt.Errorf("ConfigMap %s: %w", key, err)
	}
	if published.Epoch == r.epoch() {
		return nil
	}
	local := p.localWorkers()
	relayed := func(members []ring.Member) error {
		for i, m := range members {
			w, ok := local[m.Name]
			if !ok {
				return fmt.Errorf("membership epoch %d lists %s, which runs no local process yet", published.Epoch, m.Name)
			}
			members[i].Endpoint, members[i].Peer = w.OTLPEndpoint, w.PeerEndpoint
		}
		return nil
	}
	if err := relayed(published.Members); err != nil {
		return err
	}
	if err := relayed(published.Previous); err != nil {
		return err
	}
	doc, err := published.Marshal()
	if err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, doc, 0o644); err != nil {
		return fmt.Errorf("writing the local membership: %w", err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("writing the local membership: %w", err)
	}
	r.mu.Lock()
	r.relayed = published.Epoch
	r.mu.Unlock()
	p.logf("membership epoch %d relayed to the gateways and workers: %d workers, %d previous", published.Epoch, len(published.Members), len(published.Previous))
	return nil
}

// membershipPath is the file the local gateways and workers read the
// membership from.
func (p *Pipeline) membershipPath() string { return filepath.Join(p.Dir, "membership.json") }

// localWorkers maps each local worker's pod name to it.
func (p *Pipeline) localWorkers() map[string]*Worker {
	p.workersMu.Lock()
	defer p.workersMu.Unlock()
	out := make(map[string]*Worker, len(p.Workers))
	for _, w := range p.Workers {
		out[naming.WorkerPod(p.Object, w.Ordinal)] = w
	}
	return out
}

// routerEpochMetric is the router's gauge of the membership it routes by.
const routerEpochMetric = "otelcol_deltapipeline_router_membership_epoch"

// GatewayMembershipEpochs reads the membership epoch every gateway routes
// by from its own metrics.
func (p *Pipeline) GatewayMembershipEpochs(ctx context.Context) ([]uint64, error) {
	out := make([]uint64, len(p.Gateways))
	for i, g := range p.Gateways {
		s, err := ScrapeMetrics(ctx, g.MetricsURL)
		if err != nil {
			return nil, err
		}
		if !s.Has(routerEpochMetric) {
			return nil, fmt.Errorf("%s exposes no %s", g.Name, routerEpochMetric)
		}
		out[i] = uint64(s.Sum(routerEpochMetric, nil))
	}
	return out, nil
}

// ScaleWorkers changes spec.worker.replicas as a user does and waits until
// the operator settled the new ring: new workers started (the harness runs
// a process per StatefulSet ordinal), streams handed over to their new
// owners, leaving workers stopped. It returns the settled membership epoch.
func (p *Pipeline) ScaleWorkers(ctx context.Context, n int) (uint64, error) {
	if p.statefulSet == nil {
		return 0, errors.New("scaling workers: only the deltapipeline router follows a membership")
	}
	if n > p.Receiver.workers {
		return 0, fmt.Errorf("scaling workers to %d: the receiver was started for %d (WithMaxWorkers)", n, p.Receiver.workers)
	}
	var obj v1alpha1.DeltaPipeline
	if err := p.ControlPlane.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, &obj); err != nil {
		return 0, fmt.Errorf("reading DeltaPipeline %s: %w", p.Name, err)
	}
	have := ptr.Deref(obj.Spec.Worker.Replicas, 0)
	obj.Spec.Worker.Replicas = ptr.To(int32(n))
	if err := p.ControlPlane.Client.Update(ctx, &obj); err != nil {
		return 0, fmt.Errorf("scaling DeltaPipeline %s to %d workers: %w", p.Name, n, err)
	}
	p.logf("spec.worker.replicas %d -> %d", have, n)
	return p.AwaitRing(ctx, n, 3*time.Minute)
}

// AwaitRing waits until the published ring has n workers and no hand-over
// runs, and n local workers run; it returns the membership epoch.
func (p *Pipeline) AwaitRing(ctx context.Context, n int, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		var got v1alpha1.DeltaPipeline
		err := p.ControlPlane.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, &got)
		if err == nil {
			m := got.Status.Membership
			rescaling := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRescaling)
			if rescaling != nil && rescaling.Message != last {
				last = rescaling.Message
				p.logf("Rescaling=%s %s: %s", rescaling.Status, rescaling.Reason, rescaling.Message)
			}
			if m != nil && int(m.Workers) == n && m.PreviousWorkers == 0 && p.runningWorkers() == n &&
				(rescaling == nil || rescaling.Status == metav1.ConditionFalse) {
				return uint64(m.Epoch), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the ring did not settle at %d workers within %s (last: %s)", n, timeout, last)
		}
		time.Sleep(relayInterval)
	}
}

func (p *Pipeline) runningWorkers() int {
	p.workersMu.Lock()
	defer p.workersMu.Unlock()
	return len(p.Workers)
}
