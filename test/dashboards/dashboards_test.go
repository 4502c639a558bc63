// Package dashboards runs every query of the shipped Grafana dashboards
// against a real Prometheus holding what a real pipeline delivered: the
// end-to-end harness (envtest, operator, upstream collector gateways,
// workers, load generator) writes into bin/prometheus over remote write,
// and the same Prometheus scrapes the gateways' and workers' telemetry. Each
// query must return data, and every usage total must equal what the load
// generator recorded as sent. `make dashboards-test` runs it.
package dashboards

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
	"github.com/deltapipeline/deltapipeline/internal/monitoring"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

var recordPath = flag.String("record", "", "write every panel's query results to this JSON file (input of `go run ./hack/dashboards --previews`)")

// rateInterval stands in for Grafana's $__rate_interval: four scrape
// intervals, as Grafana computes it for a 1 s scrape.
const rateInterval = 4 * harness.PrometheusScrapeInterval

func TestEveryPanelQueryReturnsDataAndUsageTotalsMatchTheLedger(t *testing.T) {
	binaries, err := harness.BinariesFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	runDir := t.TempDir()
	crdDir, err := filepath.Abs(filepath.Join("..", "..", "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}

	prom, err := harness.StartPrometheus(ctx, os.Getenv(harness.EnvPrometheus), filepath.Join(runDir, "prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := prom.Stop(30 * time.Second); err != nil {
			t.Errorf("stopping Prometheus: %v", err)
		}
	})
	pipeline, err := harness.Start(ctx,
		harness.WithDir(runDir),
		harness.WithCRDDir(crdDir),
		harness.WithBinaries(binaries),
		harness.WithGateways(2),
		harness.WithWorkers(3),
		harness.WithConversionInterval(time.Second),
		harness.WithRemoteWrite(prom.RemoteWriteURL()),
		harness.WithLog(testLog{t}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pipeline.Stop(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("stopping the pipeline: %v", err)
		}
	})
	if err := prom.SetTargets(pipeline.ScrapeTargets()); err != nil {
		t.Fatal(err)
	}

	start := time.Now().Add(-time.Second).Truncate(time.Second)
	run, err := pipeline.StartLoad(harness.Load{Name: "dashboards", Sessions: 40, SharedSessions: 8, Rounds: 12, ExportInterval: time.Second, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := run.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	loadEnd := time.Now()
	if sent.FailedExports != 0 {
		t.Fatalf("the load generator lost %d exports; its ledger would not be exact", sent.FailedExports)
	}
	ledger, err := parseLedger(sent)
	if err != nil {
		t.Fatal(err)
	}

	// Wait until Prometheus holds every series at its sent total, then a few
	// scrapes more so that the self-metrics cover the whole run.
	wantTokens := ledger.total(monitoring.LedgerTotal{Metric: monitoring.ClaudeTokens})
	wantSeries := countClaudeSeries(ledger)
	deadline := time.Now().Add(90 * time.Second)
	for {
		now := time.Now()
		held, lastErr := heldSeries(ctx, prom, now)
		if lastErr == nil && held == wantSeries {
			got, err := queryTotals(ctx, prom, monitoringTokensQuery(), start, now)
			if err == nil && equalTotals(got, wantTokens) {
				break
			}
			lastErr = err
		}
		if now.After(deadline) {
			t.Fatalf("after 90s Prometheus holds %d of the %d Claude Code series sent, or not their totals (last error: %v)", held, wantSeries, lastErr)
		}
		time.Sleep(time.Second)
	}
	// Every worker writes its first checkpoint one state.checkpointInterval
	// (1 minute as rendered) after it started; the checkpoint panels show
	// nothing before.
	for {
		vec, err := prom.Query(ctx, `count(`+monitoring.WorkerCheckpointSuccess+` > 0)`, time.Now())
		if err == nil && len(vec) == 1 && int(vec[0].Value) == len(pipeline.Workers) {
			break
		}
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("not every worker wrote a checkpoint within 2 minutes (last error: %v)", err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(5 * harness.PrometheusScrapeInterval)
	// Whole seconds, like start and mid: $__range is a whole number of
	// seconds, so windows ending at end start exactly at start or mid.
	end := time.Now().Truncate(time.Second)

	var (
		panels, queries, withData, totalsChecked int
		record                                   = map[string][]recordedQuery{}
	)
	for _, d := range monitoring.Dashboards() {
		for _, p := range d.Panels() {
			panels++
			for _, q := range p.Queries {
				queries++
				expr := expand(q.Expr, start, end)
				if p.Kind == monitoring.TimeSeries {
					m, err := prom.QueryRange(ctx, expr, start, end, time.Second)
					if err != nil {
						t.Errorf("%s / %s: %v", d.Title, p.Title, err)
						continue
					}
					if !hasValue(m) {
						t.Errorf("%s / %s: %s returned no data", d.Title, p.Title, expr)
						continue
					}
					withData++
					record[d.UID] = append(record[d.UID], recordedQuery{Panel: p.Title, Legend: q.Legend, Matrix: m})
					continue
				}
				got, err := queryTotals(ctx, prom, q.Expr, start, end)
				if err != nil {
					t.Errorf("%s / %s: %v", d.Title, p.Title, err)
					continue
				}
				if len(got) == 0 {
					t.Errorf("%s / %s: %s returned no data", d.Title, p.Title, expr)
					continue
				}
				withData++
				record[d.UID] = append(record[d.UID], recordedQuery{Panel: p.Title, Legend: q.Legend, Totals: got})
				if q.Total == nil {
					continue
				}
				want := ledger.total(*q.Total)
				if !equalTotals(got, want) {
					t.Errorf("%s / %s: the panel shows %v, the load generator sent %v", d.Title, p.Title, got, want)
					continue
				}
				totalsChecked++
			}
		}
	}
	// A total over two halves of the run adds up to the whole: the second
	// half counts the series that already existed from their value at the
	// split, not from zero.
	mid := start.Add(loadEnd.Sub(start) / 2).Truncate(time.Second)
	firstHalf, err1 := queryTotals(ctx, prom, monitoringTokensQuery(), start, mid)
	secondHalf, err2 := queryTotals(ctx, prom, monitoringTokensQuery(), mid, end)
	whole := ledger.total(monitoring.LedgerTotal{Metric: monitoring.ClaudeTokens})
	if err1 != nil || err2 != nil {
		t.Errorf("tokens over the halves of the run: %v, %v", err1, err2)
	} else if split := map[string]float64{"{}": firstHalf["{}"] + secondHalf["{}"]}; !equalTotals(split, whole) {
		t.Errorf("tokens over [start, mid] %v plus [mid, end] %v = %v, the load generator sent %v", firstHalf, secondHalf, split, whole)
	} else if firstHalf["{}"] == 0 || secondHalf["{}"] == 0 {
		t.Errorf("the split at %s does not cut the run: halves %v and %v", mid.Format(time.TimeOnly), firstHalf, secondHalf)
	}
	t.Logf("FIGURES dashboards: %d panels, %d queries, %d returned data, %d usage totals equal to the ledger (%d series, %d points sent)",
		panels, queries, withData, totalsChecked, len(sent.Series), sent.Points)
	if *recordPath != "" {
		out, err := json.MarshalIndent(record, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*recordPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// recordedQuery is one query's result, as the preview generator reads it.
type recordedQuery struct {
	Panel  string             `json:"panel"`
	Legend string             `json:"legend"`
	Matrix model.Matrix       `json:"matrix,omitempty"`
	Totals map[string]float64 `json:"totals,omitempty"`
}

// heldSeries counts the Claude Code series Prometheus holds (every one was
// written within the lookback window).
func heldSeries(ctx context.Context, prom *harness.Prometheus, end time.Time) (int, error) {
	vec, err := prom.Query(ctx, `count({__name__=~"claude_code_.+"})`, end)
	if err != nil || len(vec) == 0 {
		return 0, err
	}
	return int(vec[0].Value), nil
}

func monitoringTokensQuery() string {
	return monitoring.ClaudeCodeUsage().Rows[0].Panels[0].Queries[0].Expr
}

// expand replaces Grafana's variables: every template variable is "All"
// (the regex .*), $__range is the run's window.
func expand(expr string, start, end time.Time) string {
	r := strings.NewReplacer(
		"$__rate_interval", model.Duration(rateInterval).String(),
		"$__range", model.Duration(end.Sub(start).Truncate(time.Second)).String(),
		`"$user"`, `".*"`, `"$model"`, `".*"`, `"$session"`, `".*"`, `"$namespace"`, `".*"`,
	)
	return r.Replace(expr)
}

// queryTotals runs an instant query at end and keys each sample by its
// labels, rendered as the ledger's group keys are.
func queryTotals(ctx context.Context, prom *harness.Prometheus, expr string, start, end time.Time) (map[string]float64, error) {
	vec, err := prom.Query(ctx, expand(expr, start, end), end)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range vec {
		labels := map[string]string{}
		for k, v := range s.Metric {
			labels[string(k)] = string(v)
		}
		out[groupKey(labels)] = float64(s.Value)
	}
	return out, nil
}

func hasValue(m model.Matrix) bool {
	for _, s := range m {
		for _, v := range s.Values {
			if !math.IsNaN(float64(v.Value)) {
				return true
			}
		}
	}
	return false
}

// ledger is the load generator's record with each series key parsed.
type ledger []ledgerSeries

type ledgerSeries struct {
	name   string
	labels map[string]string
	value  float64
}

func parseLedger(sent totals.Totals) (ledger, error) {
	var out ledger
	for key, v := range sent.Series {
		name, labels, err := harness.ParseSeriesKey(key)
		if err != nil {
			return nil, fmt.Errorf("load generator ledger: %w", err)
		}
		out = append(out, ledgerSeries{name: name, labels: labels, value: v})
	}
	return out, nil
}

func countClaudeSeries(l ledger) int {
	n := 0
	for _, s := range l {
		if strings.HasPrefix(s.name, "claude_code_") {
			n++
		}
	}
	return n
}

// total sums the ledger as the panel's query sums Prometheus.
func (l ledger) total(t monitoring.LedgerTotal) map[string]float64 {
	out := map[string]float64{}
	for _, s := range l {
		if s.name != t.Metric {
			continue
		}
		match := true
		for k, v := range t.Match {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		group := map[string]string{}
		for _, k := range t.By {
			if v := s.labels[k]; v != "" {
				group[k] = v
			}
		}
		out[groupKey(group)] += s.value
	}
	return out
}

func groupKey(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// equalTotals compares per group. Prometheus and the ledger add the same
// values in different orders, so float sums may differ in the last bits;
// anything beyond a relative 1e-9 is a real difference.
func equalTotals(got, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || math.Abs(g-w) > 1e-9*math.Max(math.Abs(g), math.Abs(w)) {
			return false
		}
	}
	return true
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
