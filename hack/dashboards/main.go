// Command dashboards writes what internal/monitoring describes into the
// repository: the Grafana dashboards as JSON into the chart, the alert rules
// as a Prometheus rule file into the chart (the PrometheusRule template
// includes it), and the rules' promtool unit tests. `make dashboards` runs
// it; `make verify-generated` fails when the committed files differ. With
// --previews it renders the preview pictures of docs/ from the panel results
// test/dashboards recorded (`make dashboard-previews`).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/deltapipeline/deltapipeline/internal/monitoring"
)

func main() {
	chartDir := flag.String("chart-dir", "charts/deltapipeline-operator", "the Helm chart to write dashboards/ and files/alert-rules.yaml into")
	testsPath := flag.String("rule-tests", "test/alerts/alert-rules.test.yaml", "the promtool rule test file to write")
	previews := flag.String("previews", "", "instead, render the preview pictures from this record of panel results (`make dashboards-test DASHBOARD_RECORD=...`)")
	previewDir := flag.String("preview-dir", "docs/images", "where the preview pictures go")
	flag.Parse()
	if *previews != "" {
		if err := writePreviews(*previews, *previewDir); err != nil {
			fmt.Fprintln(os.Stderr, "dashboards:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*chartDir, *testsPath); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
}

func run(chartDir, testsPath string) error {
	dashDir := filepath.Join(chartDir, "dashboards")
	if err := os.MkdirAll(dashDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dashDir, err)
	}
	for _, d := range monitoring.Dashboards() {
		out, err := d.JSON()
		if err != nil {
			return err
		}
		if err := write(filepath.Join(dashDir, d.File), out); err != nil {
			return err
		}
	}
	alerts := monitoring.Alerts()
	rules, err := monitoring.RulesYAML(alerts)
	if err != nil {
		return err
	}
	rulesPath := filepath.Join(chartDir, "files", "alert-rules.yaml")
	if err := write(rulesPath, rules); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(testsPath), rulesPath)
	if err != nil {
		return fmt.Errorf("locating the rule file from the tests: %w", err)
	}
	tests, err := monitoring.RuleTestsYAML(alerts, filepath.ToSlash(rel))
	if err != nil {
		return err
	}
	return write(testsPath, tests)
}

func write(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
