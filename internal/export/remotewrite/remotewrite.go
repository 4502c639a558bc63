// Package remotewrite owns the Prometheus remote write 1.0 exporter: it turns
// cumulative OTLP metrics into prometheus.WriteRequest messages, keeps them
// in the shared export queue, sent by one sender (so samples of a series
// reach the receiver in time order, also across requests), signs them
// with SigV4 or other authentication, and retries what the specification
// says is retryable, counting everything it gives up on by reason.
package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/prometheus/client_golang/exp/api/remote"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/export"
	"github.com/deltapipeline/deltapipeline/internal/export/httpauth"
	"github.com/deltapipeline/deltapipeline/internal/export/promseries"
	"github.com/deltapipeline/deltapipeline/internal/version"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// Name is the exporter label of this exporter's self-metrics.
const Name = "prometheusremotewrite"

// maxSeriesPerRequest keeps requests well below the body limits of common
// receivers (Amazon Managed Service for Prometheus accepts 1 MB compressed).
const maxSeriesPerRequest = 2000

// Reasons samples are dropped after they were queued.
const (
	DropQueueFull        = export.DropQueueFull
	DropClientError      = "client_error"
	DropRateLimited      = "rate_limited"
	DropServerError      = "server_error"
	DropNetworkError     = "network_error"
	DropShutdown         = export.DropShutdown
	DropRequestEncoding  = "encoding_error"
	DropAttemptsExceeded = "retries_exhausted"
)

// Options build an Exporter. Clock, Credentials and Transport exist so that
// tests can sign with a fixed time and static keys and still use a real
// HTTP connection.
type Options struct {
	Config  workerconfig.RemoteWriteExporter
	Metrics *export.Metrics
	Logger  *slog.Logger
	// Clock is the signing time; time.Now when nil.
	Clock func() time.Time
	// Credentials sign requests when SigV4 is configured; the AWS default
	// chain (plus the configured role) when nil.
	Credentials aws.CredentialsProvider
	// Transport carries requests; a clone of http.DefaultTransport when nil.
	Transport http.RoundTripper
}

// Exporter is the remote write exporter.
type Exporter struct {
	cfg     workerconfig.RemoteWriteExporter
	api     *remote.API
	metrics *export.Metrics
	logger  *slog.Logger

	buildMu sync.Mutex
	builder *builder

	queue *export.Queue[*batch]
}

type batch struct {
	req     *WriteRequest
	samples int
}

// New builds the exporter and starts its sender.
func New(ctx context.Context, opts Options) (*Exporter, error) {
	cfg := opts.Config
	if err := httpauth.CheckHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("remote write exporter: %w", err)
	}
	tlsCfg, err := httpauth.TLSConfig(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("remote write exporter: %w", err)
	}
	base := opts.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsCfg
		base = t
	}
	var rt http.RoundTripper = statusRecorder{base: base}
	if cfg.SigV4 != nil {
		creds := opts.Credentials
		if creds == nil {
			if creds, err = defaultCredentials(ctx, *cfg.SigV4); err != nil {
				return nil, err
			}
		}
		clock := opts.Clock
		if clock == nil {
			clock = time.Now
		}
		rt = &sigV4Transport{base: rt, signer: v4.NewSigner(), credentials: creds, region: cfg.SigV4.Region, now: clock}
	}
	rt = &httpauth.Transport{
		Base:            rt,
		UserAgent:       "deltapipeline-worker/" + version.Version,
		Headers:         cfg.Headers,
		BasicAuth:       cfg.BasicAuth,
		BearerTokenFile: cfg.BearerTokenFile,
	}

	api, err := remote.NewAPI(cfg.Endpoint,
		remote.WithAPIPath(""),
		remote.WithAPIHTTPClient(&http.Client{Transport: rt, Timeout: cfg.Timeout.Duration}),
		remote.WithAPILogger(opts.Logger.With("exporter", Name)),
		remote.WithAPIBackoff(remote.BackoffConfig{
			Min: cfg.Retry.InitialInterval.Duration,
			Max: cfg.Retry.MaxInterval.Duration,
			// Never zero (which the client reads as "retry forever"); the
			// attempt limit itself is enforced in send.
			MaxRetries: cfg.Retry.MaxAttempts,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("remote write exporter: endpoint %q: %w", cfg.Endpoint, err)
	}
	e := &Exporter{
		cfg:     cfg,
		api:     api,
		metrics: opts.Metrics,
		logger:  opts.Logger.With("exporter", Name),
		builder: newBuilder(promseries.NewTranslator(cfg.ExternalLabels)),
	}
	e.metrics.Init(Name, DropQueueFull, DropClientError, DropRateLimited, DropServerError, DropNetworkError,
		DropShutdown, DropRequestEncoding, DropAttemptsExceeded,
		promseries.DropDelta, promseries.DropInvalidName, promseries.DropInvalidPoint, promseries.DropUnsupportedScale, promseries.DropEmptyType)
	e.queue = export.StartQueue(ctx, export.QueueConfig[*batch]{
		Exporter: Name,
		Capacity: cfg.QueueSize,
		Size:     func(b *batch) int { return b.samples },
		Unit:     "samples",
		Metrics:  opts.Metrics,
		Logger:   e.logger,
	}, e.send)
	return e, nil
}

// Name implements export.Exporter.
func (e *Exporter) Name() string { return Name }

// Export translates md and queues it; it never waits for the network.
func (e *Exporter) Export(_ context.Context, md pmetric.Metrics) error {
	e.buildMu.Lock()
	series, samples, dropped := e.builder.build(md)
	e.buildMu.Unlock()
	for reason, n := range dropped {
		e.queue.Dropped(reason, n)
	}
	if samples == 0 {
		return nil
	}
	for start := 0; start < len(series); start += maxSeriesPerRequest {
		part := series[start:min(start+maxSeriesPerRequest, len(series))]
		if err := e.queue.Enqueue(&batch{req: &WriteRequest{Timeseries: part}, samples: countSamples(part)}); err != nil {
			return fmt.Errorf("remote write exporter: %w", err)
		}
	}
	return nil
}

func countSamples(series []TimeSeries) int {
	n := 0
	for i := range series {
		n += len(series[i].Samples) + len(series[i].Histograms)
	}
	return n
}

// AwaitBacklog implements export.Backlog.
func (e *Exporter) AwaitBacklog(ctx context.Context, n int) error {
	return e.queue.AwaitBacklog(ctx, n)
}

type statusKey struct{}

// statusRecorder remembers the status of the last response of a send, so
// that what is dropped can be counted by why.
type statusRecorder struct{ base http.RoundTripper }

func (s statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if status, ok := req.Context().Value(statusKey{}).(*int); ok {
		if err != nil {
			*status = 0
		} else {
			*status = resp.StatusCode
		}
	}
	return resp, err
}

var errAttemptsExhausted = errors.New("retry.maxAttempts reached")

// send delivers one queued request; sendCtx ends when shutdown runs out of
// time.
func (e *Exporter) send(sendCtx context.Context, b *batch) {
	status := new(int)
	ctx, cancel := context.WithCancelCause(context.WithValue(sendCtx, statusKey{}, status))
	defer cancel(nil)
	attempts := 1
	var lastErr error
	start := time.Now()
	_, err := e.api.Write(ctx, remote.WriteV1MessageType, b.req, remote.WithWriteRetryCallback(func(err error) {
		lastErr = err
		if attempts >= e.cfg.Retry.MaxAttempts {
			cancel(errAttemptsExhausted)
			return
		}
		attempts++
		e.metrics.Retries.WithLabelValues(Name).Inc()
	}))
	e.metrics.Latency.WithLabelValues(Name).Observe(time.Since(start).Seconds())
	if err == nil {
		e.metrics.Requests.WithLabelValues(Name, "success").Inc()
		e.metrics.ExportedPoints.WithLabelValues(Name).Add(float64(b.samples))
		return
	}
	e.metrics.Requests.WithLabelValues(Name, "failure").Inc()
	reason := dropReason(*status, context.Cause(ctx), sendCtx.Err())
	if errors.Is(context.Cause(ctx), errAttemptsExhausted) && lastErr != nil {
		err = fmt.Errorf("%w after %d attempts: %w", errAttemptsExhausted, attempts, lastErr)
	}
	e.queue.Dropped(reason, b.samples)
	e.logger.Error("dropping remote write request", "samples", b.samples, "reason", reason, "error", err)
}

// dropReason names why a request was given up, from the last HTTP status.
func dropReason(status int, cause, shutdown error) string {
	switch {
	case shutdown != nil:
		return DropShutdown
	case status == http.StatusTooManyRequests:
		return DropRateLimited
	case status >= 500:
		return DropServerError
	case status >= 400:
		return DropClientError
	case status == 0:
		return DropNetworkError
	}
	return DropAttemptsExceeded
}

// Shutdown stops accepting requests, sends what is queued and returns when
// the queue is empty or ctx ends; what could not be sent is counted.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if err := e.queue.Shutdown(ctx); err != nil {
		return fmt.Errorf("remote write exporter: %w", err)
	}
	return nil
}
