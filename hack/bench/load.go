package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/deltapipeline/deltapipeline/internal/otlpraw"
)

// Placeholder timestamps written into every template point; their fixed64
// encodings are found in the marshalled bytes and overwritten per send, so
// the generator spends no CPU on encoding while the receiver still sees a
// new interval for every stream on every round.
const (
	placeholderStart uint64 = 0x0badc0ffee0ddf00
	placeholderEnd   uint64 = 0x0badc0ffee0ddf01
)

// dataClock places the generator's rounds in data time: round r is the
// interval [start+r*step, start+(r+1)*step) of every stream.
type dataClock struct {
	start time.Time
	step  time.Duration
}

// interval is round r's (start, end] in Unix ns.
func (c dataClock) interval(r int) (start, end uint64) {
	s := c.start.Add(time.Duration(r) * c.step)
	return uint64(s.UnixNano()), uint64(s.Add(c.step).UnixNano())
}

// mix says which kinds of points a template carries.
type mix int

const (
	// mixSumsAndHistograms splits each request between delta monotonic sums
	// and delta explicit-bucket histograms.
	mixSumsAndHistograms mix = iota
	// mixSums carries delta monotonic sums only.
	mixSums
	// mixHistograms carries delta explicit-bucket histograms of 16 buckets
	// only (Claude Code's and most SDKs' duration histograms).
	mixHistograms
	// mixExpHistograms carries delta exponential histograms of 160 buckets
	// only (the SDKs' default maximum size, filled).
	mixExpHistograms
)

func (m mix) String() string {
	switch m {
	case mixSumsAndHistograms:
		return "sums+histograms"
	case mixSums:
		return "sum"
	case mixHistograms:
		return "histogram/16"
	case mixExpHistograms:
		return "exp-histogram/160"
	}
	return fmt.Sprintf("mix(%d)", int(m))
}

// expHistogramBuckets is the SDKs' default maximum size of an exponential
// histogram, filled on the positive side.
const expHistogramBuckets = 160

// template is one pre-encoded ExportMetricsServiceRequest for a fixed set
// of streams, with the offsets of every point's timestamps.
type template struct {
	body   []byte
	starts []int
	ends   []int
	points int
}

// setRound rewrites every point's interval to round r of clock.
func (t *template) setRound(clock dataClock, r int) {
	start, end := clock.interval(r)
	for _, off := range t.starts {
		binary.LittleEndian.PutUint64(t.body[off:], start)
	}
	for _, off := range t.ends {
		binary.LittleEndian.PutUint64(t.body[off:], end)
	}
}

var (
	tokenTypes = []string{"input", "output", "cacheRead", "cacheCreation"}
	models     = []string{"claude-opus-4", "claude-sonnet-4"}
)

// streamsPerSession is how many token-usage streams one Claude Code session
// writes: one per token type and model.
const streamsPerSession = 8

func fillAttributes(attrs pcommon.Map, stream int) {
	session := stream / streamsPerSession
	attrs.EnsureCapacity(5)
	attrs.PutStr("session.id", fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", session, session%0xffff, session%0xfff, (session*7)%0xfff, session*2654435761))
	attrs.PutStr("user.account_uuid", fmt.Sprintf("%08x-0000-4000-a000-%012x", session/4, session/4))
	attrs.PutStr("terminal.type", "iTerm.app")
	attrs.PutStr("type", tokenTypes[stream%len(tokenTypes)])
	attrs.PutStr("model", models[(stream/len(tokenTypes))%len(models)])
}

// buildTemplate encodes streams [first, first+count) into one request.
func buildTemplate(first, count int, kind mix) (*template, error) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "claude-code")
	rm.Resource().Attributes().PutStr("service.version", "2.0.14")
	rm.Resource().Attributes().PutStr("os.type", "linux")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("com.anthropic.claude_code")
	sm.Scope().SetVersion("2.0.14")

	sums := count
	switch kind {
	case mixSumsAndHistograms:
		sums = count / 2
	case mixHistograms, mixExpHistograms:
		sums = 0
	}
	if sums > 0 {
		m := sm.Metrics().AppendEmpty()
		m.SetName("claude_code.token.usage")
		m.SetUnit("tokens")
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		s.DataPoints().EnsureCapacity(sums)
		for n := first; n < first+sums; n++ {
			dp := s.DataPoints().AppendEmpty()
			fillAttributes(dp.Attributes(), n)
			dp.SetStartTimestamp(pcommon.Timestamp(placeholderStart))
			dp.SetTimestamp(pcommon.Timestamp(placeholderEnd))
			dp.SetIntValue(int64(100 + n%50))
		}
	}
	if kind == mixExpHistograms {
		m := sm.Metrics().AppendEmpty()
		m.SetName("http.server.request.duration")
		m.SetUnit("s")
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		h.DataPoints().EnsureCapacity(count)
		buckets := make([]uint64, expHistogramBuckets)
		for i := range buckets {
			buckets[i] = uint64(1 + i%3)
		}
		for n := first; n < first+count; n++ {
			dp := h.DataPoints().AppendEmpty()
			fillAttributes(dp.Attributes(), n)
			dp.SetStartTimestamp(pcommon.Timestamp(placeholderStart))
			dp.SetTimestamp(pcommon.Timestamp(placeholderEnd))
			dp.SetScale(3)
			dp.Positive().SetOffset(-40)
			dp.Positive().BucketCounts().FromRaw(buckets)
			dp.SetZeroCount(1)
			var total uint64 = 1
			for _, b := range buckets {
				total += b
			}
			dp.SetCount(total)
			dp.SetSum(1234.5)
		}
	} else if histograms := count - sums; histograms > 0 {
		m := sm.Metrics().AppendEmpty()
		m.SetName("claude_code.api_request.duration")
		m.SetUnit("ms")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		h.DataPoints().EnsureCapacity(histograms)
		for n := first + sums; n < first+count; n++ {
			dp := h.DataPoints().AppendEmpty()
			fillAttributes(dp.Attributes(), n)
			dp.SetStartTimestamp(pcommon.Timestamp(placeholderStart))
			dp.SetTimestamp(pcommon.Timestamp(placeholderEnd))
			dp.ExplicitBounds().FromRaw([]float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000})
			dp.BucketCounts().FromRaw([]uint64{0, 1, 0, 2, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 1})
			dp.SetCount(8)
			dp.SetSum(12345)
			dp.SetMin(3)
			dp.SetMax(20000)
		}
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		return nil, fmt.Errorf("encoding a load request: %w", err)
	}
	t := &template{body: body, points: count}
	t.starts = findFixed64(body, placeholderStart)
	t.ends = findFixed64(body, placeholderEnd)
	if len(t.starts) != count || len(t.ends) != count {
		return nil, fmt.Errorf("found %d start and %d end timestamps in a request of %d points", len(t.starts), len(t.ends), count)
	}
	return t, nil
}

// findFixed64 returns the offsets of every little-endian encoding of v.
func findFixed64(body []byte, v uint64) []int {
	var needle [8]byte
	binary.LittleEndian.PutUint64(needle[:], v)
	var offsets []int
	for from := 0; ; {
		i := bytes.Index(body[from:], needle[:])
		if i < 0 {
			return offsets
		}
		offsets = append(offsets, from+i)
		from += i + len(needle)
	}
}

// buildTemplates covers streams [0, streams) in requests of batch points.
func buildTemplates(streams, batch int, kind mix) ([]*template, error) {
	var out []*template
	for first := 0; first < streams; first += batch {
		t, err := buildTemplate(first, min(batch, streams-first), kind)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// loadResult is what one load run achieved.
type loadResult struct {
	accepted  int64 // points in requests answered OK, minus partial-success rejections
	rejected  int64 // points in partial-success rejections
	failed    int64 // requests answered with an error
	lastError string
	elapsed   time.Duration
}

func (r loadResult) pointsPerSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.accepted) / r.elapsed.Seconds()
}

// generator pushes pre-built requests over several connections, each
// sender owning a disjoint slice of the streams so that every stream's
// intervals arrive in order.
type generator struct {
	conns   []*grpc.ClientConn
	senders [][]*template
	clock   dataClock
	round   []int // next round per sender
}

// newGenerator connects to targets, connection i to targets[i%len(targets)],
// as clients behind a load balancer spread over its backends.
func newGenerator(targets []string, templates []*template, connections, sendersPerConnection int, clock dataClock) (*generator, error) {
	g := &generator{clock: clock}
	codec := otlpraw.CallOption()
	for i := range connections {
		target := targets[i%len(targets)]
		conn, err := grpc.NewClient(target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(withWorkerToken),
			grpc.WithDefaultCallOptions(codec, grpc.MaxCallSendMsgSize(64<<20)))
		if err != nil {
			g.close()
			return nil, fmt.Errorf("connecting to %s: %w", target, err)
		}
		g.conns = append(g.conns, conn)
	}
	senders := connections * sendersPerConnection
	g.senders = make([][]*template, senders)
	for i, t := range templates {
		// Each sender gets its own copy: senders patch timestamps in place.
		c := *t
		c.body = bytes.Clone(t.body)
		g.senders[i%senders] = append(g.senders[i%senders], &c)
	}
	g.round = make([]int, senders)
	return g, nil
}

// withWorkerToken sends the gateway-to-worker token, which a worker fed
// directly requires; gateways and the sink ignore it.
func withWorkerToken(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+benchWorkerToken)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (g *generator) close() {
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// run sends at full speed until end, counting only what is answered
// between measureFrom and end (the warm-up before measureFrom creates the
// streams and lets the target reach a steady state). Requests carry no
// deadline: a deadline would reach the server first and be miscounted as a
// failure at the end of the run.
func (g *generator) run(ctx context.Context, measureFrom, end time.Time) loadResult {
	var accepted, rejected, failed atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	for s, templates := range g.senders {
		if len(templates) == 0 {
			continue
		}
		conn := g.conns[s%len(g.conns)]
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				r := g.round[s]
				for _, t := range templates {
					t.setRound(g.clock, r)
					out, err := otlpraw.Export(ctx, conn, t.body)
					answered := time.Now()
					if answered.After(end) {
						return
					}
					counted := answered.After(measureFrom)
					if err != nil {
						if ctx.Err() != nil {
							return
						}
						if counted {
							failed.Add(1)
						}
						lastErr.Store(err.Error())
						continue
					}
					refused := partialRejections(out)
					if counted {
						accepted.Add(int64(t.points) - refused)
						rejected.Add(refused)
					}
				}
				g.round[s] = r + 1
			}
		})
	}
	wg.Wait()
	res := loadResult{accepted: accepted.Load(), rejected: rejected.Load(), failed: failed.Load()}
	if s, ok := lastErr.Load().(string); ok {
		res.lastError = s
	}
	return res
}

// sendOnce sends every template once (round r), stopping at the first
// refusal: the memory phase needs every stream created exactly once.
func (g *generator) sendOnce(ctx context.Context) (loadResult, error) {
	var accepted, rejected atomic.Int64
	errs := make(chan error, len(g.senders))
	var wg sync.WaitGroup
	for s, templates := range g.senders {
		conn := g.conns[s%len(g.conns)]
		wg.Go(func() {
			r := g.round[s]
			for _, t := range templates {
				t.setRound(g.clock, r)
				out, err := otlpraw.Export(ctx, conn, t.body)
				if err != nil {
					errs <- err
					return
				}
				refused := partialRejections(out)
				accepted.Add(int64(t.points) - refused)
				rejected.Add(refused)
			}
			g.round[s] = r + 1
		})
	}
	wg.Wait()
	close(errs)
	res := loadResult{accepted: accepted.Load(), rejected: rejected.Load()}
	if err := <-errs; err != nil {
		return res, fmt.Errorf("sending: %w", err)
	}
	if res.rejected > 0 {
		return res, errors.New("the target refused points (partial success)")
	}
	return res, nil
}

func partialRejections(resp []byte) int64 {
	if len(resp) == 0 {
		return 0
	}
	r := pmetricotlp.NewExportResponse()
	if err := r.UnmarshalProto(resp); err != nil {
		return 0
	}
	return r.PartialSuccess().RejectedDataPoints()
}
