package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
)

// clusterLoad is one bin/loadgen run from the node, into the gateway
// Service's cluster IP (kube-proxy spreads its connections over the gateway
// pods).
type clusterLoad struct {
	name           string
	endpoint       string
	sessions       int
	sharedSessions int
	rounds         int
	interval       time.Duration
	seed           uint64
	// noRetry plays the Claude Code CLI, which never retries an export.
	noRetry bool
}

// loadRun is a started load.
type loadRun struct {
	load       clusterLoad
	cmd        *exec.Cmd
	totalsPath string
	logPath    string
	done       chan error
}

func startLoad(binary, dir string, l clusterLoad) (*loadRun, error) {
	r := &loadRun{
		load:       l,
		totalsPath: filepath.Join(dir, l.name+"-totals.json"),
		logPath:    filepath.Join(dir, l.name+"-loadgen.log"),
		done:       make(chan error, 1),
	}
	args := []string{
		"--endpoint", l.endpoint,
		"--sessions", strconv.Itoa(l.sessions),
		"--shared-sessions", strconv.Itoa(l.sharedSessions),
		"--rounds", strconv.Itoa(l.rounds),
		"--export-interval", l.interval.String(),
		"--seed", strconv.FormatUint(l.seed, 10),
		"--totals-out", r.totalsPath,
		"--progress", "5s",
	}
	if l.noRetry {
		args = append(args, "--no-retry", "--export-timeout", "5s")
	}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(binary, args...)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	fmt.Fprintf(GinkgoWriter, "load %s: %d sessions (%d shared), %d rounds every %s, seed %d, no-retry %v, into %s\n",
		l.name, l.sessions, l.sharedSessions, l.rounds, l.interval, l.seed, l.noRetry, l.endpoint)
	if err := r.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting loadgen %s: %w", l.name, err)
	}
	go func() {
		err := r.cmd.Wait()
		logFile.Close()
		r.done <- err
	}()
	// A spec that fails before waiting for the run must not leave it
	// sending to a cluster that is torn down: the process would outlive
	// the suite (and keep what it inherited, such as a build lock).
	DeferCleanup(func() {
		if r.running() {
			_ = r.cmd.Process.Kill()
			fmt.Fprintf(GinkgoWriter, "load %s killed, still running after its spec: %v\n", l.name, <-r.done)
		}
	})
	return r, nil
}

// running reports whether the load generator has not exited yet.
func (r *loadRun) running() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return false
	default:
		return true
	}
}

// wait returns what the run had acknowledged. A run with failed exports
// exits non-zero; that is an error unless the run never retries, whose
// failures are the figure being measured.
func (r *loadRun) wait(ctx context.Context) (totals.Totals, error) {
	var exitErr error
	select {
	case <-ctx.Done():
		_ = r.cmd.Process.Kill()
		return totals.Totals{}, fmt.Errorf("loadgen %s still running: %w", r.load.name, ctx.Err())
	case exitErr = <-r.done:
		// Kept for running, which the cleanup of startLoad asks.
		r.done <- exitErr
	}
	sent, err := totals.Read(r.totalsPath)
	if err != nil {
		return totals.Totals{}, fmt.Errorf("loadgen %s (log %s): reading what it sent: %w", r.load.name, r.logPath, errors.Join(err, exitErr))
	}
	log, _ := os.ReadFile(r.logPath)
	if exitErr != nil && (!r.load.noRetry || sent.FailedExports == 0) {
		return sent, fmt.Errorf("loadgen %s: %w\n%s", r.load.name, exitErr, log)
	}
	if sent.FailedExports > 0 {
		// The last lines say why the exports failed.
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		fmt.Fprintf(GinkgoWriter, "loadgen %s: %s\n", r.load.name, strings.Join(lines[max(0, len(lines)-2):], "\n"))
	}
	return sent, nil
}
