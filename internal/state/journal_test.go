package state_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/convert"
	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/state/wal"
)

// metricKind is one combination of the properties the engine could decide
// on: type, temporality and monotonicity.
type metricKind struct {
	typ         pmetric.MetricType
	temporality pmetric.AggregationTemporality
	monotonic   bool
}

func (k metricKind) name() string {
	return fmt.Sprintf("%s_%s_monotonic_%t", k.typ, k.temporality, k.monotonic)
}

// everyMetricKind lists every type pdata defines, each aggregating type with
// every temporality, and sums both monotonic and not.
func everyMetricKind() []metricKind {
	temporalities := []pmetric.AggregationTemporality{
		pmetric.AggregationTemporalityUnspecified,
		pmetric.AggregationTemporalityDelta,
		pmetric.AggregationTemporalityCumulative,
	}
	var kinds []metricKind
	for typ := pmetric.MetricTypeEmpty; typ <= pmetric.MetricTypeSummary; typ++ {
		switch typ {
		case pmetric.MetricTypeSum:
			for _, tp := range temporalities {
				kinds = append(kinds, metricKind{typ, tp, false}, metricKind{typ, tp, true})
			}
		case pmetric.MetricTypeHistogram, pmetric.MetricTypeExponentialHistogram:
			for _, tp := range temporalities {
				kinds = append(kinds, metricKind{typ: typ, temporality: tp})
			}
		default:
			kinds = append(kinds, metricKind{typ: typ})
		}
	}
	return kinds
}

// appendMetric adds a metric of kind k with one valid point for (1s, 2s].
func appendMetric(ms pmetric.MetricSlice, k metricKind) {
	m := ms.AppendEmpty()
	m.SetName(k.name())
	start := pcommon.NewTimestampFromTime(epoch.Add(time.Second))
	end := pcommon.NewTimestampFromTime(epoch.Add(2 * time.Second))
	number := func(dp pmetric.NumberDataPoint) {
		dp.Attributes().PutStr("session.id", "s-1")
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(end)
		dp.SetDoubleValue(3)
	}
	switch k.typ {
	case pmetric.MetricTypeGauge:
		number(m.SetEmptyGauge().DataPoints().AppendEmpty())
	case pmetric.MetricTypeSum:
		s := m.SetEmptySum()
		s.SetAggregationTemporality(k.temporality)
		s.SetIsMonotonic(k.monotonic)
		number(s.DataPoints().AppendEmpty())
	case pmetric.MetricTypeHistogram:
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(k.temporality)
		dp := h.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("session.id", "s-1")
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(end)
		dp.ExplicitBounds().FromRaw([]float64{1, 10})
		dp.BucketCounts().FromRaw([]uint64{1, 2, 0})
		dp.SetCount(3)
		dp.SetSum(12)
	case pmetric.MetricTypeExponentialHistogram:
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(k.temporality)
		dp := h.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("session.id", "s-1")
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(end)
		dp.SetScale(0)
		dp.Positive().BucketCounts().FromRaw([]uint64{1, 2})
		dp.SetCount(3)
		dp.SetSum(7)
	case pmetric.MetricTypeSummary:
		dp := m.SetEmptySummary().DataPoints().AppendEmpty()
		dp.Attributes().PutStr("session.id", "s-1")
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(end)
		dp.SetCount(2)
		dp.SetSum(3)
	}
}

func requestOf(kinds ...metricKind) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	for _, k := range kinds {
		appendMetric(sm.Metrics(), k)
	}
	return md
}

func metricNames(md pmetric.Metrics) []string {
	var names []string
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				names = append(names, ms.At(k).Name())
			}
		}
	}
	slices.Sort(names)
	return names
}

// convertedNames is what the engine takes out of md into its state: Apply
// removes exactly those metrics and leaves the passthrough.
func convertedNames(e *convert.Engine, md pmetric.Metrics) []string {
	before := metricNames(md)
	e.Apply(md)
	left := metricNames(md)
	return slices.DeleteFunc(before, func(n string) bool { return slices.Contains(left, n) })
}

// journaledNames reads back every metric the write-ahead log in dir holds.
func journaledNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	var unmarshal pmetric.ProtoUnmarshaler
	_, err := wal.Replay(filepath.Join(dir, state.WALDirectory), 0, func(_ uint64, payload []byte) error {
		md, err := unmarshal.UnmarshalMetrics(payload)
		if err != nil {
			return err
		}
		names = append(names, metricNames(md)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func streamRecords(t *testing.T, e *convert.Engine) []string {
	t.Helper()
	var records []string
	if err := e.MarshalStreams(func(r []byte) error { records = append(records, string(r)); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(records)
	return records
}

// TestJournalHoldsExactlyWhatTheEngineConverts drives every metric kind,
// alone and all in one request, through the engine and through the journal
// followed by a crash before the request was applied: the journal must hold
// every metric the engine takes into its state (or an acknowledged point is
// lost by the crash) and nothing the engine passes through (or disk and
// fsync time are spent on data no restore needs), and the restored engine
// must hold exactly what the engine that saw the request holds.
func TestJournalHoldsExactlyWhatTheEngineConverts(t *testing.T) {
	kinds := everyMetricKind()
	cases := map[string][]metricKind{"all kinds in one request": kinds}
	for _, k := range kinds {
		cases[k.name()] = []metricKind{k}
	}
	anyConverted := false
	for name, kinds := range cases {
		t.Run(name, func(t *testing.T) {
			c := &clock{now: epoch.Add(3 * time.Second)}
			reference := newEngine(t, c)
			converted := convertedNames(reference, requestOf(kinds...))
			anyConverted = anyConverted || len(converted) > 0

			dir := t.TempDir()
			w, _ := startWorker(t, dir, c)
			if _, err := w.store.Record(context.Background(), requestOf(kinds...)); err != nil {
				t.Fatal(err)
			}
			w.crash(t) // acknowledged, never applied

			if got := journaledNames(t, dir); !slices.Equal(got, converted) {
				t.Fatalf("journal holds %q, the engine converts %q", got, converted)
			}
			restored, report := startWorker(t, dir, c)
			defer restored.stop(t)
			if want := min(len(converted), 1); report.Replayed != want {
				t.Errorf("replayed %d requests, want %d", report.Replayed, want)
			}
			if got, want := streamRecords(t, restored.engine), streamRecords(t, reference); !slices.Equal(got, want) {
				t.Errorf("after the crash the engine holds %d streams, the engine that saw the request %d", len(got), len(want))
			}
		})
	}
	if !anyConverted {
		t.Fatal("the engine converted none of the kinds: the table tests nothing")
	}
}
