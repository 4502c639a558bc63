package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/state"
)

// DurableHooks connects a state store: requests are journaled before they
// are applied, state is restored (checkpoint, then log replay) before the
// worker is ready, checkpointed periodically, and checkpointed once more
// when the store closes at shutdown.
func DurableHooks(store *state.Store, directory string, logger *slog.Logger) Hooks {
	return Hooks{
		Journal:       store,
		RestoreStatus: func() string { return "restoring state from " + directory },
		Restore: func(ctx context.Context, engine *convert.Engine, fresh func() (*convert.Engine, error)) (*convert.Engine, error) {
			report, err := store.Restore(ctx, engine, replayInto(engine))
			if errors.Is(err, state.ErrDiscardSink) {
				logger.Warn("checkpoint refused part way; restoring from the write-ahead log alone", "error", err)
				if engine, err = fresh(); err != nil {
					return nil, err
				}
				report, err = store.Restore(ctx, engine, replayInto(engine))
			}
			if err != nil {
				return nil, err
			}
			if report.Damaged != nil {
				logger.Error("checkpoint was damaged and set aside", "error", report.Damaged, "setAside", report.SetAside)
			}
			logger.Info("state restored", "streams", report.Streams, "skipped", report.Skipped,
				"replayedRecords", report.Replayed, "replayedSegments", report.ReplayedSegments)
			// The previous process may have emitted samples after its last
			// checkpoint; ours must be later, or the backend refuses them.
			engine.EmitAfter(time.Now())
			return engine, nil
		},
		Checkpoint: func(ctx context.Context, engine *convert.Engine) error {
			_, err := store.Checkpoint(ctx, engine)
			return err
		},
		Close: func(ctx context.Context, engine *convert.Engine) error {
			if engine == nil { // start-up failed: nothing to checkpoint
				return store.Close(ctx, nil)
			}
			return store.Close(ctx, engine)
		},
	}
}

// replayInto applies replayed requests; re-applying what the checkpoint
// already holds is harmless because the engine recognises applied intervals.
func replayInto(engine *convert.Engine) state.ApplyFunc {
	return func(md pmetric.Metrics) { engine.Apply(md) }
}
