// Package worker owns the wiring of the worker process: it builds the
// conversion engine, the OTLP receivers, the exporters and the telemetry
// endpoint from a workerconfig.Config, runs the ingest path and the emit
// loop, and shuts everything down in the order that loses nothing:
// stop receiving, emit every running total, flush the exporters.
//
// With state.directory set, the worker hands its durable state to a
// state.Store (see durable.go): each request is journaled before it is
// applied, state is restored before the worker reports ready, the store
// checkpoints on its own cadence and once more when it closes at shutdown,
// and readiness shows the store's health.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/export"
	"github.com/deltapipeline/deltapipeline/internal/export/otlpexport"
	"github.com/deltapipeline/deltapipeline/internal/export/promexport"
	"github.com/deltapipeline/deltapipeline/internal/export/remotewrite"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/receive"
	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/telemetry"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// Options are what the configuration file does not say.
type Options struct {
	Logger *slog.Logger
	// Clock drives emits and staleness; time.Now when nil.
	Clock func() time.Time
	// ShutdownTimeout bounds the whole shutdown, flush included.
	ShutdownTimeout time.Duration
	// RemoteWrite adjusts the remote write exporter's options (tests inject
	// a signing clock and static credentials here).
	RemoteWrite func(*remotewrite.Options)
}

// Worker is one running worker process.
type Worker struct {
	cfg           workerconfig.Config
	opts          Options
	logger        *slog.Logger
	registry      *prometheus.Registry
	metrics       *engineMetrics
	exportMetrics *export.Metrics
	readiness     *telemetry.Readiness

	engineMu sync.RWMutex
	engine   *convert.Engine
	// store holds the durable state; nil when state.directory is empty.
	store *state.Store

	// handoff is this worker's part of the ring; nil when it owns every
	// stream it receives (no handoff section).
	handoff   *handoff.Handoff
	receivers *receive.Servers
	telemetry *telemetry.Server
	pull      *promexport.Exporter
	exporters []export.Exporter
}

// DefaultShutdownTimeout leaves a few seconds of a Kubernetes pod's default
// 30 second grace period for the process to exit.
const DefaultShutdownTimeout = 25 * time.Second

// New builds the worker and binds every listener, so that a taken port or a
// missing credential fails here rather than after the worker said ready.
func New(ctx context.Context, cfg workerconfig.Config, opts Options) (_ *Worker, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	w := &Worker{
		cfg:       cfg,
		opts:      opts,
		logger:    opts.Logger,
		readiness: telemetry.NewReadiness("starting"),
	}
	w.registry = telemetry.NewRegistry()
	if w.metrics, err = newEngineMetrics(w.registry, w.streams); err != nil {
		return nil, err
	}
	if w.exportMetrics, err = export.NewMetrics(w.registry); err != nil {
		return nil, err
	}
	var checkpointInterval time.Duration
	if cfg.State.Directory != "" {
		checkpointInterval = cfg.State.CheckpointInterval.Duration
	}
	if err := registerLimits(w.registry, cfg.Conversion.MaxStreams, checkpointInterval); err != nil {
		return nil, err
	}
	if w.engine, err = w.newEngine(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			w.closeOnError()
		}
	}()
	if err := w.openState(); err != nil {
		return nil, err
	}
	if err := w.buildExporters(ctx); err != nil {
		return nil, err
	}
	if err := w.buildHandoff(); err != nil {
		return nil, err
	}
	otlp := cfg.Receivers.OTLP
	if w.receivers, err = receive.Listen(receive.Options{
		GRPCEndpoint:   otlp.GRPC.Endpoint,
		HTTPEndpoint:   otlp.HTTP.Endpoint,
		MaxRecvMsgSize: otlp.GRPC.MaxRecvMsgSizeMiB << 20,
		MaxRequestBody: int64(otlp.HTTP.MaxRequestBodyMiB) << 20,
		MaxInFlight:    otlp.MaxConcurrentRequests,
		TokenFile:      otlp.AuthTokenFile,
		Consumer:       consumer{w},
		Registerer:     w.registry,
		Logger:         w.logger,
	}); err != nil {
		return nil, err
	}
	if w.telemetry, err = telemetry.Listen(cfg.Telemetry.Endpoint, w.registry, w.readiness, w.logger); err != nil {
		return nil, err
	}
	if w.handoff != nil {
		w.telemetry.Handle("GET /handoff", w.handoff.StatusHandler())
	}
	return w, nil
}

func (w *Worker) newEngine() (*convert.Engine, error) {
	return convert.NewEngine(engineConfig(w.cfg.Conversion, w.opts.Clock))
}

// engineConfig translates the configuration file's conversion section into
// the engine's plain settings.
func engineConfig(c workerconfig.Conversion, clock func() time.Time) convert.Config {
	return convert.Config{
		MaxStreams:   c.MaxStreams,
		MaxStale:     c.MaxStale.Duration,
		SingleWriter: c.Writers == workerconfig.WritersSingle,
		// Points may arrive late for as long as the gateways retry.
		LateDataWindow: workerconfig.GatewayRetryBudget,
		Clock:          clock,
	}
}

func (w *Worker) buildExporters(ctx context.Context) error {
	e := w.cfg.Exporters
	if e.PrometheusRemoteWrite != nil {
		o := remotewrite.Options{Config: *e.PrometheusRemoteWrite, Metrics: w.exportMetrics, Logger: w.logger}
		if w.opts.RemoteWrite != nil {
			w.opts.RemoteWrite(&o)
		}
		rw, err := remotewrite.New(ctx, o)
		if err != nil {
			return err
		}
		w.exporters = append(w.exporters, rw)
	}
	if e.OTLP != nil {
		o, err := otlpexport.New(ctx, otlpexport.Options{Config: *e.OTLP, Metrics: w.exportMetrics, Logger: w.logger})
		if err != nil {
			return err
		}
		w.exporters = append(w.exporters, o)
	}
	if e.Prometheus != nil {
		p, err := promexport.Listen(promexport.Options{
			Endpoint:   e.Prometheus.Endpoint,
			MaxStale:   w.cfg.Conversion.MaxStale.Duration,
			Metrics:    w.exportMetrics,
			Registerer: w.registry,
			Logger:     w.logger,
			Now:        w.opts.Clock,
		})
		if err != nil {
			return err
		}
		w.pull = p
		w.exporters = append(w.exporters, p)
	}
	return nil
}

// closeOnError releases what New had built when a later step failed.
func (w *Worker) closeOnError() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if w.receivers != nil {
		_ = w.receivers.Shutdown(ctx)
	}
	if w.telemetry != nil {
		_ = w.telemetry.Shutdown(ctx)
	}
	if w.handoff != nil {
		_ = w.handoff.Close(ctx)
	}
	for _, e := range w.exporters {
		_ = e.Shutdown(ctx)
	}
	if w.store != nil {
		_ = w.store.Close(ctx, nil) // start-up failed: nothing to checkpoint
	}
}

func (w *Worker) streams() int {
	if e := w.currentEngine(); e != nil {
		return e.Streams()
	}
	return 0
}

func (w *Worker) currentEngine() *convert.Engine {
	w.engineMu.RLock()
	defer w.engineMu.RUnlock()
	return w.engine
}

// Addresses of the bound listeners, useful with port 0.
func (w *Worker) GRPCAddr() net.Addr      { return w.receivers.GRPCAddr() }
func (w *Worker) HTTPAddr() net.Addr      { return w.receivers.HTTPAddr() }
func (w *Worker) TelemetryAddr() net.Addr { return w.telemetry.Addr() }

// PrometheusAddr is the scrape endpoint's address, nil when not configured.
func (w *Worker) PrometheusAddr() net.Addr {
	if w.pull == nil {
		return nil
	}
	return w.pull.Addr()
}

// Registry is the self-metrics registry served at telemetry.endpoint.
func (w *Worker) Registry() *prometheus.Registry { return w.registry }

// Run serves until ctx ends, then shuts down gracefully. It returns the
// first error that stopped the worker early, or what went wrong during
// shutdown.
func (w *Worker) Run(ctx context.Context) error {
	serveErrs := make(chan error, 3)
	go func() { serveErrs <- w.telemetry.Serve() }()
	go func() { serveErrs <- w.receivers.Serve() }()
	if w.pull != nil {
		go func() { serveErrs <- w.pull.Serve() }()
	}

	if w.handoff != nil {
		w.handoff.Start()
		if err := w.awaitMembership(ctx); err != nil {
			return errors.Join(err, w.shutdown(false))
		}
	}
	if err := w.restore(ctx); err != nil {
		return errors.Join(err, w.shutdown(false))
	}
	if w.handoff != nil {
		w.handoff.SetReady(true)
		w.handoff.RequestSweep()
	}
	w.readiness.Ready()
	w.logger.Info("worker ready",
		"otlpGRPC", w.GRPCAddr().String(), "otlpHTTP", w.HTTPAddr().String(), "telemetry", w.TelemetryAddr().String())

	var loops sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(ctx)
	loops.Go(func() { w.emitLoop(loopCtx) })
	if w.store != nil {
		loops.Go(func() { w.runCheckpoints(loopCtx) })
	}

	var runErr error
	select {
	case <-ctx.Done():
		w.logger.Info("shutting down", "cause", context.Cause(ctx))
	case err := <-serveErrs:
		runErr = err
		w.logger.Error("a listener failed; shutting down", "error", err)
	}
	stopLoops()
	loops.Wait()
	return errors.Join(runErr, w.shutdown(true))
}

// consumer hands the receivers' requests to the worker, undecoded when they
// arrived as protobuf (receive.EncodedConsumer).
type consumer struct{ w *Worker }

func (c consumer) Consume(ctx context.Context, md pmetric.Metrics) (receive.Outcome, error) {
	return c.w.consume(ctx, md, nil)
}

func (c consumer) ConsumeEncoded(ctx context.Context, encoded []byte) (int, receive.Outcome, error) {
	return c.w.consumeEncoded(ctx, encoded)
}

// consumeEncoded is the ingest path of a request received as protobuf. A
// request of DELTA sums and histograms, the usual one, is journaled as the
// bytes it arrived in and the points of streams this worker holds are read
// from those bytes in place (convert.ReadEncoded); only the points left
// (new streams, streams on their way elsewhere, invalid points) are decoded
// into pdata. Any other request is decoded whole and takes consume.
func (w *Worker) consumeEncoded(ctx context.Context, encoded []byte) (int, receive.Outcome, error) {
	r, ok := convert.ReadEncoded(encoded)
	if !ok {
		md, err := receive.Decode(encoded)
		if err != nil {
			return 0, receive.Outcome{}, err
		}
		points := md.DataPointCount()
		outcome, err := w.consume(ctx, md, encoded)
		return points, outcome, err
	}
	defer r.Release()
	points := r.Points()
	if ready, reason := w.readiness.State(); !ready {
		return points, receive.Outcome{}, receive.Unavailable("not_ready", receive.DefaultRetryAfter, errors.New(reason))
	}
	var done func()
	if w.store != nil && r.Metrics() > 0 {
		var err error
		if done, err = w.store.RecordConverted(ctx, encoded); err != nil {
			return points, receive.Outcome{}, journalRefusal(err)
		}
	}
	res, err := w.applyEncoded(ctx, r)
	if done != nil {
		done()
	}
	w.metrics.countApply(res)
	if err != nil {
		return points, receive.Outcome{}, err
	}
	return points, outcomeOf(res), nil
}

// journalRefusal asks the sender to retry a request the journal could not
// make durable: nothing of it was applied.
func journalRefusal(err error) error {
	return receive.Unavailable("journal", receive.DefaultRetryAfter, fmt.Errorf("recording the request durably: %w", err))
}

// outcomeOf is the partial success of what the engine refused.
func outcomeOf(res convert.Result) receive.Outcome {
	return receive.Outcome{RejectedPoints: int64(res.RejectedTotal()), Message: res.Message()}
}

// applyEncoded applies the points of held streams in place and the rest
// through apply, decoded.
func (w *Worker) applyEncoded(ctx context.Context, r *convert.EncodedRequest) (convert.Result, error) {
	res, rest := w.currentEngine().ApplyHeld(r)
	if rest == nil {
		w.metrics.inPlacePoints.Add(float64(r.Points()))
		return res, nil
	}
	md, err := receive.Decode(rest)
	if err == nil {
		w.metrics.inPlacePoints.Add(float64(r.Points() - md.DataPointCount()))
	}
	if err != nil {
		// ReadEncoded read it, so pdata decodes it (FuzzApplyHeld); a
		// retry is the sender's best chance should that ever not hold.
		return res, fmt.Errorf("decoding the points not applied in place: %w", err)
	}
	more, err := w.apply(ctx, md)
	res.Add(more)
	if err != nil {
		return res, receive.Unavailable("forward_queue_full", receive.DefaultRetryAfter, err)
	}
	return res, nil
}

// consume is the ingest path of a decoded request: journal, apply, forward
// passthrough, answer. encoded is md's protobuf encoding as received, or
// nil; the journal takes it as it is instead of encoding md again.
func (w *Worker) consume(ctx context.Context, md pmetric.Metrics, encoded []byte) (receive.Outcome, error) {
	if ready, reason := w.readiness.State(); !ready {
		return receive.Outcome{}, receive.Unavailable("not_ready", receive.DefaultRetryAfter, errors.New(reason))
	}
	var done func()
	if w.store != nil {
		var err error
		if done, err = w.store.RecordEncoded(ctx, md, encoded); err != nil {
			return receive.Outcome{}, journalRefusal(err)
		}
	}
	res, err := w.apply(ctx, md)
	if done != nil {
		done()
	}
	w.metrics.countApply(res)
	if err != nil {
		return receive.Outcome{}, receive.Unavailable("forward_queue_full", receive.DefaultRetryAfter, err)
	}
	if res.Passthrough > 0 {
		w.exportAll(ctx, md)
	}
	return outcomeOf(res), nil
}

// exportAll hands md to every exporter. md is never modified afterwards
// (the export.Exporter contract), so exporters may queue it without a copy.
func (w *Worker) exportAll(ctx context.Context, md pmetric.Metrics) {
	for _, e := range w.exporters {
		if err := e.Export(ctx, md); err != nil {
			w.logger.Error("exporter refused data", "exporter", e.Name(), "error", err)
		}
	}
}

// every runs fn every period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			fn()
		}
	}
}

func (w *Worker) emitLoop(ctx context.Context) {
	every(ctx, w.cfg.Conversion.Interval.Duration, func() { w.emit(ctx, false) })
}

// emitChunkPoints bounds the points of one emitted request, so that an
// emit of a million streams never holds a million output points at once
// and each exporter request stays well under common message size limits.
const emitChunkPoints = 8192

// emitMaxPending is how many requests an exporter may have waiting before
// the emit waits for it: enough to keep the sender busy, few enough that
// the output of an emit is not all in memory at once.
const emitMaxPending = 8

// emit sends the cumulative values of updated streams, or of every live
// stream when all is set (at shutdown, so the last totals are not lost).
func (w *Worker) emit(ctx context.Context, all bool) {
	// A destination that stays slow must not stall emits for longer than
	// one interval; past that, parts queue and the queues' own bounds apply.
	backlogCtx, cancel := context.WithTimeout(ctx, w.cfg.Conversion.Interval.Duration)
	defer cancel()
	res := w.currentEngine().EmitChunks(w.opts.Clock(), all, emitChunkPoints, func(part pmetric.Metrics) {
		w.exportAll(ctx, part)
		w.awaitBacklog(backlogCtx)
	})
	w.metrics.countEmit(res)
}

// awaitBacklog returns once every queueing exporter has at most
// emitMaxPending requests waiting, woken by its sender, or when ctx ends.
func (w *Worker) awaitBacklog(ctx context.Context) {
	for _, e := range w.exporters {
		if b, ok := e.(export.Backlog); ok && b.AwaitBacklog(ctx, emitMaxPending) != nil {
			return
		}
	}
}

// shutdown stops receiving, emits every running total, checkpoints and
// flushes the exporters, all within ShutdownTimeout.
func (w *Worker) shutdown(ready bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.ShutdownTimeout)
	defer cancel()
	w.readiness.NotReady("shutting down")
	var errs []error
	if err := w.receivers.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if ready {
		w.emit(ctx, true)
	}
	if w.handoff != nil {
		w.handoff.SetReady(false)
		if err := w.drainHandoff(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if w.store != nil {
		if err := w.store.Close(ctx, checkpointSource{w}); err != nil {
			errs = append(errs, fmt.Errorf("closing worker state: %w", err))
		}
	}
	for _, e := range w.exporters {
		if err := e.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutting down exporter %s: %w", e.Name(), err))
		}
	}
	if err := w.telemetry.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
