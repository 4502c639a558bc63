package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/membership"
	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// buildHandoff makes the worker a member of the ring when the configuration
// has a handoff section: it binds the peer port and serves the progress
// the operator reads at /handoff.
func (w *Worker) buildHandoff() error {
	c := w.cfg.Handoff
	if c == nil {
		return nil
	}
	keyer, err := ring.NewKeyer(ring.KeyKind(c.RoutingKey), c.RoutingAttributes)
	if err != nil {
		return fmt.Errorf("configuring the hand-over: %w", err)
	}
	member := c.Member
	if member == "" {
		if member, err = os.Hostname(); err != nil {
			return fmt.Errorf("configuring the hand-over: no handoff.member and no host name: %w", err)
		}
	}
	opts := handoff.Options{
		Member:       member,
		Keyer:        keyer,
		PeerEndpoint: c.Peer.Endpoint,
		TokenFile:    c.Peer.TokenFile,
		Engine:       w.currentEngine,
		Applied:      w.metrics.countApply,
		Registerer:   w.registry,
		Logger:       w.logger,
	}
	if w.store != nil {
		opts.Journal = w.store.RecordFrame
		opts.Checkpoint = func(ctx context.Context) error {
			_, err := w.store.Checkpoint(ctx, checkpointSource{w})
			return err
		}
	}
	w.handoff, err = handoff.New(opts)
	return err
}

// membershipSource is the handoff section's source as the shared watch
// takes it.
func (w *Worker) membershipSource() membership.Source {
	m := w.cfg.Handoff.Membership
	src := membership.Source{File: m.File, PollInterval: m.PollInterval.Duration}
	if cm := m.ConfigMap; cm != nil {
		src.ConfigMap = &membership.ConfigMap{Namespace: cm.Namespace, Name: cm.Name, Key: cm.Key}
	}
	return src
}

// awaitMembership follows the published membership and returns once the
// first one is installed: which streams are this worker's decides how the
// journal replays, so the restore waits for it.
func (w *Worker) awaitMembership(ctx context.Context) error {
	w.readiness.NotReady("waiting for the published membership")
	installed := make(chan struct{}, 1)
	err := membership.Watch(ctx, w.membershipSource(), func(msg string, err error) {
		w.logger.Warn(msg, "error", err)
	}, func(doc []byte) {
		if err := w.handoff.Membership(doc); err != nil {
			w.logger.Error("ignoring a published membership", "error", err)
			return
		}
		select {
		case installed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("following the membership: %w", err)
	}
	for !w.handoff.HasMembership() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the published membership: %w", context.Cause(ctx))
		case <-installed:
		}
	}
	return nil
}

// apply is the engine's Apply, or the hand-over's when the worker holds a
// share of the ring.
func (w *Worker) apply(ctx context.Context, md pmetric.Metrics) (convert.Result, error) {
	if w.handoff == nil {
		return w.currentEngine().Apply(md), nil
	}
	return w.handoff.Apply(ctx, md)
}

// checkpointSource is what a checkpoint snapshots: the engine, once every
// point forwarded so far reached its holder, since the checkpoint lets the
// journal that holds them go.
type checkpointSource struct{ w *Worker }

// checkpointForwardWait bounds how long a checkpoint waits for peers; a
// peer that is away longer fails the checkpoint, and the journal keeps
// everything until one succeeds.
const checkpointForwardWait = 10 * time.Second

func (c checkpointSource) MarshalStreams(fn func(record []byte) error) error {
	if h := c.w.handoff; h != nil {
		ctx, cancel := context.WithTimeout(context.Background(), checkpointForwardWait)
		defer cancel()
		if err := h.AwaitSent(ctx); err != nil {
			return fmt.Errorf("checkpoint deferred: %w", err)
		}
	}
	return c.w.currentEngine().MarshalStreams(fn)
}

// drainHandoff gives queued hand-over entries part of the shutdown budget,
// then stops the peer server.
func (w *Worker) drainHandoff(ctx context.Context) error {
	if w.handoff == nil {
		return nil
	}
	var errs []error
	if err := w.handoff.AwaitSent(ctx); err != nil {
		errs = append(errs, fmt.Errorf("hand-over entries still queued at shutdown; the journal keeps them: %w", err))
	}
	if err := w.handoff.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
