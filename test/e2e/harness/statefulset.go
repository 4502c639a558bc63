package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// statefulSetFollower plays the StatefulSet controller and the kubelet for
// the worker tier: it runs one local worker process per ordinal below the
// StatefulSet's spec.replicas, starting the missing ordinals and stopping
// the highest ones with SIGTERM, whose state directory goes with them (the
// operator's PersistentVolumeClaim retention policy deletes a removed
// ordinal's claim), and it reports the ready processes in the StatefulSet's
// status, which the operator waits for before new workers join the ring.
type statefulSetFollower struct {
	pipeline *Pipeline
	loop     *loop
}

// followInterval is how often the follower reads the StatefulSet.
const followInterval = 100 * time.Millisecond

func followStatefulSet(ctx context.Context, p *Pipeline) (*statefulSetFollower, error) {
	f := &statefulSetFollower{pipeline: p}
	if err := f.reconcile(ctx); err != nil {
		return nil, err
	}
	f.loop = startLoop(ctx, p, "statefulset", followInterval, f.reconcile)
	return f, nil
}

func (f *statefulSetFollower) stop() { f.loop.stop() }

// reconcile brings the processes to spec.replicas, one ordinal at a time,
// and writes the status.
func (f *statefulSetFollower) reconcile(ctx context.Context) error {
	p := f.pipeline
	key := types.NamespacedName{Namespace: p.Namespace, Name: naming.WorkerStatefulSet(p.Object)}
	var sts appsv1.StatefulSet
	if err := p.ControlPlane.Client.Get(ctx, key, &sts); err != nil {
		return fmt.Errorf("reading StatefulSet %s: %w", key, err)
	}
	want := int(ptr.Deref(sts.Spec.Replicas, 1))
	for have := p.runningWorkers(); have != want; have = p.runningWorkers() {
		if err := f.writeStatus(ctx, &sts, have); err != nil {
			return err
		}
		if have < want {
			if err := f.add(ctx, have); err != nil {
				return err
			}
		} else if err := f.remove(have - 1); err != nil {
			return err
		}
	}
	return f.writeStatus(ctx, &sts, want)
}

func (f *statefulSetFollower) add(ctx context.Context, ordinal int) error {
	p := f.pipeline
	if ordinal >= p.Receiver.workers {
		return fmt.Errorf("ordinal %d: the receiver was started for %d workers (WithMaxWorkers)", ordinal, p.Receiver.workers)
	}
	w, err := p.newWorker(ordinal)
	if err != nil {
		return err
	}
	p.workersMu.Lock()
	p.Workers = append(p.Workers, w)
	p.workersMu.Unlock()
	if err := p.startWorker(ctx, w); err != nil {
		return fmt.Errorf("starting %s: %w", w.Name, err)
	}
	p.logf("statefulset: %s started and ready", w.Name)
	return nil
}

func (f *statefulSetFollower) remove(ordinal int) error {
	p := f.pipeline
	p.workersMu.Lock()
	w := p.Workers[ordinal]
	p.workersMu.Unlock()
	p.logf("statefulset: SIGTERM %s (pid %d)", w.Name, w.Pid())
	stopErr := w.Stop(workerGrace)
	p.workersMu.Lock()
	p.Workers = p.Workers[:ordinal]
	p.workersMu.Unlock()
	if err := os.RemoveAll(w.StateDir); err != nil {
		stopErr = errors.Join(stopErr, fmt.Errorf("deleting %s's state, as its claim is: %w", w.Name, err))
	}
	return stopErr
}

func (f *statefulSetFollower) writeStatus(ctx context.Context, sts *appsv1.StatefulSet, ready int) error {
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: sts.Generation,
		Replicas:           int32(ready),
		ReadyReplicas:      int32(ready),
		CurrentReplicas:    int32(ready),
		UpdatedReplicas:    int32(ready),
		AvailableReplicas:  int32(ready),
		CurrentRevision:    sts.Status.CurrentRevision,
		UpdateRevision:     sts.Status.UpdateRevision,
	}
	if equality.Semantic.DeepEqual(sts.Status, st) {
		return nil
	}
	sts.Status = st
	if err := f.pipeline.ControlPlane.Client.Status().Update(ctx, sts); err != nil {
		return fmt.Errorf("writing the status of StatefulSet %s: %w", sts.Name, err)
	}
	return nil
}
