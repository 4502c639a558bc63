package worker

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deltapipeline/deltapipeline/internal/state"
	"github.com/deltapipeline/deltapipeline/internal/state/statetest"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

func readyz(t *testing.T, h *harness) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + h.w.TelemetryAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// eventuallyReadyz polls /readyz until it answers code with a body that
// satisfies match, and returns the last answer.
func eventuallyReadyz(t *testing.T, h *harness, code int, match func(string) bool) (int, string) {
	t.Helper()
	var got int
	var body string
	for range 1000 {
		if got, body = readyz(t, h); got == code && match(body) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return got, body
}

func withCheckpointInterval(d time.Duration) configOption {
	return func(c *workerconfig.Config) { c.State.CheckpointInterval = workerconfig.D(d) }
}

func TestBrokenJournalFailsReadinessAndTheMetricSaysSo(t *testing.T) {
	dir := t.TempDir()
	// No periodic checkpoint rotates the log while the test breaks it.
	h := startWorker(t, withStateDirectory(dir), withCheckpointInterval(time.Hour))
	metricsURL := "http://" + h.w.TelemetryAddr().String() + "/metrics"
	h.sendGRPC(t, deltaTokens("s-j", 0, 10, 40))
	if got := grepLines(get(t, metricsURL), "deltapipeline_worker_wal_writable"); got != "deltapipeline_worker_wal_writable 1" {
		t.Errorf("healthy worker: %q", got)
	}

	repair := statetest.BreakJournal(t, dir)
	client := pmetricotlp.NewGRPCClient(h.conn)
	_, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(deltaTokens("s-j", 10, 20, 2)))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("export with a broken journal: %v, want Unavailable so the sender retries", err)
	}
	code, body := readyz(t, h)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "write-ahead log cannot make requests durable") {
		t.Errorf("/readyz with a broken journal = %d %q, want 503 naming the write-ahead log", code, body)
	}
	scrape := get(t, metricsURL)
	if got := grepLines(scrape, "deltapipeline_worker_wal_writable"); got != "deltapipeline_worker_wal_writable 0" {
		t.Errorf("broken journal: %q", got)
	}
	if got := grepLines(scrape, `deltapipeline_worker_refused_requests_total{reason="journal"`); got == "" {
		t.Errorf("the refused request is not counted with reason journal:\n%s", grepLines(scrape, "deltapipeline_worker_refused_requests_total"))
	}

	// Once the volume accepts writes again, the next request moves the log
	// to a new segment: the worker is ready again without a restart.
	repair()
	h.sendGRPC(t, deltaTokens("s-j", 10, 20, 2))
	if code, body := readyz(t, h); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz after the volume recovered = %d %q", code, body)
	}
	if got := grepLines(get(t, metricsURL), "deltapipeline_worker_wal_writable"); got != "deltapipeline_worker_wal_writable 1" {
		t.Errorf("recovered journal: %q", got)
	}
}

func TestFailedCheckpointShowsInReadinessWithoutStoppingTraffic(t *testing.T) {
	dir := t.TempDir()
	h := startWorker(t, withStateDirectory(dir), withCheckpointInterval(20*time.Millisecond))
	metricsURL := "http://" + h.w.TelemetryAddr().String() + "/metrics"
	h.sendGRPC(t, deltaTokens("s-c", 0, 10, 40))

	// A directory where the checkpoint goes makes every rename onto it fail.
	ckpt := filepath.Join(dir, state.CheckpointFile)
	for {
		_ = os.Remove(ckpt) // a checkpoint written meanwhile is replaced by the directory
		if err := os.Mkdir(ckpt, 0o750); err == nil {
			break
		} else if !errors.Is(err, fs.ErrExist) {
			t.Fatal(err)
		}
	}
	failed := func(b string) bool { return strings.Contains(b, "\nwarning: the last ") }
	code, body := eventuallyReadyz(t, h, http.StatusOK, failed)
	if code != http.StatusOK || !failed(body) || !strings.Contains(body, "checkpoint(s) failed") {
		t.Fatalf("/readyz with failing checkpoints = %d %q, want 200 with a warning naming the checkpoint", code, body)
	}
	h.sendGRPC(t, deltaTokens("s-c", 10, 20, 2)) // still accepted: the log keeps it
	if got := grepLines(get(t, metricsURL), "deltapipeline_worker_checkpoint_consecutive_failures"); got == "deltapipeline_worker_checkpoint_consecutive_failures 0" || got == "" {
		t.Errorf("failing checkpoints: %q", got)
	}

	if err := os.Remove(ckpt); err != nil {
		t.Fatal(err)
	}
	if code, body := eventuallyReadyz(t, h, http.StatusOK, func(b string) bool { return b == "ready\n" }); body != "ready\n" {
		t.Errorf("/readyz after a checkpoint succeeded again = %d %q", code, body)
	}
	if got := grepLines(get(t, metricsURL), "deltapipeline_worker_checkpoint_consecutive_failures"); got != "deltapipeline_worker_checkpoint_consecutive_failures 0" {
		t.Errorf("after a successful checkpoint: %q", got)
	}
}
