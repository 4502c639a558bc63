package receive

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/deltapipeline/deltapipeline/internal/bearertoken"
)

// Reasons a whole request is refused, the reason label of
// refused_requests_total. Consumers add their own (not_ready, journal)
// through UnavailableError.Reason.
const (
	reasonMalformed            = "malformed"
	reasonTooLarge             = "too_large"
	reasonOverloaded           = "overloaded"
	reasonUnsupportedMediaType = "unsupported_media_type"
	reasonMethodNotAllowed     = "method_not_allowed"
	reasonInternal             = "internal"
	reasonConsumerError        = "consumer_error"
)

// ingest is the one path both transports share, as in the OpenTelemetry
// Collector's receivers: a transport decodes a request, calls export and
// encodes what it returns; admission, counting, the consumer and the
// partial success happen here, once.
type ingest struct {
	consumer  Consumer
	admission *admission
	metrics   *metrics
	logger    *slog.Logger
	// tokens is nil when every request is accepted.
	tokens *bearertoken.File
}

// newIngest builds the path for both transports, registering its metrics.
func newIngest(opts Options) (*ingest, error) {
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	in := &ingest{
		consumer:  opts.Consumer,
		admission: newAdmission(opts.MaxInFlight),
		metrics:   m,
		logger:    opts.Logger,
	}
	if opts.TokenFile != "" {
		if in.tokens, err = bearertoken.Open(opts.TokenFile, "the OTLP receivers' token file", opts.Logger, time.Now); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// authenticate is the one token check of both transports, made before a
// request is read or decoded so that a sender without the token costs
// little. authorization holds the request's authorization header or
// metadata values; the first must carry an accepted token. A refusal is
// counted in unauthenticated_requests_total, not in refused_requests_total:
// it says who sent the request, not what was wrong with it.
func (in *ingest) authenticate(transport string, authorization []string) bool {
	if in.tokens == nil {
		return true
	}
	if len(authorization) > 0 && in.tokens.Accepts(authorization[0]) {
		return true
	}
	in.metrics.unauthenticated.WithLabelValues(transport).Inc()
	return false
}

// export admits one decoded request, counts its points, hands them to the
// consumer and returns the OTLP response, with the partial success of what
// the consumer refused, or why the whole request must be retried later
// (an *UnavailableError).
func (in *ingest) export(ctx context.Context, transport string, md pmetric.Metrics) (pmetricotlp.ExportResponse, error) {
	return in.admitted(ctx, transport, func() (Outcome, error) {
		in.metrics.receivedPoints.WithLabelValues(transport).Add(float64(md.DataPointCount()))
		return in.consumer.Consume(ctx, md)
	})
}

// exportEncoded is export for a request received as protobuf, which an
// EncodedConsumer takes undecoded. It may also refuse the request as
// malformed (a *MalformedError). encoded stays valid until it returns.
func (in *ingest) exportEncoded(ctx context.Context, transport string, encoded []byte) (pmetricotlp.ExportResponse, error) {
	ec, ok := in.consumer.(EncodedConsumer)
	if !ok {
		md, err := Decode(encoded)
		if err != nil {
			in.refused(transport, reasonMalformed)
			return pmetricotlp.ExportResponse{}, err
		}
		return in.export(ctx, transport, md)
	}
	return in.admitted(ctx, transport, func() (Outcome, error) {
		points, outcome, err := ec.ConsumeEncoded(ctx, encoded)
		in.metrics.receivedPoints.WithLabelValues(transport).Add(float64(points))
		return outcome, err
	})
}

// admitted runs consume under the concurrency limit and turns its outcome
// into the response.
func (in *ingest) admitted(ctx context.Context, transport string, consume func() (Outcome, error)) (pmetricotlp.ExportResponse, error) {
	if !in.admission.tryAcquire() {
		in.refused(transport, reasonOverloaded)
		return pmetricotlp.ExportResponse{}, &UnavailableError{Reason: reasonOverloaded, RetryAfter: DefaultRetryAfter, Err: errOverloaded}
	}
	defer in.admission.release()

	outcome, err := consume()
	var malformed *MalformedError
	if errors.As(err, &malformed) {
		in.refused(transport, reasonMalformed)
		return pmetricotlp.ExportResponse{}, malformed
	}
	if err != nil {
		u := unavailableFrom(err)
		in.logger.WarnContext(ctx, "refusing OTLP request", "transport", transport, "reason", u.Reason, "error", err)
		in.refused(transport, u.Reason)
		return pmetricotlp.ExportResponse{}, u
	}
	resp := pmetricotlp.NewExportResponse()
	if outcome.RejectedPoints > 0 {
		resp.PartialSuccess().SetRejectedDataPoints(outcome.RejectedPoints)
		resp.PartialSuccess().SetErrorMessage(outcome.Message)
	}
	return resp, nil
}

// refused counts a request a transport could not ingest: it did not decode,
// broke a transport rule, or its answer could not be encoded.
func (in *ingest) refused(transport, reason string) {
	in.metrics.refusedRequests.WithLabelValues(transport, reason).Inc()
}
