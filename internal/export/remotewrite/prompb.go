package remotewrite

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The remote write 1.0 message prometheus.WriteRequest and the parts of it
// this exporter sends. Field numbers follow prometheus/prompb; the encoding is
// written here because the Prometheus client library ships only the 2.0 types.

// WriteRequest is prometheus.WriteRequest.
type WriteRequest struct {
	Timeseries []TimeSeries

	encoded []byte
}

// TimeSeries is prometheus.TimeSeries: labels sorted by name, then either
// float samples or native histograms.
type TimeSeries struct {
	Labels     []Label
	Samples    []Sample
	Histograms []Histogram
}

// Label is prometheus.Label.
type Label struct {
	Name, Value string
}

// Sample is prometheus.Sample; Timestamp is in milliseconds.
type Sample struct {
	Value     float64
	Timestamp int64
}

// Histogram is prometheus.Histogram with integer counts.
type Histogram struct {
	Count          uint64
	Sum            float64
	Schema         int32
	ZeroThreshold  float64
	ZeroCount      uint64
	NegativeSpans  []BucketSpan
	NegativeDeltas []int64
	PositiveSpans  []BucketSpan
	PositiveDeltas []int64
	Timestamp      int64
}

// BucketSpan is prometheus.BucketSpan.
type BucketSpan struct {
	Offset int32
	Length uint32
}

// Field numbers of prompb messages.
const (
	fieldWriteRequestTimeseries = 1

	fieldSeriesLabels     = 1
	fieldSeriesSamples    = 2
	fieldSeriesHistograms = 4

	fieldLabelName  = 1
	fieldLabelValue = 2

	fieldSampleValue     = 1
	fieldSampleTimestamp = 2

	fieldHistogramCountInt      = 1
	fieldHistogramSum           = 3
	fieldHistogramSchema        = 4
	fieldHistogramZeroThreshold = 5
	fieldHistogramZeroCountInt  = 6
	fieldHistogramNegSpans      = 8
	fieldHistogramNegDeltas     = 9
	fieldHistogramPosSpans      = 11
	fieldHistogramPosDeltas     = 12
	fieldHistogramResetHint     = 14
	fieldHistogramTimestamp     = 15

	fieldSpanOffset = 1
	fieldSpanLength = 2
)

// Size and MarshalToSizedBuffer let the Prometheus remote API client encode
// the request without a generated message type.
func (w *WriteRequest) Size() int {
	w.encoded = w.Marshal()
	return len(w.encoded)
}

// MarshalToSizedBuffer writes the encoding at the end of buf, as gogo-style
// marshalers do.
func (w *WriteRequest) MarshalToSizedBuffer(buf []byte) (int, error) {
	if w.encoded == nil {
		w.encoded = w.Marshal()
	}
	if len(buf) < len(w.encoded) {
		return 0, fmt.Errorf("buffer of %d bytes is too small for a %d byte write request", len(buf), len(w.encoded))
	}
	n := copy(buf[len(buf)-len(w.encoded):], w.encoded)
	w.encoded = nil
	return n, nil
}

// Marshal encodes the request as protobuf.
func (w *WriteRequest) Marshal() []byte {
	var out, ts []byte
	for i := range w.Timeseries {
		ts = w.Timeseries[i].appendTo(ts[:0])
		out = protowire.AppendTag(out, fieldWriteRequestTimeseries, protowire.BytesType)
		out = protowire.AppendBytes(out, ts)
	}
	return out
}

func (s *TimeSeries) appendTo(b []byte) []byte {
	var msg []byte
	for _, l := range s.Labels {
		msg = msg[:0]
		msg = appendString(msg, fieldLabelName, l.Name)
		msg = appendString(msg, fieldLabelValue, l.Value)
		b = appendMessage(b, fieldSeriesLabels, msg)
	}
	for _, smp := range s.Samples {
		msg = msg[:0]
		if smp.Value != 0 || math.Signbit(smp.Value) {
			msg = protowire.AppendTag(msg, fieldSampleValue, protowire.Fixed64Type)
			msg = protowire.AppendFixed64(msg, math.Float64bits(smp.Value))
		}
		if smp.Timestamp != 0 {
			msg = protowire.AppendTag(msg, fieldSampleTimestamp, protowire.VarintType)
			msg = protowire.AppendVarint(msg, uint64(smp.Timestamp))
		}
		b = appendMessage(b, fieldSeriesSamples, msg)
	}
	for i := range s.Histograms {
		b = appendMessage(b, fieldSeriesHistograms, s.Histograms[i].appendTo(nil))
	}
	return b
}

func (h *Histogram) appendTo(b []byte) []byte {
	// count_int and zero_count_int are oneof members: written even when zero
	// so the receiver knows the histogram has integer counts.
	b = protowire.AppendTag(b, fieldHistogramCountInt, protowire.VarintType)
	b = protowire.AppendVarint(b, h.Count)
	b = protowire.AppendTag(b, fieldHistogramSum, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.Sum))
	b = protowire.AppendTag(b, fieldHistogramSchema, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(h.Schema)))
	b = protowire.AppendTag(b, fieldHistogramZeroThreshold, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.ZeroThreshold))
	b = protowire.AppendTag(b, fieldHistogramZeroCountInt, protowire.VarintType)
	b = protowire.AppendVarint(b, h.ZeroCount)
	b = appendSpans(b, fieldHistogramNegSpans, h.NegativeSpans)
	b = appendDeltas(b, fieldHistogramNegDeltas, h.NegativeDeltas)
	b = appendSpans(b, fieldHistogramPosSpans, h.PositiveSpans)
	b = appendDeltas(b, fieldHistogramPosDeltas, h.PositiveDeltas)
	// reset_hint NO: the converter's output is cumulative and never resets
	// within a stream's life.
	b = protowire.AppendTag(b, fieldHistogramResetHint, protowire.VarintType)
	b = protowire.AppendVarint(b, 2)
	b = protowire.AppendTag(b, fieldHistogramTimestamp, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(h.Timestamp))
	return b
}

func appendSpans(b []byte, field protowire.Number, spans []BucketSpan) []byte {
	for _, s := range spans {
		var msg []byte
		msg = protowire.AppendTag(msg, fieldSpanOffset, protowire.VarintType)
		msg = protowire.AppendVarint(msg, protowire.EncodeZigZag(int64(s.Offset)))
		msg = protowire.AppendTag(msg, fieldSpanLength, protowire.VarintType)
		msg = protowire.AppendVarint(msg, uint64(s.Length))
		b = appendMessage(b, field, msg)
	}
	return b
}

func appendDeltas(b []byte, field protowire.Number, deltas []int64) []byte {
	if len(deltas) == 0 {
		return b
	}
	var packed []byte
	for _, d := range deltas {
		packed = protowire.AppendVarint(packed, protowire.EncodeZigZag(d))
	}
	return appendMessage(b, field, packed)
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, field protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// DecodeWriteRequest parses a protobuf prometheus.WriteRequest (not
// compressed). Receivers in tests and tools use it to check what was sent.
func DecodeWriteRequest(b []byte) (WriteRequest, error) {
	var w WriteRequest
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldWriteRequestTimeseries || typ != protowire.BytesType {
			return nil
		}
		ts, err := decodeSeries(v)
		if err != nil {
			return fmt.Errorf("time series %d: %w", len(w.Timeseries), err)
		}
		w.Timeseries = append(w.Timeseries, ts)
		return nil
	})
	return w, err
}

func decodeSeries(b []byte) (TimeSeries, error) {
	var ts TimeSeries
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fieldSeriesLabels && typ == protowire.BytesType:
			var l Label
			err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch num {
				case fieldLabelName:
					l.Name = string(v)
				case fieldLabelValue:
					l.Value = string(v)
				}
				return nil
			})
			ts.Labels = append(ts.Labels, l)
			return err
		case num == fieldSeriesSamples && typ == protowire.BytesType:
			var s Sample
			err := eachField(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				switch num {
				case fieldSampleValue:
					s.Value = math.Float64frombits(n)
				case fieldSampleTimestamp:
					s.Timestamp = int64(n)
				}
				return nil
			})
			ts.Samples = append(ts.Samples, s)
			return err
		case num == fieldSeriesHistograms && typ == protowire.BytesType:
			h, err := decodeHistogram(v)
			ts.Histograms = append(ts.Histograms, h)
			return err
		}
		return nil
	})
	return ts, err
}

func decodeHistogram(b []byte) (Histogram, error) {
	var h Histogram
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch num {
		case fieldHistogramCountInt:
			h.Count = n
		case fieldHistogramSum:
			h.Sum = math.Float64frombits(n)
		case fieldHistogramSchema:
			h.Schema = int32(protowire.DecodeZigZag(n))
		case fieldHistogramZeroThreshold:
			h.ZeroThreshold = math.Float64frombits(n)
		case fieldHistogramZeroCountInt:
			h.ZeroCount = n
		case fieldHistogramTimestamp:
			h.Timestamp = int64(n)
		case fieldHistogramNegSpans, fieldHistogramPosSpans:
			var s BucketSpan
			if err := eachField(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				switch num {
				case fieldSpanOffset:
					s.Offset = int32(protowire.DecodeZigZag(n))
				case fieldSpanLength:
					s.Length = uint32(n)
				}
				return nil
			}); err != nil {
				return err
			}
			if num == fieldHistogramNegSpans {
				h.NegativeSpans = append(h.NegativeSpans, s)
			} else {
				h.PositiveSpans = append(h.PositiveSpans, s)
			}
		case fieldHistogramNegDeltas, fieldHistogramPosDeltas:
			if typ != protowire.BytesType {
				return errors.New("histogram deltas are not packed")
			}
			for len(v) > 0 {
				d, l := protowire.ConsumeVarint(v)
				if l < 0 {
					return protowire.ParseError(l)
				}
				v = v[l:]
				if num == fieldHistogramNegDeltas {
					h.NegativeDeltas = append(h.NegativeDeltas, protowire.DecodeZigZag(d))
				} else {
					h.PositiveDeltas = append(h.PositiveDeltas, protowire.DecodeZigZag(d))
				}
			}
		}
		return nil
	})
	return h, err
}

// eachField walks the fields of one message, giving bytes for length-delimited
// fields and the number for varint and fixed fields.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			n, l = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var n32 uint32
			n32, l = protowire.ConsumeFixed32(b)
			n = uint64(n32)
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}
