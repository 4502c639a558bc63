// Command demo runs a whole DeltaPipeline on this machine in the
// foreground: the operator renders the configuration into a local API
// server, two upstream collectors route, three workers convert, and a load
// generator plays Claude Code clients. It prints one status line per second
// and, at the end, what was sent against what the backend received, then
// stops everything it started (on Ctrl-C too). `make demo` builds what it
// needs and runs it; docs/demo.md explains the output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

type config struct {
	crdDir         string
	sessions       int
	sharedSessions int
	duration       time.Duration
	exportInterval time.Duration
	seed           uint64
	keep           bool
	rescale        []int
}

// parseRescale reads --rescale: worker counts to scale to while the
// clients send, one after the other.
func parseRescale(v string) ([]int, error) {
	if v == "" {
		return nil, nil
	}
	var out []int
	for part := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > maxWorkers {
			return nil, fmt.Errorf("--rescale %q: each count must be a number from 1 to %d", v, maxWorkers)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxWorkers bounds --rescale: the receiver is started for that many.
const maxWorkers = 8

func main() {
	var c config
	flag.StringVar(&c.crdDir, "crd-dir", "config/crd/bases", "directory of the generated DeltaPipeline CRD")
	flag.IntVar(&c.sessions, "sessions", 60, "Claude Code sessions to emulate")
	flag.IntVar(&c.sharedSessions, "shared-sessions", 10, "how many of them two processes write at once (same session.id)")
	flag.DurationVar(&c.duration, "duration", 45*time.Second, "how long the clients send")
	flag.DurationVar(&c.exportInterval, "export-interval", time.Second, "client export interval (Claude Code's default is 60s)")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the clients' identities and values")
	flag.BoolVar(&c.keep, "keep", false, "keep the run directory (configurations, logs, state) instead of removing it")
	rescale := flag.String("rescale", "5,2", "worker counts to scale to (spec.worker.replicas) while the clients send, evenly spaced; empty for none")
	flag.Parse()
	var err error
	if c.rescale, err = parseRescale(*rescale); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, out io.Writer) (err error) {
	if c.sessions <= 0 || c.sharedSessions < 0 || c.sharedSessions > c.sessions {
		return fmt.Errorf("--sessions must be positive and --shared-sessions from 0 to --sessions; got %d and %d", c.sessions, c.sharedSessions)
	}
	if c.exportInterval <= 0 || c.duration < c.exportInterval {
		return fmt.Errorf("--export-interval must be positive and --duration at least one interval; got %s and %s", c.exportInterval, c.duration)
	}
	binaries, err := harness.BinariesFromEnv()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "deltapipeline-demo-")
	if err != nil {
		return fmt.Errorf("creating the run directory: %w", err)
	}
	defer func() {
		if c.keep || err != nil {
			fmt.Fprintf(out, "configurations, logs and state kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	pipeline, err := harness.Start(ctx,
		harness.WithDir(dir),
		harness.WithCRDDir(c.crdDir),
		harness.WithBinaries(binaries),
		harness.WithMaxWorkers(maxWorkers),
		harness.WithLog(out),
	)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping gateways, workers, receiver and control plane")
		err = errors.Join(err, pipeline.Stop(context.Background()))
	}()

	load, err := pipeline.StartLoad(harness.Load{
		Name:           "demo",
		Sessions:       c.sessions,
		SharedSessions: c.sharedSessions,
		Rounds:         int(c.duration / c.exportInterval),
		ExportInterval: c.exportInterval,
		Seed:           c.seed,
	})
	if err != nil {
		return err
	}
	rescaled := make(chan error, 1)
	go func() { rescaled <- rescaleDuring(ctx, pipeline, c, out) }()
	watch(ctx, pipeline, load, out)
	if err := <-rescaled; err != nil && ctx.Err() == nil {
		return err
	}
	if ctx.Err() != nil {
		fmt.Fprintln(out, "interrupted: stopping the clients; they deliver what they recorded")
		_ = load.Stop(30 * time.Second)
	}
	sent, err := load.Wait(context.Background())
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "clients done; waiting for the workers' last emit to reach the backend")
	waitCtx := context.Background()
	timeout := time.Minute
	if ctx.Err() != nil {
		timeout = 10 * time.Second
	}
	report := pipeline.WaitForTotals(waitCtx, sent, timeout).AllowingMoves(len(c.rescale))
	printTable(out, sent, pipeline.Receiver.LastValues())
	fmt.Fprintln(out, report.Figures())
	if len(c.rescale) > 0 {
		fmt.Fprintf(out, "%d series moved to another worker with their state during the rescales and continued there\n", len(report.Moved))
	}
	if problems := report.Problems(); len(problems) > 0 {
		return fmt.Errorf("what was exported differs from what was sent:\n  %s", strings.Join(problems, "\n  "))
	}
	fmt.Fprintf(out, "every series exact: %d of %d\n", report.ExactMatches, report.SentSeries)
	return nil
}

// rescaleDuring changes spec.worker.replicas to each count of c.rescale,
// evenly spaced over the clients' run, each once the previous rescale
// settled, and says how long each took.
func rescaleDuring(ctx context.Context, p *harness.Pipeline, c config, out io.Writer) error {
	if len(c.rescale) == 0 {
		return nil
	}
	step := c.duration / time.Duration(len(c.rescale)+1)
	for _, n := range c.rescale {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
		start := time.Now()
		epoch, err := p.ScaleWorkers(ctx, n)
		if err != nil {
			return fmt.Errorf("rescaling to %d workers: %w", n, err)
		}
		fmt.Fprintf(out, "rescaled to %d workers: streams handed over, ring settled at membership epoch %d in %s\n",
			n, epoch, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// watch prints a status line every second until the load generator exits
// or ctx ends.
func watch(ctx context.Context, p *harness.Pipeline, load *harness.LoadRun, out io.Writer) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	exited := make(chan struct{})
	go func() {
		_ = load.Process.Wait(context.Background())
		close(exited)
	}()
	var prev harness.Status
	for {
		select {
		case <-ctx.Done():
			return
		case <-exited:
			return
		case <-ticker.C:
			s := p.Status(ctx)
			fmt.Fprintf(out, "%s  %s\n", s.At.Format("15:04:05"), s.Line(prev))
			prev = s
		}
	}
}

// printTable shows, per metric, the sum over its series of what was sent
// and of the latest value exported (histogram buckets left out).
func printTable(out io.Writer, sent totals.Totals, exported map[string]float64) {
	type row struct {
		series, exact  int
		sent, exported float64
	}
	rows := map[string]*row{}
	for key, want := range sent.Series {
		name := totals.MetricName(key)
		if strings.HasSuffix(name, "_bucket") {
			continue
		}
		r := rows[name]
		if r == nil {
			r = &row{}
			rows[name] = r
		}
		r.series++
		r.sent += want
		got, ok := exported[key]
		r.exported += got
		if ok && got == want {
			r.exact++
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tseries\tsent (sum of deltas)\texported (latest cumulative)\texact series\t")
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		r := rows[name]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d/%d\t\n", name, r.series, formatValue(r.sent), formatValue(r.exported), r.exact, r.series)
	}
	_ = tw.Flush()
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.4f", v)
}
