package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The names, units, value types and attributes below are the ones the real
// Claude Code CLI exports (observed from version 2.1.332 with every OTLP
// request captured), so the pipeline is exercised with the series a real
// deployment stores: every metric a monotonic sum of doubles, no unit where
// the client sets none, no service.instance.id.
const (
	meterName = "com.anthropic.claude_code"

	// defaultClientVersion is the CLI version the emulation follows.
	defaultClientVersion = "2.1.332"

	// requestDurationMetric is the generator's own histogram: Claude Code
	// exports counters only, and histograms must be exercised end to end too.
	requestDurationMetric = "loadgen.request.duration"

	// provider is anthropic.provider of a client talking to the Anthropic
	// API directly.
	provider = "firstParty"
)

var (
	models        = []string{"claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"}
	terminalTypes = []string{"vscode", "iTerm.app", "tmux", "Apple_Terminal", "cursor"}
	editTools     = []string{"Edit", "MultiEdit", "Write", "NotebookEdit"}
	languages     = []string{"TypeScript", "Go", "Python", "Markdown"}
	tokenTypes    = []string{"input", "output", "cacheRead", "cacheCreation"}
	// The observed requests carry query_source, effort and the decision's
	// source; the values below stand in for the client's, few enough to
	// keep the number of streams per session close to a real one.
	querySources    = []string{"main", "subagent"}
	efforts         = []string{"medium", "high"}
	acceptSources   = []string{"config", "user_temporary", "user_permanent"}
	effortSupported = map[string]bool{"claude-sonnet-4-5": true, "claude-opus-4-1": true}

	// requestDurationBounds are explicit bucket bounds in milliseconds.
	requestDurationBounds = []float64{100, 250, 500, 1000, 2500, 5000, 10000}
)

// instruments are one writer's Claude Code instruments.
type instruments struct {
	sessions     metric.Float64Counter
	tokens       metric.Float64Counter
	cost         metric.Float64Counter
	linesOfCode  metric.Float64Counter
	commits      metric.Float64Counter
	pullRequests metric.Float64Counter
	editDecision metric.Float64Counter
	activeTime   metric.Float64Counter
	requestTime  metric.Float64Histogram
}

func newInstruments(m metric.Meter) (instruments, error) {
	var (
		in   instruments
		errs [9]error
	)
	// Counts carry no unit, as the client's do: their Prometheus names get
	// no unit suffix (claude_code_code_edit_tool_decision_total).
	in.sessions, errs[0] = m.Float64Counter("claude_code.session.count",
		metric.WithDescription("Count of CLI sessions started"))
	in.tokens, errs[1] = m.Float64Counter("claude_code.token.usage",
		metric.WithUnit("tokens"), metric.WithDescription("Number of tokens used"))
	in.cost, errs[2] = m.Float64Counter("claude_code.cost.usage",
		metric.WithUnit("USD"), metric.WithDescription("Cost of the Claude Code session"))
	in.linesOfCode, errs[3] = m.Float64Counter("claude_code.lines_of_code.count",
		metric.WithDescription("Count of lines of code modified"))
	in.commits, errs[4] = m.Float64Counter("claude_code.commit.count",
		metric.WithDescription("Number of git commits created"))
	in.pullRequests, errs[5] = m.Float64Counter("claude_code.pull_request.count",
		metric.WithDescription("Number of pull requests created"))
	in.editDecision, errs[6] = m.Float64Counter("claude_code.code_edit_tool.decision",
		metric.WithDescription("Count of code editing tool permission decisions"))
	in.activeTime, errs[7] = m.Float64Counter("claude_code.active_time.total",
		metric.WithUnit("s"), metric.WithDescription("Total active time in seconds"))
	in.requestTime, errs[8] = m.Float64Histogram(requestDurationMetric,
		metric.WithUnit("ms"), metric.WithDescription("Duration of the generator's simulated model requests"),
		metric.WithExplicitBucketBoundaries(requestDurationBounds...))
	for _, err := range errs {
		if err != nil {
			return instruments{}, fmt.Errorf("creating instruments: %w", err)
		}
	}
	return in, nil
}

// account is what an OAuth login adds to every point; API-key users have
// none.
type account struct {
	uuid, organization, email string
}

// session is what every writer of one Claude Code session shares: its
// identity, which becomes the standard attributes of every point.
type session struct {
	id       string
	userID   string
	account  *account
	terminal string
	// customBaseURL is anthropic.custom_base_url, the one boolean
	// attribute the client sends.
	customBaseURL bool
	effort        string
	// continueID is set when the session's first writer is a process
	// started with --continue: it counts its start under this new id and
	// records everything else under id, one process writing two session ids.
	continueID string
}

// newSession derives a session's identity from the seed alone, so a run can
// be repeated with the same series. A few sessions share a user (one home
// directory, one user.id), as people open several terminals; every third
// user signs in with an API key and sends no account attributes; every
// fourth session is resumed with --continue.
func newSession(seed uint64, index int) session {
	rng := rand.New(rand.NewPCG(seed, uint64(index)))
	user := index / 3
	userRNG := rand.New(rand.NewPCG(seed^0x5eed, uint64(user)))
	s := session{
		id:            uuid(rng),
		userID:        hex64(userRNG),
		terminal:      terminalTypes[rng.IntN(len(terminalTypes))],
		customBaseURL: user%4 == 3,
		effort:        efforts[rng.IntN(len(efforts))],
	}
	if user%3 != 1 {
		s.account = &account{
			uuid:         uuid(userRNG),
			organization: fmt.Sprintf("org-%d", user%2),
			email:        fmt.Sprintf("user%d@example.com", user),
		}
	}
	if index%4 == 3 {
		s.continueID = uuid(rng)
	}
	return s
}

// start is the session.id and start_type a writer counts its start under:
// a second writer of a session is a process started with --resume while
// the first still runs.
func (s session) start(copyIndex int) (id, startType string) {
	switch {
	case copyIndex > 0:
		return s.id, "resume"
	case s.continueID != "":
		return s.continueID, "continue"
	default:
		return s.id, "fresh"
	}
}

// attributes are the attributes of every point recorded under session.id id.
func (s session) attributes(id string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String("user.id", s.userID),
		attribute.String("session.id", id),
		attribute.String("anthropic.provider", provider),
		attribute.Bool("anthropic.custom_base_url", s.customBaseURL),
		attribute.String("terminal.type", s.terminal),
	}
	if a := s.account; a != nil {
		attrs = append(attrs,
			attribute.String("user.account_uuid", a.uuid),
			attribute.String("organization.id", a.organization),
			attribute.String("user.email", a.email))
	}
	return attrs
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

// hex64 is a user.id: 64 hex characters.
func hex64(rng *rand.Rand) string {
	var b [32]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return fmt.Sprintf("%x", b)
}

// costQuantum keeps every cost a multiple of 2^-10 USD.
//
// Every value the generator records is a double, as the client's are, and
// every one is an integer or a multiple of 2^-10 far below 2^43: each such
// value and every partial sum of them is exact in float64, so the order in
// which the SDK, the ledger, the gateways and the workers add deltas (two
// writers of a shared session interleave) cannot change a total, and the
// backend's values can be compared with the sent ones by float64 equality.
const costQuantum = 1.0 / 1024

// recordTurn records one round of activity of one writer of session s; the
// writer counts its start under startID. Every value is drawn from rng.
func recordTurn(ctx context.Context, in instruments, s session, startID, startType string, round int, rng *rand.Rand) {
	common := s.attributes(s.id)
	with := func(extra ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributes(append(append([]attribute.KeyValue(nil), common...), extra...)...)
	}

	if round == 0 {
		in.sessions.Add(ctx, 1, metric.WithAttributes(append(s.attributes(startID),
			attribute.String("start_type", startType))...))
	}
	modelName := models[rng.IntN(len(models))]
	model := attribute.String("model", modelName)
	query := []attribute.KeyValue{model, attribute.String("query_source", querySources[rng.IntN(4)/3])}
	if effortSupported[modelName] {
		query = append(query, attribute.String("effort", s.effort))
	}
	for _, tokenType := range tokenTypes {
		if n := rng.Int64N(4000); n > 0 {
			in.tokens.Add(ctx, float64(n), with(append(slices.Clip(query), attribute.String("type", tokenType))...))
		}
	}
	in.cost.Add(ctx, float64(1+rng.IntN(2048))*costQuantum, with(query...))
	in.activeTime.Add(ctx, float64(1+rng.IntN(240))*0.5, with(attribute.String("type", "cli")))
	if n := rng.IntN(120); n > 0 {
		in.activeTime.Add(ctx, float64(n)*0.5, with(attribute.String("type", "user")))
	}
	if added := rng.Int64N(200); added > 0 {
		// The client sends the removed count with every added one, 0
		// included.
		removed := int64(0)
		if rng.IntN(3) > 0 {
			removed = rng.Int64N(80)
		}
		in.linesOfCode.Add(ctx, float64(added), with(attribute.String("type", "added"), model))
		in.linesOfCode.Add(ctx, float64(removed), with(attribute.String("type", "removed"), model))
	}
	if rng.IntN(8) == 0 {
		in.commits.Add(ctx, 1, with())
	}
	if rng.IntN(30) == 0 {
		in.pullRequests.Add(ctx, 1, with())
	}
	for range rng.IntN(4) {
		decision, source := "accept", acceptSources[rng.IntN(len(acceptSources))]
		if rng.IntN(5) == 0 {
			decision, source = "reject", "user_reject"
		}
		in.editDecision.Add(ctx, 1, with(
			attribute.String("decision", decision),
			attribute.String("source", source),
			attribute.String("tool_name", editTools[rng.IntN(len(editTools))]),
			attribute.String("language", languages[rng.IntN(len(languages))])))
	}
	for range 1 + rng.IntN(4) {
		in.requestTime.Record(ctx, float64(20+rng.Int64N(12000)), with(model))
	}
}
