package monitoring

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var metricToken = regexp.MustCompile(`\b(?:claude_code|deltapipeline|otelcol|kube)_[a-zA-Z0-9_]+`)

// usedMetrics returns the metric names an expression mentions; histogram
// series are reduced to their family name.
func usedMetrics(expr string) []string {
	var out []string
	for _, m := range metricToken.FindAllString(expr, -1) {
		out = append(out, strings.TrimSuffix(m, "_bucket"))
	}
	return out
}

func TestEveryQueryAndRuleUsesOnlyListedMetricNames(t *testing.T) {
	check := func(where, expr string) {
		names := usedMetrics(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, n := range names {
			if !slices.Contains(MetricNames, n) {
				t.Errorf("%s: metric %s is not in MetricNames", where, n)
			}
		}
	}
	for _, d := range Dashboards() {
		for _, p := range d.Panels() {
			if len(p.Queries) == 0 {
				t.Errorf("%s / %s has no query", d.Title, p.Title)
			}
			for _, q := range p.Queries {
				check(d.Title+" / "+p.Title, q.Expr)
			}
		}
		for _, v := range d.Variables {
			check(d.Title+" variable "+v.Name, v.Metric)
		}
	}
	for _, a := range Alerts() {
		check(a.Name, a.Expr)
	}
}

func TestDashboardsBuildWithUniqueTitlesAndQueriesOnTheDataSourceVariable(t *testing.T) {
	for _, d := range Dashboards() {
		out, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), `"uid": "${datasource}"`) {
			t.Errorf("%s: panels do not use the data source variable", d.Title)
		}
		seen := map[string]bool{}
		for _, p := range d.Panels() {
			if seen[p.Title] {
				t.Errorf("%s: two panels titled %q", d.Title, p.Title)
			}
			seen[p.Title] = true
		}
	}
}

func TestEveryUsageTotalNamesWhatItSums(t *testing.T) {
	totals := 0
	for _, p := range ClaudeCodeUsage().Panels() {
		for _, q := range p.Queries {
			if p.Kind == TimeSeries {
				if q.Total != nil {
					t.Errorf("%s: a time series is not a total", p.Title)
				}
				continue
			}
			if q.Total == nil {
				t.Errorf("%s: a usage total without a ledger description cannot be checked", p.Title)
				continue
			}
			totals++
			if !strings.Contains(q.Expr, q.Total.Metric) {
				t.Errorf("%s: the query does not read %s", p.Title, q.Total.Metric)
			}
			for _, by := range q.Total.By {
				if !strings.Contains(q.Expr, "by ("+strings.Join(q.Total.By, ", ")+")") {
					t.Errorf("%s: the query does not group by %s", p.Title, by)
				}
			}
		}
	}
	if totals == 0 {
		t.Fatal("no usage totals")
	}
}

func TestEveryAlertHasARunbookSectionAndTestsBothWays(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range Alerts() {
		if a.Summary == "" || a.Description == "" {
			t.Errorf("%s: summary and description are required", a.Name)
		}
		if !strings.Contains(string(doc), "\n### "+a.Name+"\n") {
			t.Errorf("%s: docs/operations.md has no section \"### %s\", the target of its runbook_url", a.Name, a.Name)
		}
	}
	if _, err := RuleTestsYAML(Alerts(), "rules.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestRuleTestsRejectAnAlertTestedOnlyOneWay(t *testing.T) {
	a := Alerts()[0]
	a.Tests = a.Tests[:1]
	if _, err := RuleTestsYAML([]Alert{a}, "rules.yaml"); err == nil {
		t.Fatal("an alert with only a firing test was accepted")
	}
}

func TestExpandFillsLabelReferences(t *testing.T) {
	got := expand("Worker {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.missing }})", map[string]string{"namespace": "ns", "pod": "w-0"})
	if want := "Worker ns/w-0 ()"; got != want {
		t.Fatalf("expand = %q, want %q", got, want)
	}
}
