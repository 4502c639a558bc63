package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestChartShipsNoDashboardsOrRulesByDefault(t *testing.T) {
	objects := decodeObjects(t, renderChart(t))
	if rules := objectsOfKind(objects, "PrometheusRule"); len(rules) != 0 {
		t.Errorf("PrometheusRule rendered by default; it needs the prometheus-operator CRDs and must be opt-in")
	}
	for _, cm := range objectsOfKind(objects, "ConfigMap") {
		if _, ok := cm.GetLabels()["grafana_dashboard"]; ok {
			t.Errorf("dashboard ConfigMap %s rendered by default", cm.GetName())
		}
	}
}

func TestChartDashboardsAreTheGeneratedJSONForTheSidecar(t *testing.T) {
	objects := decodeObjects(t, renderChart(t, withValuesFile(customValuesFile())))
	files, err := filepath.Glob(filepath.Join(chartDir, "dashboards", "*.json"))
	if err != nil || len(files) != 2 {
		t.Fatalf("the chart holds dashboards %v (%v), want 2: run make dashboards", files, err)
	}
	for _, file := range files {
		base := filepath.Base(file)
		cm := findObject(t, objects, "ConfigMap", "dpl-operator-dashboard-"+strings.TrimSuffix(base, ".json"))
		if got := cm.GetLabels()["grafana_dashboard"]; got != "1" {
			t.Errorf("%s: label grafana_dashboard %q, want \"1\"", cm.GetName(), got)
		}
		if got := cm.GetLabels()["team"]; got != "observability" {
			t.Errorf("%s: dashboards.labels missing (team=%q)", cm.GetName(), got)
		}
		if got := cm.GetAnnotations()["grafana_folder"]; got != "Telemetry pipelines" {
			t.Errorf("%s: folder annotation %q, want the dashboards.folder value", cm.GetName(), got)
		}
		data := nestedString(t, cm.Object, "data", base)
		var shipped, generated map[string]any
		if err := json.Unmarshal([]byte(data), &shipped); err != nil {
			t.Fatalf("%s: data %s is not JSON: %v", cm.GetName(), base, err)
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &generated); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(shipped, generated) {
			t.Errorf("%s: the ConfigMap's dashboard differs from %s", cm.GetName(), file)
		}
	}
}

func TestChartPrometheusRuleIsTheCheckedRuleFile(t *testing.T) {
	objects := decodeObjects(t, renderChart(t, withValuesFile(customValuesFile())))
	rule := findObject(t, objects, "PrometheusRule", "dpl-operator")
	if got := rule.GetLabels()["release"]; got != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule label release %q, want the alertRules.labels value", got)
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "alert-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	spec := nestedMap(t, rule.Object, "spec")
	if !reflect.DeepEqual(normalize(t, spec), normalize(t, file)) {
		t.Errorf("the PrometheusRule's spec differs from files/alert-rules.yaml, the file promtool checks")
	}
	if groups, _ := spec["groups"].([]any); len(groups) == 0 {
		t.Error("the PrometheusRule holds no rule group")
	}
}
