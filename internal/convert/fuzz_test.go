package convert

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// shiftTimes moves every delta point of md by d, turning a redelivery into
// a new interval.
func shiftTimes(md pmetric.Metrics, d time.Duration) {
	shift := func(ts pcommon.Timestamp) pcommon.Timestamp { return ts + pcommon.Timestamp(d) }
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						dp.SetStartTimestamp(shift(dp.StartTimestamp()))
						dp.SetTimestamp(shift(dp.Timestamp()))
					}
				case pmetric.MetricTypeHistogram:
					for _, dp := range m.Histogram().DataPoints().All() {
						dp.SetStartTimestamp(shift(dp.StartTimestamp()))
						dp.SetTimestamp(shift(dp.Timestamp()))
					}
				case pmetric.MetricTypeExponentialHistogram:
					for _, dp := range m.ExponentialHistogram().DataPoints().All() {
						dp.SetStartTimestamp(shift(dp.StartTimestamp()))
						dp.SetTimestamp(shift(dp.Timestamp()))
					}
				}
			}
		}
	}
}

// monotonicTotals remembers the last emitted value of every monotonic
// cumulative sum series, keyed by full identity and start time.
type monotonicTotals map[string]float64

func (seen monotonicTotals) check(t *testing.T, out pmetric.Metrics) {
	t.Helper()
	for _, rm := range out.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Type() != pmetric.MetricTypeSum {
					continue
				}
				for _, dp := range m.Sum().DataPoints().All() {
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					if math.IsNaN(v) {
						t.Fatalf("metric %q emitted NaN", m.Name())
					}
					if !m.Sum().IsMonotonic() {
						continue
					}
					key := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%d", attrString(rm.Resource().Attributes()),
						sm.Scope().Name(), sm.Scope().Version(), attrString(sm.Scope().Attributes()),
						m.Name(), m.Unit(), attrString(dp.Attributes()), dp.StartTimestamp())
					if prev, ok := seen[key]; ok && v < prev {
						t.Fatalf("monotonic series %s went from %v down to %v", key, prev, v)
					}
					seen[key] = v
				}
			}
		}
	}
}

func addApplySeeds(f *testing.F) {
	var marshaler pmetric.ProtoMarshaler
	for n := range 3 {
		b, err := marshaler.MarshalMetrics(mixedBatch(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzApply(f *testing.F) {
	addApplySeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var unmarshaler pmetric.ProtoUnmarshaler
		if _, err := unmarshaler.UnmarshalMetrics(data); err != nil {
			return
		}
		e := newTestEngine(t)
		seen := monotonicTotals{}
		now := epoch.Add(time.Hour)
		// The request, its redelivery, a later copy, and the same again.
		for round, shift := range []time.Duration{0, 0, time.Hour, time.Hour, 3 * time.Hour} {
			md, _ := unmarshaler.UnmarshalMetrics(data)
			shiftTimes(md, shift)
			res := e.Apply(md)
			if res.RejectedTotal() > 0 && res.Message() == "" {
				t.Fatalf("round %d: %d refused points without a message", round, res.RejectedTotal())
			}
			out := pmetric.NewMetrics()
			e.Emit(now, out)
			seen.check(t, out)
		}
		var records int
		if err := e.MarshalStreams(func([]byte) error { records++; return nil }); err != nil || records != e.Streams() {
			t.Fatalf("marshalling %d streams gave %d records: %v", e.Streams(), records, err)
		}
	})
}

func FuzzRestoreStream(f *testing.F) {
	src := newTestEngine(f)
	src.Apply(mixedBatch(0))
	src.Apply(mixedBatch(1))
	if err := src.MarshalStreams(func(r []byte) error {
		f.Add(bytes.Clone(r))
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, record []byte) {
		e := newTestEngine(t)
		if err := e.RestoreStream(record); err != nil {
			if e.Streams() != 0 {
				t.Fatalf("a refused record left %d streams", e.Streams())
			}
			return
		}
		// A restored stream keeps working and encodes to a record that
		// restores to the same record.
		var first []byte
		if err := e.MarshalStreams(func(r []byte) error { first = bytes.Clone(r); return nil }); err != nil {
			t.Fatal(err)
		}
		again := newTestEngine(t)
		if err := again.RestoreStream(first); err != nil {
			t.Fatalf("re-encoded record refused: %v", err)
		}
		var second []byte
		if err := again.MarshalStreams(func(r []byte) error { second = bytes.Clone(r); return nil }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("record changed across a restore:\n%x\n%x", first, second)
		}
		e.Apply(mixedBatch(7))
		e.EmitAll(epoch.Add(time.Hour), pmetric.NewMetrics())
	})
}
