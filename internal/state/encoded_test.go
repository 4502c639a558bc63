package state

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/deltapipeline/deltapipeline/internal/state/wal"
)

// A request the engine converts all of is journaled as the bytes it arrived
// in; one with other data is journaled as its converted part, re-encoded,
// since its bytes as received hold more than the engine keeps state for.
func TestEncodedRequestIsJournaledAsReceivedWhenAllOfItIsConverted(t *testing.T) {
	f := newFixture(t)
	s, engine, _ := f.open(t)

	delta := deltaRequest(1, 2, "a", "b")
	received, err := pmetricotlp.NewExportRequestFromMetrics(delta).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	done, err := s.RecordEncoded(context.Background(), delta, received)
	if err != nil {
		t.Fatal(err)
	}
	engine.apply(delta)
	done()

	mixed := deltaRequest(2, 3, "a")
	gauge := mixed.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	gauge.SetName("process.memory")
	gauge.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(5)
	mixedBytes, err := pmetricotlp.NewExportRequestFromMetrics(mixed).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	done, err = s.RecordEncoded(context.Background(), mixed, mixedBytes)
	if err != nil {
		t.Fatal(err)
	}
	engine.apply(mixed)
	done()
	crash(t, s)

	var records [][]byte
	if _, err := wal.Replay(filepath.Join(f.dir, WALDirectory), 0, func(_ uint64, p []byte) error {
		records = append(records, bytes.Clone(p))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 {
		t.Fatalf("%d records journaled, want 2", len(records))
	}
	if !bytes.Equal(records[0], received) {
		t.Error("a request converted in full was not journaled as the bytes received")
	}
	var unmarshal pmetric.ProtoUnmarshaler
	md, err := unmarshal.UnmarshalMetrics(records[1])
	if err != nil {
		t.Fatal(err)
	}
	if md.MetricCount() != 1 || md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Name() != "claude_code.token.usage" {
		t.Errorf("the mixed request's record holds %d metrics, want only the delta one", md.MetricCount())
	}

	// The bytes as received replay like the request they encode.
	s2, engine2, report := f.open(t)
	defer s2.Close(context.Background(), nil)
	if report.Replayed != 2 {
		t.Errorf("replayed %d records, want 2", report.Replayed)
	}
	sameTotals(t, engine2.snapshot(), engine.snapshot())
}
