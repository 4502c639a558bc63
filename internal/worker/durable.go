package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/state"
)

// openState opens the durable state store when state.directory is set and
// makes readiness follow its health: a write-ahead log that cannot make
// requests durable makes /readyz fail, a failed checkpoint shows there as
// a warning.
func (w *Worker) openState() error {
	dir := w.cfg.State.Directory
	if dir == "" {
		return nil
	}
	store, err := state.Open(state.Options{
		Directory:          dir,
		CheckpointInterval: w.cfg.State.CheckpointInterval.Duration,
		Registerer:         w.registry,
		Logger:             w.logger,
	})
	if err != nil {
		return err
	}
	w.store = store
	w.readiness.Require(store.Healthy)
	w.readiness.Notice(store.CheckpointFailure)
	return nil
}

// restore brings the engine to the state of the last acknowledged request
// (checkpoint, then log replay) before the worker reports ready; requests
// meanwhile are refused as retryable. A checkpoint refused part way leaves
// a partial engine behind, so the restore starts over in a fresh one.
func (w *Worker) restore(ctx context.Context) error {
	if w.store == nil {
		return nil
	}
	w.readiness.NotReady("restoring state from " + w.cfg.State.Directory)
	engine := w.currentEngine()
	report, err := w.store.RestoreReplaying(ctx, engine, w.replay(engine))
	if errors.Is(err, state.ErrDiscardSink) {
		w.logger.Warn("checkpoint refused part way; restoring from the write-ahead log alone", "error", err)
		if engine, err = w.newEngine(); err != nil {
			return fmt.Errorf("restoring worker state: %w", err)
		}
		report, err = w.store.RestoreReplaying(ctx, engine, w.replay(engine))
	}
	if err != nil {
		return fmt.Errorf("restoring worker state: %w", err)
	}
	if report.Damaged != nil {
		w.logger.Error("checkpoint was damaged and set aside", "error", report.Damaged, "setAside", report.SetAside)
	}
	w.logger.Info("state restored", "streams", report.Streams, "skipped", report.Skipped,
		"replayedRecords", report.Replayed, "replayedSegments", report.ReplayedSegments)
	// The previous process may have emitted samples after its last
	// checkpoint; ours must be later, or the backend refuses them.
	engine.EmitAfter(time.Now())
	w.engineMu.Lock()
	w.engine = engine
	w.engineMu.Unlock()
	return nil
}

// runCheckpoints lets the store checkpoint the engine on its cadence until
// ctx ends; the final checkpoint is the store's Close, at shutdown.
func (w *Worker) runCheckpoints(ctx context.Context) {
	if err := w.store.Run(ctx, checkpointSource{w}); err != nil {
		w.logger.Error("periodic checkpoints did not start; the write-ahead log keeps the data until shutdown", "error", err)
	}
}

// replay folds the write-ahead log into engine. Re-applying what the
// checkpoint already holds is harmless because the engine recognises
// applied intervals. With a hand-over, points of streams held elsewhere go
// there again (their holder recognises those it has), and so do the
// checkpoint's streams that are no longer this worker's, before the log.
func (w *Worker) replay(engine *convert.Engine) state.Replay {
	if w.handoff == nil {
		return state.Replay{Requests: func(md pmetric.Metrics) { engine.Apply(md) }}
	}
	return state.Replay{
		Requests: func(md pmetric.Metrics) { w.handoff.ReplayRequest(engine, md) },
		Frames:   func(frame []byte) { w.handoff.ReplayFrame(engine, frame) },
		Loaded:   func() { w.handoff.SweepEngine(engine) },
	}
}
