package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// Load describes one load generator run.
type Load struct {
	// Name names the run's files.
	Name           string
	Sessions       int
	SharedSessions int
	Rounds         int
	ExportInterval time.Duration
	Seed           uint64
	// CAFile, when set, makes the clients use TLS verified against it.
	CAFile string
	// BearerTokenFile, when set, is the token every export carries.
	BearerTokenFile string
	// NoRetry sends every export once, as the Claude Code CLI does.
	NoRetry bool
}

// LoadRun is a load generator process writing into the gateways.
type LoadRun struct {
	*Process
	totalsPath string
}

// StartLoad starts bin/loadgen against every gateway.
func (p *Pipeline) StartLoad(l Load) (*LoadRun, error) {
	totalsPath := filepath.Join(p.Dir, l.Name+"-totals.json")
	run := &LoadRun{
		Process: &Process{
			Name: "loadgen " + l.Name,
			Path: p.Binaries.Loadgen,
			Args: []string{
				"--endpoint", strings.Join(p.GatewayEndpoints(), ","),
				"--sessions", strconv.Itoa(l.Sessions),
				"--shared-sessions", strconv.Itoa(l.SharedSessions),
				"--rounds", strconv.Itoa(l.Rounds),
				"--export-interval", l.ExportInterval.String(),
				"--seed", strconv.FormatUint(l.Seed, 10),
				"--totals-out", totalsPath,
				"--progress", "5s",
			},
			LogPath: filepath.Join(p.Dir, l.Name+"-loadgen.log"),
		},
		totalsPath: totalsPath,
	}
	if l.CAFile != "" {
		run.Args = append(run.Args, "--ca-file", l.CAFile)
	}
	if l.BearerTokenFile != "" {
		run.Args = append(run.Args, "--bearer-token-file", l.BearerTokenFile)
	}
	if l.NoRetry {
		run.Args = append(run.Args, "--no-retry")
	}
	p.logf("load %s: %d sessions (%d written by two processes), %d rounds every %s, seed %d",
		l.Name, l.Sessions, l.SharedSessions, l.Rounds, l.ExportInterval, l.Seed)
	if err := run.Start(); err != nil {
		return nil, err
	}
	return run, nil
}

// Wait waits for the run to end and returns what it sent. A run that could
// not deliver everything fails: its totals would not be exact.
func (r *LoadRun) Wait(ctx context.Context) (totals.Totals, error) {
	if err := r.Process.Wait(ctx); err != nil {
		return totals.Totals{}, fmt.Errorf("%s failed (log: %s): %w", r.Name, r.LogPath, err)
	}
	sent, err := totals.Read(r.totalsPath)
	if err != nil {
		return totals.Totals{}, fmt.Errorf("%s: %w", r.Name, err)
	}
	return sent, nil
}
