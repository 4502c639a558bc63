package convert

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/deltapipeline/deltapipeline/internal/otlpwire"
)

// encodedBatch is round n of a request ReadEncoded reads: delta sums (double
// and int, two writers), a histogram whose buckets change every third round,
// attributes of every kind on every level, an exemplar, and the points the
// pdata path is left with (no recorded value, invalid).
func encodedBatch(n int) pmetric.Metrics {
	start, end := float64(10*n), float64(10*n+10)
	bounds := batchBounds(n)
	req := newRequest().
		deltaSum("tokens", start, end, float64(n+1), withAttr("session.id", "s1"), withAttr("type", "input")).
		deltaIntSum("commits", start, end, int64(n), withAttr("session.id", "s1")).
		deltaHistogram("latency", start, end, histogramSpec{bounds: bounds, counts: []uint64{1, uint64(n), 2}, sum: float64(5 + n), min: 0.5, max: 20}).
		deltaSum("idle", start, end, 0, withAttr("session.id", "s2"), withNoRecordedValue()).
		deltaSum("broken", start, end, math.NaN(), withAttr("session.id", "s3"))
	req.addSum("tokens", true, start+5, end+5, 0.25, withAttr("session.id", "s1"), withAttr("type", "input"))
	rm := req.md.ResourceMetrics().At(0)
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "claude-code")
	res.PutEmptyBytes("raw").FromRaw([]byte{0, 1, 2})
	res.PutDouble("ratio", -0.5)
	req.sm.Scope().SetName("com.anthropic.claude_code")
	req.sm.Scope().SetVersion("2.0.0")
	req.sm.Scope().Attributes().PutStr("", "")
	attrs := req.sm.Metrics().At(0).Sum().DataPoints().At(0).Attributes()
	attrs.PutInt("retries", -3)
	attrs.PutEmptySlice("tags").AppendEmpty().SetStr("x")
	nested := attrs.PutEmptyMap("nested")
	nested.PutBool("ok", true)
	nested.PutEmptyMap("deeper").PutStr("b", "2")
	nested.PutEmpty("nothing")
	ex := req.sm.Metrics().At(1).Sum().DataPoints().At(0).Exemplars().AppendEmpty()
	ex.SetIntValue(7)
	ex.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	ex.FilteredAttributes().PutStr("user", "u")
	// A second resource whose stream is the same as the first's but for it.
	req.md.ResourceMetrics().At(0).CopyTo(req.md.ResourceMetrics().AppendEmpty())
	req.md.ResourceMetrics().At(1).Resource().Attributes().PutStr("service.name", "other")
	return req.md
}

// batchBounds are the histogram's bounds in round n: they change in round 3
// and back in round 6.
func batchBounds(n int) []float64 {
	if n >= 3 && n < 6 {
		return []float64{1, 5}
	}
	return []float64{1, 10}
}

func encode(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	var m pmetric.ProtoMarshaler
	b, err := m.MarshalMetrics(md)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyEncoded is the worker's ingest path: the held streams from the wire,
// the rest through Apply.
func applyEncoded(t testing.TB, e *Engine, encoded []byte) (res Result, restPoints int) {
	t.Helper()
	r, ok := ReadEncoded(encoded)
	if !ok {
		t.Fatalf("ReadEncoded declined a request of delta sums and histograms")
	}
	defer r.Release()
	res, rest := e.ApplyHeld(r)
	if rest != nil {
		var u pmetric.ProtoUnmarshaler
		md, err := u.UnmarshalMetrics(rest)
		if err != nil {
			t.Fatalf("the rest of a request does not decode: %v", err)
		}
		restPoints = md.DataPointCount()
		res.Add(e.Apply(md))
	}
	return res, restPoints
}

func sortedRecords(t testing.TB, e *Engine) [][]byte {
	t.Helper()
	var records [][]byte
	if err := e.MarshalStreams(func(r []byte) error { records = append(records, bytes.Clone(r)); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(records, bytes.Compare)
	return records
}

// checkSameEngines fails unless two engines hold the same streams in the
// same state and emit the same series.
func checkSameEngines(t testing.TB, want, got *Engine) {
	t.Helper()
	if w, g := sortedRecords(t, want), sortedRecords(t, got); !slices.EqualFunc(w, g, bytes.Equal) {
		t.Fatalf("engines differ: %d stream records through Apply, %d from the wire", len(w), len(g))
	}
	now := epoch.Add(time.Hour)
	if w, g := sortedEmitted(t, want, now, true), sortedEmitted(t, got, now, true); !slices.Equal(w, g) {
		t.Fatalf("emitted series differ:\nApply: %v\nwire:  %v", w, g)
	}
}

func TestApplyHeldMatchesApply(t *testing.T) {
	clock := &fakeClock{now: epoch}
	viaPdata, viaWire := newTestEngine(t, withClock(clock)), newTestEngine(t, withClock(clock))
	for n := range 8 {
		for _, redelivery := range []bool{false, true} {
			md := encodedBatch(n)
			encoded := encode(t, md)
			want := viaPdata.Apply(md)
			got, restPoints := applyEncoded(t, viaWire, encoded)
			if got != want {
				t.Fatalf("round %d (redelivery %v): Apply gave %+v, the wire %+v", n, redelivery, want, got)
			}
			// From the second round on only new streams, changed buckets
			// and the pdata path's points are left: per resource the
			// idle and broken points, and in a bucket change the histogram.
			if n > 0 {
				wantRest := 4
				if !redelivery && !slices.Equal(batchBounds(n), batchBounds(n-1)) {
					wantRest = 6
				}
				if restPoints != wantRest {
					t.Fatalf("round %d (redelivery %v): %d points left for the pdata path, want %d", n, redelivery, restPoints, wantRest)
				}
			}
			checkSameEngines(t, viaPdata, viaWire)
			clock.now = clock.now.Add(time.Second)
		}
	}
}

func TestReadEncodedIdentitiesArePdatas(t *testing.T) {
	md := encodedBatch(1)
	r, ok := ReadEncoded(encode(t, md))
	if !ok {
		t.Fatal("ReadEncoded declined")
	}
	defer r.Release()
	var want []hash128
	enc := &encoder{}
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			prefix := streamPrefix{resource: enc.hashAttributes(rm.Resource().Attributes()), scope: enc.hashScope(sm.Scope())}
			for _, m := range sm.Metrics().All() {
				prefix.metric = enc.hashMetric(shapeOf(m))
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						want = append(want, enc.hashStream(prefix, dp.Attributes()))
					}
				case pmetric.MetricTypeHistogram:
					for _, dp := range m.Histogram().DataPoints().All() {
						want = append(want, enc.hashStream(prefix, dp.Attributes()))
					}
				}
			}
		}
	}
	if len(r.points) != len(want) {
		t.Fatalf("read %d points, pdata has %d", len(r.points), len(want))
	}
	for i, p := range r.points {
		if p.key != want[i] {
			t.Fatalf("point %d: identity %x from the wire, %x from pdata", i, p.key, want[i])
		}
	}
	if r.Points() != md.DataPointCount() || r.Metrics() != 12 {
		t.Fatalf("Points %d, Metrics %d; want %d and 12", r.Points(), r.Metrics(), md.DataPointCount())
	}
}

func TestReadEncodedDeclinesWhatItDoesNotRead(t *testing.T) {
	withMetric := func(edit func(m pmetric.Metric)) []byte {
		req := newRequest().deltaSum("tokens", 0, 10, 1)
		edit(req.sm.Metrics().At(0))
		return encode(t, req.md)
	}
	valid := encode(t, newRequest().deltaSum("tokens", 0, 10, 1).md)
	for name, encoded := range map[string][]byte{
		"a gauge":                  withMetric(func(m pmetric.Metric) { m.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(1) }),
		"a cumulative sum":         withMetric(func(m pmetric.Metric) { m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative) }),
		"a metric without data":    withMetric(func(m pmetric.Metric) { pmetric.NewMetric().CopyTo(m); m.SetName("empty") }),
		"an exponential histogram": encode(t, newRequest().deltaExpHistogram("d", 0, 10, expSpec{pos: []uint64{1}}).md),
		"a field it does not read": append(bytes.Clone(valid), 0x50, 0x01), // field 10, varint
		"a truncated field":        valid[:len(valid)-1],
		"a name given twice":       appendToMetric(t, valid, []byte{0x0a, 0x01, 'x'}), // Metric.name again
		"a group":                  append(bytes.Clone(valid), 0x0b),                  // field 1, start group
	} {
		if r, ok := ReadEncoded(encoded); ok {
			r.Release()
			t.Errorf("ReadEncoded read %s", name)
		}
	}
	if r, ok := ReadEncoded(nil); !ok || r.Points() != 0 {
		t.Fatalf("an empty request: ok %v", ok)
	} else {
		r.Release()
	}
}

// appendToMetric appends field bytes to the only metric of a request of one
// resource, one scope and one metric, fixing the lengths above it.
func appendToMetric(t *testing.T, encoded, field []byte) []byte {
	t.Helper()
	var u pmetric.ProtoUnmarshaler
	md, err := u.UnmarshalMetrics(encoded)
	if err != nil {
		t.Fatal(err)
	}
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	one := pmetric.NewMetrics()
	m.CopyTo(one.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty())
	metric := append(metricBody(t, encode(t, one)), field...)
	lenPrefixed := func(field int, body []byte) []byte {
		return append(otlpwire.AppendLenField(nil, field, len(body)), body...)
	}
	return lenPrefixed(fieldRequestResourceMetrics, lenPrefixed(fieldRMScopeMetrics, lenPrefixed(fieldSMMetrics, metric)))
}

func metricBody(t *testing.T, encoded []byte) []byte {
	t.Helper()
	body := encoded
	for _, field := range []int{fieldRequestResourceMetrics, fieldRMScopeMetrics, fieldSMMetrics} {
		found := false
		for b := body; len(b) > 0; {
			f, next, ok := otlpwire.Next(b)
			if !ok {
				t.Fatal("malformed test request")
			}
			if f.Num == field {
				body, found = f.Data, true
				break
			}
			b = next
		}
		if !found {
			t.Fatalf("no field %d", field)
		}
	}
	return body
}

func TestApplyHeldLeavesNewAndMovingStreamsToTheRest(t *testing.T) {
	e := newTestEngine(t)
	first := encode(t, newRequest().deltaSum("tokens", 0, 10, 1, withAttr("session.id", "a")).md)
	r, _ := ReadEncoded(first)
	res, rest := e.ApplyHeld(r)
	if res.Applied != 0 || !bytes.Equal(rest, first) {
		t.Fatalf("a request of new streams: applied %d, rest is the request: %v", res.Applied, bytes.Equal(rest, first))
	}
	r.Release()
	applyEncoded(t, e, first)

	// One known stream and one new one, the known one applied here.
	req := newRequest().
		deltaSum("tokens", 10, 20, 2, withAttr("session.id", "a")).
		deltaSum("tokens", 10, 20, 5, withAttr("session.id", "b"))
	r, _ = ReadEncoded(encode(t, req.md))
	res, rest = e.ApplyHeld(r)
	if res.Applied != 1 {
		t.Fatalf("applied %d points of the known stream, want 1", res.Applied)
	}
	var u pmetric.ProtoUnmarshaler
	md, err := u.UnmarshalMetrics(rest)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if md.DataPointCount() != 1 {
		t.Fatalf("rest holds %d points, want the new stream's 1", md.DataPointCount())
	}
	dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0)
	if v, _ := dp.Attributes().Get("session.id"); v.Str() != "b" || dp.DoubleValue() != 5 {
		t.Fatalf("rest holds session %q value %v, want b and 5", v.Str(), dp.DoubleValue())
	}

	// A stream being handed over is not applied here.
	for i := range e.shards {
		for _, chunk := range e.shards[i].chunks {
			for j := range chunk {
				if chunk[j].key != (hash128{}) {
					chunk[j].flags |= flagMoving
				}
			}
		}
	}
	r, _ = ReadEncoded(encode(t, newRequest().deltaSum("tokens", 20, 30, 2, withAttr("session.id", "a")).md))
	if res, rest := e.ApplyHeld(r); res.Applied != 0 || rest == nil {
		t.Fatalf("a moving stream: applied %d, rest %v", res.Applied, rest != nil)
	}
	r.Release()
}

func TestApplyHeldAllocatesNothingForHeldStreams(t *testing.T) {
	e := newTestEngine(t)
	md := benchRequestOf(200)
	encoded := encode(t, md)
	applyEncoded(t, e, encoded)
	round := 0
	allocs := testing.AllocsPerRun(50, func() {
		round++
		shiftEncodedTimes(encoded, uint64(time.Second))
		r, ok := ReadEncoded(encoded)
		if !ok {
			t.Fatal("declined")
		}
		if res, rest := e.ApplyHeld(r); rest != nil || res.Applied != 200 {
			t.Fatalf("round %d: applied %d, rest %v", round, res.Applied, rest != nil)
		}
		r.Release()
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per request of held streams", allocs)
	}
}

// benchRequestOf is a request of n streams, half sums and half histograms,
// with Claude Code's attributes.
func benchRequestOf(n int) pmetric.Metrics {
	req := newRequest()
	sums := req.sm.Metrics().AppendEmpty()
	sums.SetName("claude_code.token.usage")
	sum := sums.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	hists := req.sm.Metrics().AppendEmpty()
	hists.SetName("claude_code.latency")
	hist := hists.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range n {
		var attrs pcommon.Map
		if i%2 == 0 {
			dp := sum.DataPoints().AppendEmpty()
			dp.SetStartTimestamp(at(0))
			dp.SetTimestamp(at(1))
			dp.SetDoubleValue(float64(i))
			attrs = dp.Attributes()
		} else {
			dp := hist.DataPoints().AppendEmpty()
			dp.SetStartTimestamp(at(0))
			dp.SetTimestamp(at(1))
			dp.ExplicitBounds().FromRaw([]float64{1, 2, 5, 10})
			dp.BucketCounts().FromRaw([]uint64{1, 0, 2, 0, 1})
			dp.SetCount(4)
			dp.SetSum(12)
			attrs = dp.Attributes()
		}
		attrs.PutStr("session.id", "session-"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676%26)))
		attrs.PutStr("user.account_uuid", "0b6f1c3e-7d0a-4d3e-9b1c-2a5f8e9d0c1b")
		attrs.PutStr("terminal.type", "vscode")
		attrs.PutStr("model", "claude-sonnet-4-5")
		attrs.PutStr("type", "input")
	}
	return req.md
}

// shiftEncodedTimes moves every point of an encoded request by d, in place.
func shiftEncodedTimes(encoded []byte, d uint64) {
	r, ok := ReadEncoded(encoded)
	if !ok {
		panic("shiftEncodedTimes: request not readable")
	}
	defer r.Release()
	for _, p := range r.points {
		for b := p.raw; len(b) > 0; {
			f, next, _ := otlpwire.Next(b)
			if (f.Num == fieldNumberStart || f.Num == fieldNumberTime) && f.Type == 1 {
				at := len(b) - len(next) - 8
				v := f.Value + d
				for i := range 8 {
					b[at+i] = byte(v >> (8 * i))
				}
			}
			b = next
		}
	}
}

func FuzzApplyHeld(f *testing.F) {
	for n := range 3 {
		f.Add(encode(f, encodedBatch(n)))
	}
	f.Add(encode(f, benchRequestOf(6)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, ok := ReadEncoded(data)
		if !ok {
			return
		}
		points := r.Points()
		r.Release()
		var u pmetric.ProtoUnmarshaler
		md, err := u.UnmarshalMetrics(data)
		if err != nil {
			t.Fatalf("ReadEncoded read what pdata refuses: %v", err)
		}
		if points != md.DataPointCount() {
			t.Fatalf("ReadEncoded read %d points, pdata %d", points, md.DataPointCount())
		}
		clock := &fakeClock{now: epoch}
		viaPdata, viaWire := newTestEngine(t, withClock(clock)), newTestEngine(t, withClock(clock))
		// The request as received twice (the second time mostly held
		// streams, read from these very bytes), then later intervals.
		for round, shift := range []time.Duration{0, 0, time.Hour, time.Hour} {
			md, _ := u.UnmarshalMetrics(data)
			encoded := data
			if shift != 0 {
				shiftTimes(md, shift)
				encoded = encode(t, md)
			}
			want := viaPdata.Apply(md)
			got, _ := applyEncoded(t, viaWire, encoded)
			if got != want {
				t.Fatalf("round %d: Apply gave %+v, the wire %+v", round, want, got)
			}
			checkSameEngines(t, viaPdata, viaWire)
			clock.now = clock.now.Add(time.Second)
		}
	})
}

func TestReadEncodedLeavesDeeplyNestedValuesToPdata(t *testing.T) {
	nest := func(levels int) []byte {
		req := newRequest().deltaSum("tokens", 0, 10, 1)
		m := req.sm.Metrics().At(0).Sum().DataPoints().At(0).Attributes().PutEmptyMap("deep")
		for range levels - 1 {
			m = m.PutEmptyMap("deeper")
		}
		return encode(t, req.md)
	}
	if r, ok := ReadEncoded(nest(maxEncodedDepth)); !ok {
		t.Fatalf("declined %d levels", maxEncodedDepth)
	} else {
		r.Release()
	}
	if r, ok := ReadEncoded(nest(maxEncodedDepth + 1)); ok {
		r.Release()
		t.Fatalf("read %d levels", maxEncodedDepth+1)
	}
}
