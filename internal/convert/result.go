package convert

import (
	"fmt"
	"strings"
)

// Reason says why points were refused.
type Reason uint8

const (
	// ReasonStreamLimit: the point would start a new stream beyond MaxStreams.
	ReasonStreamLimit Reason = iota
	// ReasonOutOfOrder: the interval overlaps or precedes the last applied
	// one in single-writer mode, or is older than the remembered intervals
	// so that it cannot be told apart from a redelivery.
	ReasonOutOfOrder
	// ReasonInvalid: the point is malformed (for example bucket counts do
	// not match the bounds, the end precedes the start, the value is NaN).
	ReasonInvalid
	NumReasons
)

// String gives a stable snake_case name, used as a metric label value.
func (r Reason) String() string {
	switch r {
	case ReasonStreamLimit:
		return "stream_limit"
	case ReasonOutOfOrder:
		return "out_of_order"
	case ReasonInvalid:
		return "invalid"
	default:
		return fmt.Sprintf("reason_%d", uint8(r))
	}
}

func (r Reason) describe() string {
	switch r {
	case ReasonStreamLimit:
		return "would start a new stream beyond the stream limit"
	case ReasonOutOfOrder:
		return "overlap or precede points already applied to their stream"
	case ReasonInvalid:
		return "are invalid"
	default:
		return r.String()
	}
}

// Result counts what Apply did with each point of a request.
type Result struct {
	// Applied delta points were folded into stream state.
	Applied int
	// Duplicates repeated the interval of a point already applied
	// (redelivery); they are not errors.
	Duplicates int
	// Passthrough points were left in md for the caller to forward.
	Passthrough int
	// Forwarded points belong to streams of other workers; ApplyPlaced
	// moved them into its Forwards.
	Forwarded int
	// NoRecordedValue points carried the no-recorded-value flag; they
	// change no total.
	NoRecordedValue int
	// Rejected counts refused points by reason.
	Rejected [NumReasons]int
	// FirstInvalid describes the first invalid point, for Message.
	FirstInvalid string
}

// RejectedTotal is the number of refused points.
func (r Result) RejectedTotal() int {
	total := 0
	for _, n := range r.Rejected {
		total += n
	}
	return total
}

// Message is a summary for an OTLP partial success response, or "" when no
// point was refused.
func (r Result) Message() string {
	if r.RejectedTotal() == 0 {
		return ""
	}
	var parts []string
	for reason, n := range r.Rejected {
		if n == 0 {
			continue
		}
		part := fmt.Sprintf("%d points %s", n, Reason(reason).describe())
		if Reason(reason) == ReasonInvalid && r.FirstInvalid != "" {
			part += " (first: " + r.FirstInvalid + ")"
		}
		parts = append(parts, part)
	}
	return "delta conversion refused " + strings.Join(parts, "; ")
}

func (r *Result) reject(reason Reason) { r.Rejected[reason]++ }

func (r *Result) rejectInvalid(metric string, err error) {
	r.Rejected[ReasonInvalid]++
	if r.FirstInvalid == "" {
		r.FirstInvalid = fmt.Sprintf("metric %q: %v", metric, err)
	}
}

// EmitResult counts what Emit did.
type EmitResult struct {
	// Points appended to the output.
	Points int
	// Expired streams forgotten for staleness.
	Expired int
}

// Add counts o's points in r as well, for a request applied in parts.
func (r *Result) Add(o Result) {
	r.Applied += o.Applied
	r.Duplicates += o.Duplicates
	r.Passthrough += o.Passthrough
	r.Forwarded += o.Forwarded
	r.NoRecordedValue += o.NoRecordedValue
	for i := range r.Rejected {
		r.Rejected[i] += o.Rejected[i]
	}
	if r.FirstInvalid == "" {
		r.FirstInvalid = o.FirstInvalid
	}
}
