// Package state owns the worker's durable per-stream state: the checkpoint
// (a snapshot of every stream, see package checkpoint), the write-ahead log
// of requests accepted since (see package wal), and the order in which they
// are written, restored and replayed so that a restart neither loses an
// acknowledged point nor counts one twice.
//
// A Store owns the whole lifecycle of that state: Open, Restore before the
// worker takes traffic, Record on the ingest path, checkpoints on its own
// cadence (Run), a final checkpoint at Close, and the health it reports
// meanwhile (Healthy, CheckpointFailure and its self-metrics).
//
// It knows the conversion engine through two ports, StreamSource and
// StreamSink, whose records are opaque and self-contained (one per stream),
// an ApplyFunc that folds replayed requests in, and convert.Converts, the
// engine's own answer to which metrics it keeps state for, which decides
// what the write-ahead log journals.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/state/checkpoint"
	"github.com/deltapipeline/deltapipeline/internal/state/wal"
)

// StreamSource produces one self-contained record per live stream. Records
// are only valid during the callback.
type StreamSource interface {
	MarshalStreams(fn func(record []byte) error) error
}

// StreamSink takes back a record produced by a StreamSource, refusing a bad
// one with an error.
type StreamSink interface {
	RestoreStream(record []byte) error
}

// ApplyFunc folds replayed delta data into the engine. Re-applying data that
// the checkpoint already holds must be harmless (the engine recognises an
// interval it already applied).
type ApplyFunc func(md pmetric.Metrics)

// FrameFunc folds a replayed hand-over frame (journaled with RecordFrame)
// back in. Frames repeat records and points the engine may hold already; it
// must recognise them as the live path does.
type FrameFunc func(frame []byte)

// frameMarker is the first byte of a journaled hand-over frame. No OTLP
// request starts with it: its first byte is a protobuf tag, whose field
// number is at least 1.
const frameMarker = 0x00

// Names inside the state directory.
const (
	CheckpointFile = "streams.ckpt"
	WALDirectory   = "wal"
)

// ErrDiscardSink is returned by Restore when the checkpoint was refused after
// some of its records had already reached the sink: the sink holds a partial
// state and must be replaced by an empty one before calling Restore again
// (which then starts without the checkpoint, since it was set aside).
var ErrDiscardSink = errors.New("checkpoint refused after part of it was restored; restore again into an empty engine")

// ErrSkipStream, wrapped in an error returned by StreamSink.RestoreStream,
// drops that one stream and keeps restoring the others. A sink uses it for a
// record that is intact but that it cannot hold now (for example when the
// stream limit was lowered since the checkpoint); any other error means the
// checkpoint itself is bad.
var ErrSkipStream = errors.New("stream not restored")

// Options configures a Store.
type Options struct {
	// Directory holds the checkpoint and the write-ahead log.
	Directory string
	// CheckpointInterval is how often Run writes a checkpoint; Run refuses
	// to start without one.
	CheckpointInterval time.Duration
	// Registerer receives the self-metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger reports restores, damage and failed checkpoints; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Store is the durable state of one worker.
type Store struct {
	dir      string
	ckpt     string
	walDir   string
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	unlock   func() error

	// progress says what a restore is doing, until the log opens.
	progress atomic.Pointer[string]
	// stopped is set once Close begins: nothing is journaled after it.
	stopped atomic.Bool

	mu      sync.Mutex // serialises Restore and Close
	wal     atomic.Pointer[wal.Log]
	closed  bool
	ckptMu  sync.Mutex // one checkpoint at a time
	marshal pmetric.ProtoMarshaler

	// failedCheckpoints counts checkpoints failed in a row (under ckptMu);
	// checkpointFailure is the last one's error, nil once one succeeds.
	failedCheckpoints int
	checkpointFailure atomic.Pointer[error]
}

// Open prepares dir (creating it if needed), takes its lock and removes
// temporary files a crash left behind. Nothing is read until Restore.
func Open(opts Options) (*Store, error) {
	if opts.Directory == "" {
		return nil, errors.New("opening worker state: state.directory is empty")
	}
	if opts.CheckpointInterval < 0 {
		return nil, fmt.Errorf("opening worker state: state.checkpointInterval: %s is negative", opts.CheckpointInterval)
	}
	if err := os.MkdirAll(opts.Directory, 0o750); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", opts.Directory, err)
	}
	s := &Store{
		dir:      opts.Directory,
		ckpt:     filepath.Join(opts.Directory, CheckpointFile),
		walDir:   filepath.Join(opts.Directory, WALDirectory),
		interval: opts.CheckpointInterval,
		log:      opts.Logger,
		now:      opts.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.setStatus("state not restored yet")
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, s.walStats, s.Healthy)
	if err != nil {
		return nil, fmt.Errorf("registering state metrics: %w", err)
	}
	s.metrics = m
	unlock, err := lockDirectory(s.dir)
	if err != nil {
		return nil, err
	}
	s.unlock = unlock
	removed, err := checkpoint.RemoveTemporary(s.ckpt)
	if err != nil {
		_ = unlock()
		return nil, err
	}
	for _, name := range removed {
		s.log.Info("removed a checkpoint left unfinished by a crash", "file", name)
	}
	return s, nil
}

func (s *Store) walStats() wal.Stats {
	l := s.wal.Load()
	if l == nil {
		return wal.Stats{}
	}
	return l.Stats()
}

func (s *Store) setStatus(msg string) { s.progress.Store(&msg) }

// Status says what the store is doing: "ready" while it makes requests
// durable, otherwise what Healthy reports.
func (s *Store) Status() string {
	if err := s.Healthy(); err != nil {
		return err.Error()
	}
	return "ready"
}

// Healthy reports why the store cannot make requests durable now, nil when
// it can: until Restore finished, the step the restore is at; after a write
// or fsync of the write-ahead log failed, that failure (the log moves to a
// new segment by itself at the next request that can create one); after
// Close, that it is closed. Readiness follows it, so a broken journal shows.
func (s *Store) Healthy() error {
	if s.stopped.Load() {
		return errors.New("worker state is closed")
	}
	l := s.wal.Load()
	if l == nil {
		return errors.New(*s.progress.Load())
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("the write-ahead log cannot make requests durable (they are refused as retryable): %w", err)
	}
	return nil
}

// CheckpointFailure reports why the last checkpoint failed, nil when it
// succeeded or none was attempted yet. A failed checkpoint loses nothing
// (the write-ahead log keeps the data and the next one retries), so it is
// worth showing but no reason to refuse traffic.
func (s *Store) CheckpointFailure() error {
	if err := s.checkpointFailure.Load(); err != nil {
		return *err
	}
	return nil
}

// RestoreReport describes what a restore found.
type RestoreReport struct {
	// Streams is how many stream records the checkpoint restored.
	Streams int
	// Skipped is how many intact stream records the sink declined with
	// ErrSkipStream.
	Skipped int
	// CheckpointCreated is when the restored checkpoint was taken; zero when
	// there was none.
	CheckpointCreated time.Time
	// Damaged says why the checkpoint was refused; nil when it was restored
	// or absent.
	Damaged error
	// SetAside is where the refused checkpoint was moved for inspection.
	SetAside string
	// Replayed is how many write-ahead log records were applied, from
	// ReplayedSegments segments.
	Replayed         int
	ReplayedSegments int
	// Undecodable counts log records that passed their checksum but did not
	// decode as OTLP metrics.
	Undecodable int
	// WALDamage lists where log segments were cut short.
	WALDamage []wal.Damage
}

// Restore brings sink to the state of the last acknowledged request: it
// loads the checkpoint into sink, replays the write-ahead log from the
// segment the checkpoint names through apply, then opens the log for new
// requests. A damaged checkpoint is set aside and reported, and the worker
// continues from the log alone; see ErrDiscardSink for the one case where
// the caller must supply a fresh sink.
func (s *Store) Restore(ctx context.Context, sink StreamSink, apply ApplyFunc) (RestoreReport, error) {
	return s.RestoreReplaying(ctx, sink, Replay{Requests: apply})
}

// Replay is how a restore folds the write-ahead log back in.
type Replay struct {
	// Requests applies journaled requests.
	Requests ApplyFunc
	// Frames applies journaled hand-over frames (RecordFrame), in log
	// order with the requests; nil for a worker that hands nothing over.
	Frames FrameFunc
	// Loaded, when set, runs once the checkpoint is loaded and before the
	// log is replayed: a worker hands over the checkpoint's streams that
	// are no longer its own there, so that replayed points of those
	// streams follow their records to the new owner.
	Loaded func()
}

// RestoreReplaying is Restore with the log replayed through r.
func (s *Store) RestoreReplaying(ctx context.Context, sink StreamSink, r Replay) (RestoreReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return RestoreReport{}, errors.New("restoring worker state: store is closed")
	}
	if s.wal.Load() != nil {
		return RestoreReport{}, errors.New("restoring worker state: already restored")
	}
	var report RestoreReport
	from, err := s.restoreCheckpoint(sink, &report)
	if err != nil {
		return report, err
	}
	if err := ctx.Err(); err != nil {
		return report, fmt.Errorf("restoring worker state: %w", err)
	}
	if r.Loaded != nil {
		r.Loaded()
	}
	if err := s.replay(ctx, from, r.Requests, r.Frames, &report); err != nil {
		return report, err
	}
	l, err := wal.Open(s.walDir, from, wal.Options{OnSync: s.metrics.observeSync})
	if err != nil {
		return report, fmt.Errorf("opening the write-ahead log: %w", err)
	}
	s.wal.Store(l)
	s.setStatus("ready")
	return report, nil
}

// restoreCheckpoint loads the checkpoint into sink and returns the first log
// segment to replay.
func (s *Store) restoreCheckpoint(sink StreamSink, report *RestoreReport) (uint64, error) {
	s.setStatus("verifying checkpoint " + s.ckpt)
	meta, _, err := checkpoint.Verify(s.ckpt)
	if errors.Is(err, os.ErrNotExist) {
		s.log.Info("no checkpoint found: starting without restored streams", "file", s.ckpt)
		return 0, nil
	}
	if err == nil {
		s.setStatus("restoring streams from checkpoint " + s.ckpt)
		restored := 0
		_, _, err = checkpoint.Read(s.ckpt, func(record []byte) error {
			if err := sink.RestoreStream(record); err != nil {
				if errors.Is(err, ErrSkipStream) {
					if report.Skipped == 0 {
						s.log.Warn("a stream of the checkpoint is not restored", "error", err)
					}
					report.Skipped++
					s.metrics.skippedStreams.Inc()
					return nil
				}
				return recordRefusal{err}
			}
			restored++
			if restored%100_000 == 0 {
				s.setStatus(fmt.Sprintf("restoring streams from checkpoint %s: %d so far", s.ckpt, restored))
			}
			return nil
		})
		report.Streams = restored
	}
	if err == nil {
		report.CheckpointCreated = meta.Created
		s.metrics.restoredStreams.Set(float64(report.Streams))
		s.log.Info("restored streams from checkpoint", "file", s.ckpt, "streams", report.Streams,
			"skipped", report.Skipped, "created", meta.Created, "replayFromSegment", meta.WALSegment)
		return meta.WALSegment, nil
	}

	var corrupt *checkpoint.CorruptError
	if !errors.As(err, &corrupt) && !isRecordRefusal(err) {
		// Not damage but an I/O failure (permissions, a failing disk):
		// starting empty would silently reset every series.
		return 0, fmt.Errorf("reading checkpoint: %w", err)
	}
	report.Damaged = err
	s.metrics.restoreFailures.Inc()
	aside, asideErr := checkpoint.SetAside(s.ckpt, s.now())
	report.SetAside = aside
	s.log.Error("checkpoint is damaged: starting without it and replaying the write-ahead log",
		"file", s.ckpt, "error", err, "setAside", aside)
	s.setStatus("checkpoint damaged, set aside as " + aside)
	if asideErr != nil {
		return 0, fmt.Errorf("checkpoint refused (%w), and it could not be set aside: %w", err, asideErr)
	}
	if report.Streams > 0 {
		return 0, fmt.Errorf("%w: %w", ErrDiscardSink, err)
	}
	return 0, nil
}

// recordRefusal marks an error returned by the sink for one record.
type recordRefusal struct{ err error }

func (r recordRefusal) Error() string { return r.err.Error() }
func (r recordRefusal) Unwrap() error { return r.err }

func isRecordRefusal(err error) bool {
	var r recordRefusal
	return errors.As(err, &r)
}

func (s *Store) replay(ctx context.Context, from uint64, apply ApplyFunc, frames FrameFunc, report *RestoreReport) error {
	s.setStatus(fmt.Sprintf("replaying the write-ahead log from segment %d", from))
	var unmarshal pmetric.ProtoUnmarshaler
	stats, err := wal.Replay(s.walDir, from, func(seq uint64, payload []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(payload) > 0 && payload[0] == frameMarker {
			if frames == nil {
				report.Undecodable++
				s.metrics.walUndecodable.Inc()
				s.log.Error("skipping a hand-over frame in the write-ahead log: this worker does not hand state over", "segment", seq)
				return nil
			}
			frames(payload)
			s.metrics.walReplayedRecords.Inc()
			return nil
		}
		md, err := unmarshal.UnmarshalMetrics(payload)
		if err != nil {
			report.Undecodable++
			s.metrics.walUndecodable.Inc()
			s.log.Error("skipping a write-ahead log record that does not decode", "segment", seq, "error", err)
			return nil
		}
		apply(md)
		s.metrics.walReplayedRecords.Inc()
		return nil
	})
	report.Replayed = stats.Records - report.Undecodable
	report.ReplayedSegments = stats.Segments
	report.WALDamage = stats.Damage
	for _, d := range stats.Damage {
		s.metrics.walDamage.WithLabelValues(damageLocation(d)).Inc()
		s.log.Warn("write-ahead log segment cut short", "damage", d.String())
	}
	if err != nil {
		return fmt.Errorf("replaying the write-ahead log: %w", err)
	}
	if stats.Records > 0 {
		s.log.Info("replayed the write-ahead log", "records", report.Replayed, "segments", stats.Segments)
	}
	return nil
}

// Record makes the part of md the engine converts (convert.Converts)
// durable and returns once it is; done must be called after md was applied
// to the engine. A request the engine converts nothing of is not journaled.
// Call it before the engine's Apply, which consumes md.
func (s *Store) Record(ctx context.Context, md pmetric.Metrics) (done func(), err error) {
	return s.RecordEncoded(ctx, md, nil)
}

// RecordEncoded is Record for a request whose protobuf encoding is at hand
// (encoded, the bytes as received; nil when there are none): when the
// engine converts all of md, which is the usual request, those bytes are
// journaled as they are instead of encoding md again. encoded must be the
// encoding md was decoded from, and stay unchanged until RecordEncoded
// returns.
func (s *Store) RecordEncoded(ctx context.Context, md pmetric.Metrics, encoded []byte) (done func(), err error) {
	l := s.wal.Load()
	if l == nil {
		return nil, errors.New("journaling a request: worker state not restored yet")
	}
	part, whole, ok := convertedPart(md)
	if !ok {
		return func() {}, nil
	}
	// The bytes as received hold everything md holds, so they are the
	// journal record only when the engine converts all of md.
	payload := encoded
	if payload == nil || !whole {
		if payload, err = s.marshal.MarshalMetrics(part); err != nil {
			return nil, fmt.Errorf("encoding a request for the write-ahead log: %w", err)
		}
	}
	done, err = l.Append(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("journaling a request: %w", err)
	}
	return done, nil
}

// RecordConverted is Record for a request received as protobuf every
// metric of which the engine converts (convert.ReadEncoded read it): the
// bytes as received are the journal record. encoded must stay unchanged
// until RecordConverted returns.
func (s *Store) RecordConverted(ctx context.Context, encoded []byte) (done func(), err error) {
	l := s.wal.Load()
	if l == nil {
		return nil, errors.New("journaling a request: worker state not restored yet")
	}
	if done, err = l.Append(ctx, encoded); err != nil {
		return nil, fmt.Errorf("journaling a request: %w", err)
	}
	return done, nil
}

// RecordFrame makes a hand-over frame received from a peer durable before
// it is applied, as RecordEncoded does for a request; the frame is
// journaled as it is. done must be called after it was applied.
func (s *Store) RecordFrame(ctx context.Context, frame []byte) (done func(), err error) {
	l := s.wal.Load()
	if l == nil {
		return nil, errors.New("journaling a hand-over frame: worker state not restored yet")
	}
	if len(frame) == 0 || frame[0] != frameMarker {
		return nil, errors.New("journaling a hand-over frame: it does not start with the frame marker")
	}
	done, err = l.Append(ctx, frame)
	if err != nil {
		return nil, fmt.Errorf("journaling a hand-over frame: %w", err)
	}
	return done, nil
}

// CheckpointReport describes one checkpoint written.
type CheckpointReport struct {
	Streams  int
	Bytes    int64
	Duration time.Duration
	// WALSegment is the first segment a restore of this checkpoint replays.
	WALSegment uint64
}

// Checkpoint snapshots src into the checkpoint file without stopping
// ingestion: it rotates the log, waits until every request journaled in
// older segments was applied, writes the snapshot atomically naming the new
// segment as the replay start, then deletes the older segments.
func (s *Store) Checkpoint(ctx context.Context, src StreamSource) (CheckpointReport, error) {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	report, err := s.checkpoint(ctx, src)
	if err != nil {
		s.failedCheckpoints++
		s.metrics.checkpointFailures.Inc()
		s.metrics.checkpointsFailing.Set(float64(s.failedCheckpoints))
		failure := fmt.Errorf("the last %d checkpoint(s) failed, the write-ahead log keeps the data until one succeeds: %w",
			s.failedCheckpoints, err)
		s.checkpointFailure.Store(&failure)
		return report, err
	}
	s.failedCheckpoints = 0
	s.checkpointFailure.Store(nil)
	s.metrics.checkpointsFailing.Set(0)
	s.metrics.checkpointDuration.Observe(report.Duration.Seconds())
	s.metrics.checkpointBytes.Set(float64(report.Bytes))
	s.metrics.checkpointStreams.Set(float64(report.Streams))
	s.metrics.checkpointLastSuccess.Set(float64(s.now().UnixNano()) / 1e9)
	return report, nil
}

func (s *Store) checkpoint(ctx context.Context, src StreamSource) (CheckpointReport, error) {
	l := s.wal.Load()
	if l == nil {
		return CheckpointReport{}, errors.New("writing a checkpoint: worker state not restored yet")
	}
	start := time.Now()
	next, err := l.Rotate()
	if err != nil {
		return CheckpointReport{}, fmt.Errorf("writing a checkpoint: %w", err)
	}
	if err := l.WaitApplied(ctx, next); err != nil {
		return CheckpointReport{}, fmt.Errorf("writing a checkpoint: %w", err)
	}
	stats, err := checkpoint.Write(s.ckpt, checkpoint.Meta{WALSegment: next, Created: s.now()}, src.MarshalStreams)
	if err != nil {
		return CheckpointReport{}, err
	}
	if err := l.RemoveBefore(next); err != nil {
		// The checkpoint is good; leftover segments only cost disk and are
		// retried by the next checkpoint.
		s.log.Warn("could not remove write-ahead log segments covered by the checkpoint", "error", err)
	}
	return CheckpointReport{Streams: stats.Records, Bytes: stats.Bytes, Duration: time.Since(start), WALSegment: next}, nil
}

// Run writes a checkpoint of src every Options.CheckpointInterval until ctx
// ends, and returns nil then. Failures are logged, counted and reported by
// CheckpointFailure; the log keeps the data until a checkpoint succeeds.
// Call it after Restore; Close writes the final checkpoint.
func (s *Store) Run(ctx context.Context, src StreamSource) error {
	if s.interval <= 0 {
		return errors.New("running checkpoints: state.checkpointInterval is not set")
	}
	if s.wal.Load() == nil {
		return errors.New("running checkpoints: worker state not restored yet")
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			report, err := s.Checkpoint(ctx, src)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("checkpoint failed; the write-ahead log keeps the data", "error", err)
				}
				continue
			}
			s.log.Debug("checkpoint written", "streams", report.Streams, "bytes", report.Bytes,
				"duration", report.Duration)
		}
	}
}

// Close writes a final checkpoint of src (when src is not nil), closes the
// log and releases the directory. Call it after the receivers stopped, so
// that the checkpoint holds every acknowledged request and the next start
// replays nothing. If the final checkpoint fails, the log still holds the
// data and the next start replays it.
func (s *Store) Close(ctx context.Context, src StreamSource) error {
	var errs []error
	s.stopped.Store(true)
	if src != nil {
		if s.wal.Load() != nil {
			report, err := s.Checkpoint(ctx, src)
			if err != nil {
				errs = append(errs, fmt.Errorf("final checkpoint: %w", err))
			} else {
				s.log.Info("final checkpoint written", "streams", report.Streams, "bytes", report.Bytes,
					"duration", report.Duration)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.Join(errs...)
	}
	s.closed = true
	if l := s.wal.Load(); l != nil {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.unlock(); err != nil {
		errs = append(errs, fmt.Errorf("releasing the state directory lock: %w", err))
	}
	return errors.Join(errs...)
}
