package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// shutdownTimeout bounds the final flush of every writer.
const shutdownTimeout = 30 * time.Second

// writer is one emulated Claude Code process. It collects and exports
// after each round itself rather than with a periodic reader: a periodic
// reader cancels an export in flight when it is shut down, which would lose
// a delta that was already collected and make the totals inexact.
type writer struct {
	index   int
	session session
	// startID and startType are the session.id and start_type this
	// writer's process counts its start under.
	startID   string
	startType string
	provider  *sdkmetric.MeterProvider
	reader    *sdkmetric.ManualReader
	exporter  sdkmetric.Exporter
	book      *ledger
	timeout   time.Duration
	in        instruments
	rng       *rand.Rand
}

// run sends cfg.rounds rounds of activity from every writer and returns what
// was acknowledged. Cancelling ctx stops the rounds early; what was recorded
// is still flushed and counted.
func run(ctx context.Context, cfg config, log io.Writer) (totals.Totals, error) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		fmt.Fprintf(log, "loadgen: OpenTelemetry SDK: %v\n", err)
	}))
	conns, err := dial(cfg)
	if err != nil {
		return totals.Totals{}, err
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()

	book := newLedger()
	writers, err := newWriters(ctx, cfg, conns, book)
	if err != nil {
		return totals.Totals{}, err
	}

	stopProgress := startProgress(cfg.progress, book, log)
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.play(ctx, cfg.rounds, cfg.exportInterval) })
	}
	wg.Wait()

	// Each round was exported already; an interrupted run exported what
	// it recorded too. Shutting down only releases the writers.
	var errs []error
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, w := range writers {
		if err := w.close(closeCtx); err != nil {
			errs = append(errs, err)
		}
	}
	stopProgress()

	sent := book.totals()
	sent.Sessions = cfg.sessions
	sent.SharedSessions = cfg.sharedSessions
	sent.Writers = len(writers)
	sent.Rounds = cfg.rounds
	for s := range cfg.sharedSessions {
		sent.SharedSessionIDs = append(sent.SharedSessionIDs, newSession(cfg.seed, s).id)
	}
	if sent.FailedExports > 0 {
		_, _, _, last := book.counts()
		errs = append(errs, fmt.Errorf("%d exports (%d points) were not acknowledged; the totals leave them out; last error: %w",
			sent.FailedExports, sent.FailedPoints, last))
	}
	return sent, errors.Join(errs...)
}

// dialOptions are the connections' TLS and the token every export carries.
func dialOptions(cfg config) ([]grpc.DialOption, error) {
	transport := insecure.NewCredentials()
	if cfg.caFile != "" {
		pemCA, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemCA) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", cfg.caFile)
		}
		transport = credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	if cfg.bearerTokenFile != "" {
		token, err := os.ReadFile(cfg.bearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--bearer-token-file: %w", err)
		}
		value := "Bearer " + strings.TrimSpace(string(token))
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", value), method, req, reply, cc, callOpts...)
		}))
	}
	return opts, nil
}

// dial opens cfg.connsPerEndpoint connections to every endpoint.
func dial(cfg config) ([]*grpc.ClientConn, error) {
	opts, err := dialOptions(cfg)
	if err != nil {
		return nil, err
	}
	var conns []*grpc.ClientConn
	for i := range cfg.connsPerEndpoint {
		for _, endpoint := range cfg.endpoints {
			conn, err := grpc.NewClient(endpoint, opts...)
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return nil, fmt.Errorf("connecting to %s (connection %d): %w", endpoint, i, err)
			}
			conns = append(conns, conn)
		}
	}
	return conns, nil
}

// newWriters creates one writer per session and a second writer for each of
// the first cfg.sharedSessions sessions. Consecutive writers use consecutive
// connections, which alternate between endpoints, so the two writers of a
// shared session enter the pipeline through different gateways when there
// are several.
func newWriters(ctx context.Context, cfg config, conns []*grpc.ClientConn, book *ledger) ([]*writer, error) {
	res, err := clientResource(cfg.clientVersion)
	if err != nil {
		return nil, err
	}
	var writers []*writer
	add := func(sessionIndex, copyIndex int) error {
		index := len(writers)
		exp, err := otlpmetricgrpc.New(ctx,
			otlpmetricgrpc.WithGRPCConn(conns[index%len(conns)]),
			otlpmetricgrpc.WithTemporalitySelector(deltaTemporality),
			otlpmetricgrpc.WithTimeout(cfg.exportTimeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{
				Enabled:         !cfg.noRetry,
				InitialInterval: 200 * time.Millisecond,
				MaxInterval:     2 * time.Second,
				MaxElapsedTime:  cfg.exportTimeout,
			}),
		)
		if err != nil {
			return fmt.Errorf("creating the OTLP exporter of writer %d: %w", index, err)
		}
		reader := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(deltaTemporality))
		provider := sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(res),
			sdkmetric.WithReader(reader),
		)
		in, err := newInstruments(provider.Meter(meterName, metric.WithInstrumentationVersion(cfg.clientVersion)))
		if err != nil {
			_ = provider.Shutdown(ctx)
			return err
		}
		s := newSession(cfg.seed, sessionIndex)
		startID, startType := s.start(copyIndex)
		writers = append(writers, &writer{
			index:     index,
			session:   s,
			startID:   startID,
			startType: startType,
			provider:  provider,
			reader:    reader,
			exporter:  book.wrap(exp),
			book:      book,
			timeout:   cfg.exportTimeout,
			in:        in,
			// Each writer of a session draws its own values: two processes
			// of one session do different work.
			rng: rand.New(rand.NewPCG(cfg.seed, uint64(sessionIndex)<<8|uint64(copyIndex)+1)),
		})
		return nil
	}
	for s := range cfg.sessions {
		if err := add(s, 0); err != nil {
			shutdownAll(writers)
			return nil, err
		}
		if s < cfg.sharedSessions {
			if err := add(s, 1); err != nil {
				shutdownAll(writers)
				return nil, err
			}
		}
	}
	return writers, nil
}

func shutdownAll(writers []*writer) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, w := range writers {
		_ = w.close(ctx)
	}
}

// close releases the writer's provider and exporter.
func (w *writer) close(ctx context.Context) error {
	err := errors.Join(w.provider.Shutdown(ctx), w.exporter.Shutdown(ctx))
	if err != nil {
		return fmt.Errorf("closing writer %d: %w", w.index, err)
	}
	return nil
}

// clientResource is the resource Claude Code reports: no
// service.instance.id, so it is the same for every process on every host,
// which is why routing must not hash the resource alone.
func clientResource(version string) (*resource.Resource, error) {
	res, err := resource.New(context.Background(), resource.WithAttributes(
		attribute.String("service.name", "claude-code"),
		attribute.String("service.version", version),
		attribute.String("os.type", "linux"),
		attribute.String("os.version", "6.12.0"),
		attribute.String("host.arch", "amd64"),
	))
	if err != nil {
		return nil, fmt.Errorf("building the client resource: %w", err)
	}
	return res, nil
}

// deltaTemporality is what OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta
// selects: delta for counters and histograms, cumulative for up-down
// counters (whose deltas would be meaningless).
func deltaTemporality(kind sdkmetric.InstrumentKind) metricdata.Temporality {
	switch kind {
	case sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindObservableCounter, sdkmetric.InstrumentKindHistogram:
		return metricdata.DeltaTemporality
	default:
		return metricdata.CumulativeTemporality
	}
}

// play records and exports one round per interval, starting at once, until
// rounds are done or ctx ends, as Claude Code exports once per
// OTEL_METRIC_EXPORT_INTERVAL. The ledger counts each export's outcome.
func (w *writer) play(ctx context.Context, rounds int, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for round := range rounds {
		recordTurn(ctx, w.in, w.session, w.startID, w.startType, round, w.rng)
		w.export(ctx)
		if round == rounds-1 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// export collects the deltas recorded since the last export and sends them.
// The export is not cut short by ctx: an interrupted run still delivers
// what it recorded, within the export timeout.
func (w *writer) export(ctx context.Context) {
	var rm metricdata.ResourceMetrics
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	if err := w.reader.Collect(ctx, &rm); err != nil {
		w.book.record(&rm, fmt.Errorf("collecting writer %d: %w", w.index, err))
		return
	}
	// The recording exporter counts failures; the error is in the ledger.
	_ = w.exporter.Export(ctx, &rm)
}

// startProgress prints acknowledged points and their rate every interval;
// the returned function stops it.
func startProgress(interval time.Duration, book *ledger, log io.Writer) func() {
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		var last int64
		lastAt := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-ticker.C:
				points, failedPoints, failedExports, _ := book.counts()
				rate := float64(points-last) / now.Sub(lastAt).Seconds()
				last, lastAt = points, now
				fmt.Fprintf(log, "loadgen: points=%d points_per_second=%.0f failed_exports=%d failed_points=%d\n",
					points, rate, failedExports, failedPoints)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
