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
	cancel   context.CancelFunc
	done     chan struct{}

	mu       sync.Mutex
	relayed  uint64
	lastProb string
}

// relayInterval is how often the relay reads the ConfigMap.
const relayInterval = 100 * time.Millisecond

func startMembershipRelay(ctx context.Context, p *Pipeline) (*membershipRelay, error) {
	r := &membershipRelay{pipeline: p, path: filepath.Join(p.Dir, "membership.json"), done: make(chan struct{})}
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
	relayCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	go func() {
		defer close(r.done)
		tick := time.NewTicker(relayInterval)
		defer tick.Stop()
		for {
			select {
			case <-relayCtx.Done():
				return
			case <-tick.C:
			}
			if err := r.relayOnce(relayCtx); err != nil && relayCtx.Err() == nil {
				r.mu.Lock()
				if err.Error() != r.lastProb {
					p.logf("membership relay: %v", err)
					r.lastProb = err.Error()
				}
				r.mu.Unlock()
			}
		}
	}()
	return r, nil
}

func (r *membershipRelay) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

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
	local := p.localWorkerEndpoints()
	for i, m := range published.Members {
		endpoint, ok := local[m.Name]
		if !ok {
			return fmt.Errorf("membership epoch %d lists %s, which runs no local process yet", published.Epoch, m.Name)
		}
		published.Members[i].Endpoint = endpoint
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
	p.logf("membership epoch %d relayed to the gateways: %d workers", published.Epoch, len(published.Members))
	return nil
}

// localWorkerEndpoints maps each local worker's pod name to its address.
func (p *Pipeline) localWorkerEndpoints() map[string]string {
	p.workersMu.Lock()
	defer p.workersMu.Unlock()
	out := make(map[string]string, len(p.Workers))
	for _, w := range p.Workers {
		out[naming.WorkerPod(p.Object, w.Ordinal)] = w.OTLPEndpoint
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

// ScaleWorkers grows the worker tier as a StatefulSet does: the new workers
// start first, then spec.worker.replicas changes and the operator publishes
// the next membership, which the gateways follow without a restart. It
// returns the published epoch. Shrinking needs the state hand-off and is
// not offered.
func (p *Pipeline) ScaleWorkers(ctx context.Context, n int) (uint64, error) {
	have := len(p.Workers)
	if n <= have {
		return 0, fmt.Errorf("scaling workers from %d to %d: only growing is supported", have, n)
	}
	if n > p.Receiver.workers {
		return 0, fmt.Errorf("scaling workers to %d: the receiver was started for %d (WithMaxWorkers)", n, p.Receiver.workers)
	}
	for i := have; i < n; i++ {
		w, err := p.newWorker(i)
		if err != nil {
			return 0, err
		}
		if err := p.startWorker(ctx, w); err != nil {
			return 0, err
		}
		p.workersMu.Lock()
		p.Workers = append(p.Workers, w)
		p.workersMu.Unlock()
	}
	var obj v1alpha1.DeltaPipeline
	if err := p.ControlPlane.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, &obj); err != nil {
		return 0, fmt.Errorf("reading DeltaPipeline %s: %w", p.Name, err)
	}
	obj.Spec.Worker.Replicas = ptr.To(int32(n))
	if err := p.ControlPlane.Client.Update(ctx, &obj); err != nil {
		return 0, fmt.Errorf("scaling DeltaPipeline %s to %d workers: %w", p.Name, n, err)
	}
	p.logf("spec.worker.replicas %d -> %d", have, n)
	deadline := time.Now().Add(time.Minute)
	for {
		var got v1alpha1.DeltaPipeline
		if err := p.ControlPlane.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, &got); err == nil &&
			got.Status.Membership != nil && int(got.Status.Membership.Workers) == n {
			return uint64(got.Status.Membership.Epoch), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the operator published no membership with the new workers within a minute")
		}
		time.Sleep(relayInterval)
	}
}
