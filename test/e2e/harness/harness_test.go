package harness

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// writeRequest encodes a remote write 1.0 request by field number.
func writeRequest(name string, labels [][2]string, samples ...[2]float64) []byte {
	label := func(n, v string) []byte {
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, n)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		return protowire.AppendString(b, v)
	}
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.BytesType)
	ts = protowire.AppendBytes(ts, label("__name__", name))
	for _, l := range labels {
		ts = protowire.AppendTag(ts, 1, protowire.BytesType)
		ts = protowire.AppendBytes(ts, label(l[0], l[1]))
	}
	for _, s := range samples {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
		sb = protowire.AppendFixed64(sb, math.Float64bits(s[0]))
		sb = protowire.AppendTag(sb, 2, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(int64(s[1])))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, sb)
	}
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, ts)
}

func post(t *testing.T, url string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverStoresEverySampleWithItsWorker(t *testing.T) {
	r, err := StartReceiver(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })

	if code := post(t, r.Endpoint(1), writeRequest("a_total", [][2]string{{"job", "x"}}, [2]float64{1.5, 1000}, [2]float64{2.5, 2000})); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if code := post(t, r.Endpoint(0), []byte{0xff, 0xff}); code != http.StatusBadRequest {
		t.Errorf("undecodable request answered %d, want 400", code)
	}
	key := totals.SeriesKey("a_total", map[string]string{"job": "x"})
	got := r.Series()[key]
	if len(got) != 2 || got[0] != (Sample{TimestampMs: 1000, Value: 1.5, Worker: 1}) || got[1].Value != 2.5 {
		t.Errorf("stored %+v", got)
	}
	if r.LastValues()[key] != 2.5 {
		t.Errorf("last value %v", r.LastValues()[key])
	}
	if s := r.Stats(); s.Refused != 1 || s.SamplesByWorker[1] != 2 || s.RequestsByWorker[0] != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestVerifyFindsEveryKindOfProblem(t *testing.T) {
	sent := totals.Totals{Series: map[string]float64{
		"ok{}": 3, "wrong{}": 5, "missing{}": 1, "reset{}": 4, "late{}": 2, "split{}": 3, "moved{}": 2,
	}}
	received := map[string][]Sample{
		"ok{}":         {{1, 1, 0}, {2, 3, 0}, {2, 3, 0}}, // a redelivered sample is fine
		"wrong{}":      {{1, 4, 0}},
		"reset{}":      {{1, 3, 1}, {2, 1, 1}, {3, 4, 1}},
		"late{}":       {{2, 2, 2}, {1, 1, 2}},
		"split{}":      {{1, 1, 0}, {2, 2, 1}, {3, 3, 0}}, // two writers at once
		"moved{}":      {{1, 1, 0}, {2, 2, 1}},            // handed from worker 0 to 1
		"unexpected{}": {{1, 1, 0}},
	}
	r := Verify(sent, received, 3)
	if r.ExactMatches != 5 { // ok, reset, late, split and moved end at the sent value
		t.Errorf("exact matches %d", r.ExactMatches)
	}
	check := func(what string, got []string, want string) {
		if len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Errorf("%s: %v, want [%s]", what, got, want)
		}
	}
	check("missing", r.Missing, "missing{}")
	check("unexpected", r.Unexpected, "unexpected{}")
	check("decreasing", r.Decreasing, "reset{}")
	check("out of order", r.OutOfOrder, "late{}")
	check("split", r.SplitAcrossWorkers, "split{}")
	check("moved", r.Moved, "moved{}")
	if len(r.Mismatched) != 1 || r.OK() || len(r.Problems()) != 7 {
		t.Errorf("mismatched %v, problems %v", r.Mismatched, r.Problems())
	}
	// Across one rescale a moved series is fine, one that changed writers
	// twice is not; across two (0 to 1 and back) it is.
	if got := r.AllowingMoves(1).Problems(); len(got) != 6 {
		t.Errorf("problems allowing one move: %v", got)
	}
	if got := r.AllowingMoves(2).Problems(); len(got) != 5 {
		t.Errorf("problems allowing two moves: %v", got)
	}
}
