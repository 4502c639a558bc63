// Command loadgen emulates many Claude Code clients: each writer is an
// OpenTelemetry Go SDK MeterProvider with delta temporality exporting Claude
// Code's metrics over OTLP/gRPC, like one Claude Code process does.
//
// It records exactly what the receiving end acknowledged, per Prometheus
// series, and writes it as JSON (--totals-out), so a test or a person can
// compare the backend's cumulative values with the deltas that were sent.
// See docs/e2e.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sent, err := run(ctx, cfg, os.Stderr)
	if cfg.totalsOut != "" {
		if werr := totals.Write(cfg.totalsOut, sent); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	fmt.Fprintf(os.Stderr, "loadgen: done: %d writers, %d streams, %d points acknowledged in %d exports, %d exports failed (%d points)\n",
		sent.Writers, sent.Streams, sent.Points, sent.Exports, sent.FailedExports, sent.FailedPoints)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	endpoints        []string
	sessions         int
	sharedSessions   int
	rounds           int
	duration         time.Duration
	exportInterval   time.Duration
	seed             uint64
	totalsOut        string
	clientVersion    string
	connsPerEndpoint int
	progress         time.Duration
	exportTimeout    time.Duration
	noRetry          bool
	// caFile, when set, connects with TLS verified against this CA.
	caFile string
	// bearerTokenFile, when set, sends "authorization: Bearer <its content>"
	// with every export, as OTEL_EXPORTER_OTLP_HEADERS makes Claude Code do.
	bearerTokenFile string
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var (
		c         config
		endpoints string
	)
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&endpoints, "endpoint", "127.0.0.1:4317", "OTLP/gRPC endpoints (host:port, comma-separated); writers are spread over them in turn")
	fs.IntVar(&c.sessions, "sessions", 10, "number of Claude Code sessions")
	fs.IntVar(&c.sharedSessions, "shared-sessions", 0, "how many of the sessions are written by two processes at once (same session.id, same streams)")
	fs.IntVar(&c.rounds, "rounds", 0, "rounds of activity per writer, one per export interval (0: derive from --duration)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to generate when --rounds is 0")
	fs.DurationVar(&c.exportInterval, "export-interval", 60*time.Second, "interval of one round of activity and one export per writer (Claude Code's default export interval is 60s)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of every identity and value; the same seed sends the same series and totals")
	fs.StringVar(&c.totalsOut, "totals-out", "", "write the acknowledged totals per Prometheus series to this JSON file")
	fs.StringVar(&c.clientVersion, "client-version", defaultClientVersion, "service.version and scope version of the emulated clients")
	fs.IntVar(&c.connsPerEndpoint, "connections", 2, "gRPC connections per endpoint shared by the writers")
	fs.DurationVar(&c.progress, "progress", 0, "print a progress line at this interval (0: never)")
	fs.DurationVar(&c.exportTimeout, "export-timeout", 10*time.Second, "timeout of one export request, retries included")
	fs.BoolVar(&c.noRetry, "no-retry", false, "send each export once, as the Claude Code CLI does: a refused export is counted as failed and its deltas are lost")
	fs.StringVar(&c.caFile, "ca-file", "", "connect with TLS, verifying the gateways' certificates against this PEM CA (default: plaintext)")
	fs.StringVar(&c.bearerTokenFile, "bearer-token-file", "", "send \"authorization: Bearer <token>\" with every export, the token read from this file")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for e := range strings.SplitSeq(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.endpoints = append(c.endpoints, e)
		}
	}
	if c.rounds == 0 && c.exportInterval > 0 {
		c.rounds = max(1, int(c.duration/c.exportInterval))
	}
	return c, c.validate()
}

// validate names every flag whose value cannot work.
func (c config) validate() error {
	var errs []error
	if len(c.endpoints) == 0 {
		errs = append(errs, errors.New("--endpoint: at least one host:port is required"))
	}
	if c.sessions <= 0 {
		errs = append(errs, fmt.Errorf("--sessions: must be positive, got %d", c.sessions))
	}
	if c.sharedSessions < 0 || c.sharedSessions > c.sessions {
		errs = append(errs, fmt.Errorf("--shared-sessions: must be from 0 to --sessions (%d), got %d", c.sessions, c.sharedSessions))
	}
	if c.exportInterval <= 0 {
		errs = append(errs, fmt.Errorf("--export-interval: must be positive, got %s", c.exportInterval))
	}
	if c.rounds < 0 {
		errs = append(errs, fmt.Errorf("--rounds: must not be negative, got %d", c.rounds))
	}
	if c.connsPerEndpoint <= 0 {
		errs = append(errs, fmt.Errorf("--connections: must be positive, got %d", c.connsPerEndpoint))
	}
	if c.exportTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--export-timeout: must be positive, got %s", c.exportTimeout))
	}
	return errors.Join(errs...)
}
