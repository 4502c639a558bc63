// Package receive owns the worker's OTLP servers: OTLP/gRPC and OTLP/HTTP
// (protobuf and JSON, gzip) for metrics, and the self-metrics they count.
// Each transport only decodes and bounds requests and encodes answers, in
// the status codes the OTLP specification defines so that a sender retries
// exactly what is worth retrying. Between the two, one ingest path admits a
// request under a concurrency limit, counts it, hands it to a Consumer and
// builds the partial success.
package receive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// Consumer takes one decoded request. It may modify md.
type Consumer interface {
	Consume(ctx context.Context, md pmetric.Metrics) (Outcome, error)
}

// EncodedConsumer is a Consumer that takes requests which arrived as
// protobuf (OTLP/gRPC, OTLP/HTTP protobuf) undecoded, as the bytes of the
// ExportMetricsServiceRequest (the wire format of a MetricsData message):
// it may read what it needs from them in place and decode only the rest,
// with Decode. encoded is only valid until ConsumeEncoded returns. points is
// the number of data points in the request, counted as received whatever
// the outcome; a request that does not decode is refused with the
// *MalformedError that Decode returns.
type EncodedConsumer interface {
	Consumer
	ConsumeEncoded(ctx context.Context, encoded []byte) (points int, outcome Outcome, err error)
}

// MalformedError refuses a request that does not decode; the sender gets
// InvalidArgument (HTTP 400) and must not retry it.
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string {
	return fmt.Sprintf("decoding OTLP ExportMetricsServiceRequest: %v", e.Err)
}

func (e *MalformedError) Unwrap() error { return e.Err }

// Decode decodes an ExportMetricsServiceRequest, or says why it does not
// decode with a *MalformedError.
func Decode(encoded []byte) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(encoded); err != nil {
		return pmetric.Metrics{}, &MalformedError{Err: err}
	}
	return req.Metrics(), nil
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, md pmetric.Metrics) (Outcome, error)

// Consume calls f.
func (f ConsumerFunc) Consume(ctx context.Context, md pmetric.Metrics) (Outcome, error) {
	return f(ctx, md)
}

// Outcome is what the consumer refused of an accepted request; it becomes
// the OTLP partial success, which senders must not retry.
type Outcome struct {
	RejectedPoints int64
	Message        string
}

// UnavailableError tells the sender to come back later: the request was not
// applied at all, so a retry cannot double count.
type UnavailableError struct {
	// Reason is a stable snake_case word for the refused-requests metric.
	Reason     string
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("temporarily unable to accept metrics (%s): %v", e.Reason, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable builds an UnavailableError.
func Unavailable(reason string, retryAfter time.Duration, err error) error {
	return &UnavailableError{Reason: reason, RetryAfter: retryAfter, Err: err}
}

// DefaultRetryAfter is suggested to senders when nothing better is known.
const DefaultRetryAfter = time.Second

// Transports are the transport label values of the receivers' metrics.
var Transports = []string{transportGRPC, transportHTTP}

// unavailableFrom classifies a consumer error. Every consumer failure is
// treated as temporary: the request was not acknowledged, and dropping it
// here would lose data the sender still holds.
func unavailableFrom(err error) *UnavailableError {
	var u *UnavailableError
	if errors.As(err, &u) {
		if u.RetryAfter <= 0 {
			u.RetryAfter = DefaultRetryAfter
		}
		return u
	}
	return &UnavailableError{Reason: reasonConsumerError, RetryAfter: DefaultRetryAfter, Err: err}
}

// admission bounds the number of requests being consumed at once; a request
// beyond it is refused immediately instead of queueing unboundedly.
type admission struct {
	slots chan struct{}
}

func newAdmission(maxInFlight int) *admission {
	return &admission{slots: make(chan struct{}, maxInFlight)}
}

func (a *admission) tryAcquire() bool {
	select {
	case a.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a *admission) release() { <-a.slots }

var errOverloaded = errors.New("too many requests in flight; retry later")
