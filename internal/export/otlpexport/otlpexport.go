// Package otlpexport owns the OTLP/gRPC exporter: it sends cumulative
// metrics to any OTLP backend from the shared export queue (one sender),
// retrying the status codes the OTLP specification calls retryable and
// honouring the server's RetryInfo.
package otlpexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/export"
	"github.com/deltapipeline/deltapipeline/internal/export/httpauth"
	"github.com/deltapipeline/deltapipeline/internal/version"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// Name is the exporter label of this exporter's self-metrics.
const Name = "otlp"

// Reasons points are dropped.
const (
	DropQueueFull        = export.DropQueueFull
	DropNotRetryable     = "not_retryable"
	DropRetriesExhausted = "retries_exhausted"
	DropPartialSuccess   = "rejected_by_backend"
	DropShutdown         = export.DropShutdown
)

// Options build an Exporter.
type Options struct {
	Config  workerconfig.OTLPExporter
	Metrics *export.Metrics
	Logger  *slog.Logger
}

// Exporter is the OTLP/gRPC exporter.
type Exporter struct {
	cfg     workerconfig.OTLPExporter
	conn    *grpc.ClientConn
	client  pmetricotlp.GRPCClient
	metrics *export.Metrics
	logger  *slog.Logger
	queue   *export.Queue[pmetric.Metrics]
}

// New connects lazily (gRPC dials on first use) and starts the sender.
func New(ctx context.Context, opts Options) (*Exporter, error) {
	cfg := opts.Config
	if err := httpauth.CheckHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	var creds credentials.TransportCredentials
	if cfg.Insecure {
		creds = insecure.NewCredentials()
	} else {
		tlsCfg, err := httpauth.TLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("OTLP exporter: %w", err)
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("deltapipeline-worker/" + version.Version),
	}
	if cfg.Compression == "gzip" {
		dialOpts = append(dialOpts, grpc.WithDefaultCallOptions(grpc.UseCompressor("gzip")))
	}
	conn, err := grpc.NewClient(cfg.Endpoint, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: endpoint %q: %w", cfg.Endpoint, err)
	}
	e := &Exporter{
		cfg:     cfg,
		conn:    conn,
		client:  pmetricotlp.NewGRPCClient(conn),
		metrics: opts.Metrics,
		logger:  opts.Logger.With("exporter", Name),
	}
	e.metrics.Init(Name, DropQueueFull, DropNotRetryable, DropRetriesExhausted, DropPartialSuccess, DropShutdown)
	e.queue = export.StartQueue(ctx, export.QueueConfig[pmetric.Metrics]{
		Exporter: Name,
		Capacity: cfg.QueueSize,
		Size:     pmetric.Metrics.DataPointCount,
		Unit:     "points",
		Metrics:  opts.Metrics,
		Logger:   e.logger,
	}, e.send)
	return e, nil
}

// Name implements export.Exporter.
func (e *Exporter) Name() string { return Name }

// Export queues md; it never waits for the network.
func (e *Exporter) Export(_ context.Context, md pmetric.Metrics) error {
	if md.DataPointCount() == 0 {
		return nil
	}
	// Queued as is: md is read-only once handed over (export.Exporter).
	if err := e.queue.Enqueue(md); err != nil {
		return fmt.Errorf("OTLP exporter: %w", err)
	}
	return nil
}

// AwaitBacklog implements export.Backlog.
func (e *Exporter) AwaitBacklog(ctx context.Context, n int) error {
	return e.queue.AwaitBacklog(ctx, n)
}

func (e *Exporter) callContext(parent context.Context) (context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(parent, e.cfg.Timeout.Duration)
	for _, h := range e.cfg.Headers {
		v, err := httpauth.HeaderValue(h)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		ctx = metadata.AppendToOutgoingContext(ctx, h.Name, v)
	}
	return ctx, cancel, nil
}

// send delivers one queued request; ctx ends when shutdown runs out of time.
func (e *Exporter) send(ctx context.Context, md pmetric.Metrics) {
	points := md.DataPointCount()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	start := time.Now()
	delay := e.cfg.Retry.InitialInterval.Duration
	var err error
	for attempt := 1; ; attempt++ {
		var resp pmetricotlp.ExportResponse
		resp, err = e.attempt(ctx, req)
		if err == nil {
			e.metrics.Latency.WithLabelValues(Name).Observe(time.Since(start).Seconds())
			e.metrics.Requests.WithLabelValues(Name, "success").Inc()
			rejected := int(resp.PartialSuccess().RejectedDataPoints())
			if rejected > 0 {
				e.queue.Dropped(DropPartialSuccess, rejected)
				e.logger.Warn("OTLP backend rejected points", "rejected", rejected, "message", resp.PartialSuccess().ErrorMessage())
			}
			e.metrics.ExportedPoints.WithLabelValues(Name).Add(float64(points - rejected))
			return
		}
		retryable, serverDelay := retryPolicy(err)
		if !retryable || attempt >= e.cfg.Retry.MaxAttempts || ctx.Err() != nil {
			reason := DropRetriesExhausted
			switch {
			case ctx.Err() != nil:
				reason = DropShutdown
			case !retryable:
				reason = DropNotRetryable
			}
			e.metrics.Latency.WithLabelValues(Name).Observe(time.Since(start).Seconds())
			e.metrics.Requests.WithLabelValues(Name, "failure").Inc()
			e.queue.Dropped(reason, points)
			e.logger.Error("dropping OTLP export request", "points", points, "attempts", attempt, "reason", reason, "error", err)
			return
		}
		e.metrics.Retries.WithLabelValues(Name).Inc()
		wait := max(jitter(delay), serverDelay)
		delay = min(delay*2, e.cfg.Retry.MaxInterval.Duration)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

func (e *Exporter) attempt(sendCtx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	ctx, cancel, err := e.callContext(sendCtx)
	if err != nil {
		return pmetricotlp.ExportResponse{}, status.Error(codes.InvalidArgument, err.Error())
	}
	defer cancel()
	return e.client.Export(ctx, req)
}

// jitter spreads retries of many workers over [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// retryPolicy applies the OTLP/gRPC rules: these codes are retryable, and
// RESOURCE_EXHAUSTED only when the server says when to come back.
func retryPolicy(err error) (retryable bool, delay time.Duration) {
	st, ok := status.FromError(err)
	if !ok {
		return true, 0
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return true, delay
	case codes.ResourceExhausted:
		return delay > 0, delay
	}
	return false, 0
}

// Shutdown sends what is queued, then closes the connection; what ctx does
// not leave time for is counted as dropped.
func (e *Exporter) Shutdown(ctx context.Context) error {
	var err error
	if flushErr := e.queue.Shutdown(ctx); flushErr != nil {
		err = fmt.Errorf("OTLP exporter: %w", flushErr)
	}
	return errors.Join(err, e.conn.Close())
}
