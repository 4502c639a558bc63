package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is one local child process (a gateway, a worker, the load
// generator) that can be started again after it stopped. Its output is
// appended to LogPath, so a restarted process's log follows the previous one.
type Process struct {
	Name    string
	Path    string
	Args    []string
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	starts  int
}

// Start runs the process. It is an error to start a running process.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("starting %s: already running as pid %d", p.Name, p.cmd.Process.Pid)
	}
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("starting %s: opening its log: %w", p.Name, err)
	}
	fmt.Fprintf(logFile, "=== %s start %d at %s: %s %q\n", p.Name, p.starts+1, time.Now().UTC().Format(time.RFC3339Nano), p.Path, p.Args)
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so a Ctrl-C in the terminal reaches only
		// the harness, which then stops every child in order.
		Setpgid: true,
		// Children die with the harness even if it is killed.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting %s (%s): %w", p.Name, p.Path, err)
	}
	p.cmd = cmd
	p.starts++
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process was started and has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

// Pid is the process id of the last start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s was never started", p.Name)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s to exit: %w", p.Name, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Kill sends SIGKILL, the way a node or the OOM killer ends a process, and
// waits for the process to be gone.
func (p *Process) Kill() error {
	if !p.Running() {
		return nil
	}
	p.mu.Lock()
	proc, done := p.cmd.Process, p.done
	p.mu.Unlock()
	if err := proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	<-done
	return nil
}

// Stop sends SIGTERM, as the kubelet does, and waits up to grace for a clean
// exit before killing the process. A process that had to be killed or that
// exited with an error is reported.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	p.mu.Lock()
	proc, done := p.cmd.Process, p.done
	p.mu.Unlock()
	if err := proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping %s: %w", p.Name, err)
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = proc.Signal(syscall.SIGKILL)
		<-done
		return fmt.Errorf("stopping %s: still running %s after SIGTERM; killed (log: %s)", p.Name, grace, p.LogPath)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitErr != nil {
		return fmt.Errorf("%s exited after SIGTERM with %w (log: %s)", p.Name, p.exitErr, p.LogPath)
	}
	return nil
}

// WaitHTTPOK polls url until it answers 200, the process exits, or ctx ends.
func (p *Process) WaitHTTPOK(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", p.Name, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		last = err
		if !p.Running() {
			return fmt.Errorf("%s exited before %s answered (log: %s): %w", p.Name, url, p.LogPath, p.Wait(ctx))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s at %s (log: %s): %w (last: %w)", p.Name, url, p.LogPath, ctx.Err(), last)
		case <-ticker.C:
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
