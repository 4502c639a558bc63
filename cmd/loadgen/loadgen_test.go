package main

import (
	"context"
	"io"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// otlpSink is a real OTLP/gRPC metrics server that adds up every delta it
// receives, independently of the generator's own ledger.
type otlpSink struct {
	pmetricotlp.UnimplementedGRPCServer

	mu             sync.Mutex
	points         int
	sumByMetric    map[string]float64
	histCountTotal uint64
	sessionStarts  map[string]float64 // session.id/start_type -> claude_code.session.count received
	nonDelta       []string
	notDouble      []string
	units          map[string]string
	scopes         map[string]bool
	resources      map[string]bool
	// metricsBySession records which metrics each session.id was seen on.
	metricsBySession map[string]map[string]bool
	// maxSessionsPerRequest is the most session ids one request carried;
	// every request comes from one writer.
	maxSessionsPerRequest  int
	zeroPoints             int
	attrTypes              map[string]pcommon.ValueType
	withAccount, noAccount int
	// refuseFirst answers that many requests UNAVAILABLE (retryable) first.
	refuseFirst int
	refused     int
}

func (s *otlpSink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused < s.refuseFirst {
		s.refused++
		return pmetricotlp.NewExportResponse(), status.Error(codes.Unavailable, "refusing, as a gateway that is shutting down does")
	}
	rms := req.Metrics().ResourceMetrics()
	sessions := map[string]bool{}
	for i := range rms.Len() {
		rm := rms.At(i)
		s.resources[attrString(rm.Resource().Attributes())] = true
		for j := range rm.ScopeMetrics().Len() {
			sm := rm.ScopeMetrics().At(j)
			s.scopes[sm.Scope().Name()] = true
			for k := range sm.Metrics().Len() {
				s.add(sm.Metrics().At(k), sessions)
			}
		}
	}
	s.maxSessionsPerRequest = max(s.maxSessionsPerRequest, len(sessions))
	return pmetricotlp.NewExportResponse(), nil
}

// observe records the attributes of one point of metric name.
func (s *otlpSink) observe(name string, attrs pcommon.Map, sessions map[string]bool) {
	for k, v := range attrs.All() {
		s.attrTypes[k] = v.Type()
	}
	if _, ok := attrs.Get("user.email"); ok {
		s.withAccount++
	} else {
		s.noAccount++
	}
	id, _ := attrs.Get("session.id")
	sessions[id.Str()] = true
	if s.metricsBySession[id.Str()] == nil {
		s.metricsBySession[id.Str()] = map[string]bool{}
	}
	s.metricsBySession[id.Str()][name] = true
}

func (s *otlpSink) add(m pmetric.Metric, sessions map[string]bool) {
	s.units[m.Name()] = m.Unit()
	switch m.Type() {
	case pmetric.MetricTypeSum:
		if m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityDelta || !m.Sum().IsMonotonic() {
			s.nonDelta = append(s.nonDelta, m.Name())
		}
		for i := range m.Sum().DataPoints().Len() {
			dp := m.Sum().DataPoints().At(i)
			if dp.ValueType() != pmetric.NumberDataPointValueTypeDouble {
				s.notDouble = append(s.notDouble, m.Name())
			}
			v := dp.DoubleValue()
			if v == 0 {
				s.zeroPoints++
			}
			s.sumByMetric[m.Name()] += v
			s.points++
			s.observe(m.Name(), dp.Attributes(), sessions)
			if m.Name() == "claude_code.session.count" {
				id, _ := dp.Attributes().Get("session.id")
				startType, _ := dp.Attributes().Get("start_type")
				s.sessionStarts[id.Str()+"/"+startType.Str()] += v
			}
		}
	case pmetric.MetricTypeHistogram:
		if m.Histogram().AggregationTemporality() != pmetric.AggregationTemporalityDelta {
			s.nonDelta = append(s.nonDelta, m.Name())
		}
		for i := range m.Histogram().DataPoints().Len() {
			dp := m.Histogram().DataPoints().At(i)
			s.observe(m.Name(), dp.Attributes(), sessions)
			s.sumByMetric[m.Name()] += dp.Sum()
			s.histCountTotal += dp.Count()
			s.points++
		}
	default:
		s.nonDelta = append(s.nonDelta, m.Name()+" ("+m.Type().String()+")")
	}
}

func attrString(m pcommon.Map) string {
	var parts []string
	for k, v := range m.All() {
		parts = append(parts, k+"="+v.AsString())
	}
	return strings.Join(parts, ",")
}

func startSink(t *testing.T) (*otlpSink, string) {
	t.Helper()
	sink := &otlpSink{
		sumByMetric:      map[string]float64{},
		sessionStarts:    map[string]float64{},
		units:            map[string]string{},
		scopes:           map[string]bool{},
		resources:        map[string]bool{},
		metricsBySession: map[string]map[string]bool{},
		attrTypes:        map[string]pcommon.ValueType{},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(srv, sink)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return sink, lis.Addr().String()
}

func TestTotalsEqualWhatTheServerReceived(t *testing.T) {
	sink, addr := startSink(t)
	cfg, err := parseFlags([]string{
		"--endpoint", addr, "--sessions", "6", "--shared-sessions", "2",
		"--rounds", "4", "--export-interval", "100ms", "--seed", "7",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.nonDelta) > 0 {
		t.Errorf("metrics not sent as delta sums or histograms: %v", sink.nonDelta)
	}
	if int64(sink.points) != sent.Points {
		t.Errorf("server received %d points, totals say %d", sink.points, sent.Points)
	}
	if sent.Writers != 8 || sent.Sessions != 6 || sent.SharedSessions != 2 || len(sent.SharedSessionIDs) != 2 {
		t.Errorf("run description: writers %d sessions %d shared %d ids %v", sent.Writers, sent.Sessions, sent.SharedSessions, sent.SharedSessionIDs)
	}
	if !sink.scopes["com.anthropic.claude_code"] || len(sink.scopes) != 1 {
		t.Errorf("scopes %v, want only com.anthropic.claude_code", sink.scopes)
	}
	if len(sink.resources) != 1 {
		t.Errorf("every client must report the same resource, got %v", sink.resources)
	}
	for res := range sink.resources {
		for _, want := range []string{"service.name=claude-code", "service.version=2.1.332", "os.type=linux", "os.version=", "host.arch=amd64"} {
			if !strings.Contains(res, want) {
				t.Errorf("resource %q lacks %s", res, want)
			}
		}
		if strings.Contains(res, "service.instance.id") {
			t.Errorf("resource %q has service.instance.id; the client sends none", res)
		}
	}
	if len(sink.notDouble) > 0 {
		t.Errorf("sums not sent as doubles: %v", sink.notDouble)
	}
	for name, want := range map[string]string{
		"claude_code.session.count": "", "claude_code.token.usage": "tokens", "claude_code.cost.usage": "USD",
		"claude_code.active_time.total": "s", "claude_code.lines_of_code.count": "",
		"claude_code.code_edit_tool.decision": "", "claude_code.commit.count": "", "claude_code.pull_request.count": "",
	} {
		if got, ok := sink.units[name]; !ok || got != want {
			t.Errorf("%s: unit %q (sent: %v), want %q", name, got, ok, want)
		}
	}
	for key, want := range map[string]pcommon.ValueType{
		"user.id": pcommon.ValueTypeStr, "session.id": pcommon.ValueTypeStr, "anthropic.provider": pcommon.ValueTypeStr,
		"anthropic.custom_base_url": pcommon.ValueTypeBool, "terminal.type": pcommon.ValueTypeStr,
		"user.account_uuid": pcommon.ValueTypeStr, "organization.id": pcommon.ValueTypeStr, "user.email": pcommon.ValueTypeStr,
	} {
		if got, ok := sink.attrTypes[key]; !ok || got != want {
			t.Errorf("point attribute %s: type %v (sent: %v), want %v", key, got, ok, want)
		}
	}
	if sink.withAccount == 0 || sink.noAccount == 0 {
		t.Errorf("points with account attributes %d, without %d: want both OAuth and API-key users", sink.withAccount, sink.noAccount)
	}
	if sink.zeroPoints == 0 {
		t.Error("no 0-valued point was sent; the client sends one for lines removed")
	}

	// The Prometheus names are the documented ones; each metric's total in
	// the ledger equals what the server added up.
	byMetric := sent.ByMetric()
	for otlpName, promName := range map[string]string{
		"claude_code.session.count":           "claude_code_session_count_total",
		"claude_code.token.usage":             "claude_code_token_usage_tokens_total",
		"claude_code.cost.usage":              "claude_code_cost_usage_USD_total",
		"claude_code.active_time.total":       "claude_code_active_time_seconds_total",
		"claude_code.lines_of_code.count":     "claude_code_lines_of_code_count_total",
		"claude_code.code_edit_tool.decision": "claude_code_code_edit_tool_decision_total",
		"loadgen.request.duration":            "loadgen_request_duration_milliseconds_sum",
	} {
		if sink.sumByMetric[otlpName] == 0 {
			t.Errorf("server received nothing for %s", otlpName)
		}
		if got := byMetric[promName]; got != sink.sumByMetric[otlpName] {
			t.Errorf("%s: totals %v, server received %v (%s)", promName, got, sink.sumByMetric[otlpName], otlpName)
		}
	}
	if got := byMetric["loadgen_request_duration_milliseconds_count"]; got != float64(sink.histCountTotal) {
		t.Errorf("histogram count: totals %v, server received %d", got, sink.histCountTotal)
	}
	// Sessions started: one per writer, the second writer of a shared
	// session included.
	if got := byMetric["claude_code_session_count_total"]; got != 8 {
		t.Errorf("claude_code_session_count_total = %v, want 8 (one per writer)", got)
	}
	// Every writer counts its start once. The second writer of a shared
	// session resumes it (same session.id, start_type=resume); session 3
	// is continued: its process counts its start under a new id and writes
	// everything else under the continued session's id.
	wantStarts := map[string]float64{}
	for i := range 6 {
		s := newSession(7, i)
		id, startType := s.start(0)
		wantStarts[id+"/"+startType] = 1
		if i < 2 {
			id, startType = s.start(1)
			wantStarts[id+"/"+startType] = 1
		}
	}
	if !maps.Equal(sink.sessionStarts, wantStarts) {
		t.Errorf("session.count streams %v, want %v", sink.sessionStarts, wantStarts)
	}
	continued := newSession(7, 3)
	if continued.continueID == "" {
		t.Fatalf("session 3 is not continued: %+v", continued)
	}
	if got := sink.metricsBySession[continued.continueID]; len(got) != 1 || !got["claude_code.session.count"] {
		t.Errorf("the continuing process's new session id carries %v, want only claude_code.session.count", got)
	}
	if got := sink.metricsBySession[continued.id]; !got["claude_code.token.usage"] || got["claude_code.session.count"] {
		t.Errorf("the continued session id carries %v, want its tokens and no start of its own", got)
	}
	if sink.maxSessionsPerRequest < 2 {
		t.Errorf("no request carried two session ids; a continuing process writes two")
	}
	for id := range sink.metricsBySession {
		if id == "" {
			t.Error("a point without session.id")
		}
	}
}

func TestSameSeedSendsTheSameTotals(t *testing.T) {
	_, addr := startSink(t)
	runOnce := func() totals.Totals {
		cfg, err := parseFlags([]string{"--endpoint", addr, "--sessions", "3", "--rounds", "2", "--export-interval", "50ms", "--seed", "42"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		sent, err := run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return sent
	}
	a, b := runOnce(), runOnce()
	if len(a.Series) == 0 || len(a.Series) != len(b.Series) {
		t.Fatalf("series counts %d and %d", len(a.Series), len(b.Series))
	}
	for k, v := range a.Series {
		if b.Series[k] != v {
			t.Errorf("%s: %v then %v", k, v, b.Series[k])
		}
	}
}

// TestNoRetryLosesARefusedExport plays a client that never retries, as the
// Claude Code CLI: a refused export is counted as failed and its points are
// not in the totals, while the default client retries and delivers them.
func TestNoRetryLosesARefusedExport(t *testing.T) {
	for _, noRetry := range []bool{false, true} {
		sink, addr := startSink(t)
		sink.refuseFirst = 1
		args := []string{"--endpoint", addr, "--sessions", "1", "--rounds", "2", "--export-interval", "50ms", "--connections", "1"}
		if noRetry {
			args = append(args, "--no-retry")
		}
		cfg, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		sent, err := run(context.Background(), cfg, io.Discard)
		sink.mu.Lock()
		received := sink.points
		sink.mu.Unlock()
		if noRetry {
			if err == nil || sent.FailedExports != 1 || sent.FailedPoints == 0 {
				t.Errorf("--no-retry: error %v, failed exports %d (%d points); want the refused export counted as failed", err, sent.FailedExports, sent.FailedPoints)
			}
		} else if err != nil || sent.FailedExports != 0 {
			t.Errorf("with retries: error %v, failed exports %d; want the refused export retried", err, sent.FailedExports)
		}
		if int64(received) != sent.Points {
			t.Errorf("no-retry=%v: the sink received %d points, the totals count %d acknowledged", noRetry, received, sent.Points)
		}
	}
}

func TestUnreachableEndpointIsReportedNotCounted(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens there any more
	cfg, err := parseFlags([]string{"--endpoint", addr, "--sessions", "1", "--rounds", "1",
		"--export-interval", "50ms", "--export-timeout", "300ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := run(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("run error = %v, want exports not acknowledged", err)
	}
	if sent.FailedExports == 0 || sent.Points != 0 || len(sent.Series) != 0 {
		t.Errorf("failed exports %d, points %d, series %d: failed data must not count as sent", sent.FailedExports, sent.Points, len(sent.Series))
	}
}

func TestFlagErrorsNameTheFlag(t *testing.T) {
	for args, want := range map[string]string{
		"--sessions 0":                      "--sessions",
		"--sessions 2 --shared-sessions 3":  "--shared-sessions",
		"--export-interval 0s":              "--export-interval",
		"--endpoint ,":                      "--endpoint",
		"--connections 0":                   "--connections",
		"--rounds -1":                       "--rounds",
		"--sessions 1 --export-timeout -1s": "--export-timeout",
	} {
		_, err := parseFlags(strings.Fields(args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", args, err, want)
		}
	}
}

func TestTotalsFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "totals.json")
	in := totals.Totals{Series: map[string]float64{
		totals.SeriesKey("a_total", map[string]string{"z": "1", "b": `quo"te`}): 2.5,
	}, Points: 3, Streams: 1, SharedSessionIDs: []string{"s"}}
	if err := totals.Write(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := totals.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.Series[`a_total{b="quo\"te",z="1"}`] != 2.5 || out.Points != 3 || out.SharedSessionIDs[0] != "s" {
		t.Errorf("round trip: %+v", out)
	}
	merged := out.Merge(out)
	if merged.Series[`a_total{b="quo\"te",z="1"}`] != 5 || merged.Points != 6 {
		t.Errorf("merge: %+v", merged)
	}
	if _, err := totals.Read(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("reading a missing file succeeded")
	}
}
