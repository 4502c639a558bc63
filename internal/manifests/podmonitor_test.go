package manifests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

func hasContainerPort(spec corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func TestPodMonitorsSelectTheirTierAndScrapeANamedPort(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithPodMonitors(map[string]string{"release": "prom"}))
	if !PodMonitorsEnabled(p) {
		t.Fatal("WithPodMonitors did not enable them")
	}
	gateway, err := BuildGateway(p, Options{}, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	worker, err := BuildWorker(p, Options{}, Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		monitor *unstructured.Unstructured
		pods    corev1.PodTemplateSpec
	}{
		{GatewayPodMonitor(p), gateway.Deployment.Spec.Template},
		{WorkerPodMonitor(p), worker.StatefulSet.Spec.Template},
	} {
		m := tc.monitor
		if m.GroupVersionKind() != PodMonitorKind {
			t.Errorf("%s: kind %v", m.GetName(), m.GroupVersionKind())
		}
		if m.GetLabels()["release"] != "prom" || m.GetLabels()["app.kubernetes.io/instance"] != "claude" {
			t.Errorf("%s: labels %v lack the spec's or the pipeline's", m.GetName(), m.GetLabels())
		}
		if len(m.GetOwnerReferences()) != 1 || m.GetOwnerReferences()[0].Name != "claude" {
			t.Errorf("%s: owner references %v", m.GetName(), m.GetOwnerReferences())
		}
		selector, _, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
		if !labels.SelectorFromSet(selector).Matches(labels.Set(tc.pods.Labels)) {
			t.Errorf("%s: selector %v does not match the tier's pods %v", m.GetName(), selector, tc.pods.Labels)
		}
		endpoints, _, _ := unstructured.NestedSlice(m.Object, "spec", "podMetricsEndpoints")
		if len(endpoints) != 1 {
			t.Fatalf("%s: endpoints %v", m.GetName(), endpoints)
		}
		port, _ := endpoints[0].(map[string]any)["port"].(string)
		if !hasContainerPort(tc.pods.Spec, port) {
			t.Errorf("%s: scrapes port %q, which the tier's pods do not name", m.GetName(), port)
		}
		if _, ok := endpoints[0].(map[string]any)["interval"]; ok {
			t.Errorf("%s: an interval without spec.monitoring.podMonitor.interval", m.GetName())
		}
	}
	workerSelector, _, _ := unstructured.NestedStringMap(WorkerPodMonitor(p).Object, "spec", "selector", "matchLabels")
	if labels.SelectorFromSet(workerSelector).Matches(labels.Set(gateway.Deployment.Spec.Template.Labels)) {
		t.Error("the worker PodMonitor also selects gateway pods")
	}
}
