package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The names, units and attribute values below are the ones Claude Code
// exports (see its monitoring documentation), so the pipeline is exercised
// with the series a real deployment stores.
const (
	meterName = "com.anthropic.claude_code"

	// requestDurationMetric is the generator's own histogram: Claude Code
	// exports counters only, and histograms must be exercised end to end too.
	requestDurationMetric = "loadgen.request.duration"
)

var (
	models        = []string{"claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"}
	terminalTypes = []string{"vscode", "iTerm.app", "tmux", "Apple_Terminal", "cursor"}
	editTools     = []string{"Edit", "MultiEdit", "Write", "NotebookEdit"}
	tokenTypes    = []string{"input", "output", "cacheRead", "cacheCreation"}

	// requestDurationBounds are explicit bucket bounds in milliseconds.
	requestDurationBounds = []float64{100, 250, 500, 1000, 2500, 5000, 10000}
)

// instruments are one writer's Claude Code instruments.
type instruments struct {
	sessions     metric.Int64Counter
	tokens       metric.Int64Counter
	cost         metric.Float64Counter
	linesOfCode  metric.Int64Counter
	commits      metric.Int64Counter
	pullRequests metric.Int64Counter
	editDecision metric.Int64Counter
	activeTime   metric.Float64Counter
	requestTime  metric.Int64Histogram
}

func newInstruments(m metric.Meter) (instruments, error) {
	var (
		in   instruments
		errs [9]error
	)
	in.sessions, errs[0] = m.Int64Counter("claude_code.session.count",
		metric.WithUnit("count"), metric.WithDescription("Count of CLI sessions started"))
	in.tokens, errs[1] = m.Int64Counter("claude_code.token.usage",
		metric.WithUnit("tokens"), metric.WithDescription("Number of tokens used"))
	in.cost, errs[2] = m.Float64Counter("claude_code.cost.usage",
		metric.WithUnit("USD"), metric.WithDescription("Cost of the Claude Code session"))
	in.linesOfCode, errs[3] = m.Int64Counter("claude_code.lines_of_code.count",
		metric.WithUnit("count"), metric.WithDescription("Count of lines of code modified"))
	in.commits, errs[4] = m.Int64Counter("claude_code.commit.count",
		metric.WithUnit("count"), metric.WithDescription("Number of git commits created"))
	in.pullRequests, errs[5] = m.Int64Counter("claude_code.pull_request.count",
		metric.WithUnit("count"), metric.WithDescription("Number of pull requests created"))
	in.editDecision, errs[6] = m.Int64Counter("claude_code.code_edit_tool.decision",
		metric.WithUnit("count"), metric.WithDescription("Count of code editing tool permission decisions"))
	in.activeTime, errs[7] = m.Float64Counter("claude_code.active_time.total",
		metric.WithUnit("s"), metric.WithDescription("Total active time in seconds"))
	in.requestTime, errs[8] = m.Int64Histogram(requestDurationMetric,
		metric.WithUnit("ms"), metric.WithDescription("Duration of the generator's simulated model requests"),
		metric.WithExplicitBucketBoundaries(requestDurationBounds...))
	for _, err := range errs {
		if err != nil {
			return instruments{}, fmt.Errorf("creating instruments: %w", err)
		}
	}
	return in, nil
}

// session is what every writer of one Claude Code session shares: its
// identity, which becomes the standard attributes of every point.
type session struct {
	id           string
	accountUUID  string
	organization string
	terminal     string
}

// newSession derives a session's identity from the seed alone, so a run can
// be repeated with the same series.
func newSession(seed uint64, index int) session {
	rng := rand.New(rand.NewPCG(seed, uint64(index)))
	user := index / 3 // a few sessions per user, as people open several terminals
	userRNG := rand.New(rand.NewPCG(seed^0x5eed, uint64(user)))
	return session{
		id:           uuid(rng),
		accountUUID:  uuid(userRNG),
		organization: fmt.Sprintf("org-%d", user%2),
		terminal:     terminalTypes[rng.IntN(len(terminalTypes))],
	}
}

func (s session) attributes() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("session.id", s.id),
		attribute.String("user.account_uuid", s.accountUUID),
		attribute.String("organization.id", s.organization),
		attribute.String("terminal.type", s.terminal),
	}
}

func uuid(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// costQuantum keeps every cost a multiple of 2^-10 USD: such values and
// their sums are exact in float64, so totals can be compared exactly.
const costQuantum = 1.0 / 1024

// recordTurn records one round of activity of one writer. Every value is
// drawn from rng, and every value is an integer or a binary-exact fraction.
func recordTurn(ctx context.Context, in instruments, s session, round int, rng *rand.Rand) {
	common := s.attributes()
	with := func(extra ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributes(append(append([]attribute.KeyValue(nil), common...), extra...)...)
	}

	if round == 0 {
		in.sessions.Add(ctx, 1, with())
	}
	model := attribute.String("model", models[rng.IntN(len(models))])
	for _, tokenType := range tokenTypes {
		if n := rng.Int64N(4000); n > 0 {
			in.tokens.Add(ctx, n, with(model, attribute.String("type", tokenType)))
		}
	}
	in.cost.Add(ctx, float64(1+rng.IntN(2048))*costQuantum, with(model))
	in.activeTime.Add(ctx, float64(1+rng.IntN(240))*0.5, with())
	if n := rng.Int64N(200); n > 0 {
		in.linesOfCode.Add(ctx, n, with(attribute.String("type", "added")))
	}
	if n := rng.Int64N(80); n > 0 {
		in.linesOfCode.Add(ctx, n, with(attribute.String("type", "removed")))
	}
	if rng.IntN(8) == 0 {
		in.commits.Add(ctx, 1, with())
	}
	if rng.IntN(30) == 0 {
		in.pullRequests.Add(ctx, 1, with())
	}
	for range rng.IntN(4) {
		decision := "accept"
		if rng.IntN(5) == 0 {
			decision = "reject"
		}
		in.editDecision.Add(ctx, 1, with(
			attribute.String("tool_name", editTools[rng.IntN(len(editTools))]),
			attribute.String("decision", decision)))
	}
	for range 1 + rng.IntN(4) {
		in.requestTime.Record(ctx, 20+rng.Int64N(12000), with(model))
	}
}
