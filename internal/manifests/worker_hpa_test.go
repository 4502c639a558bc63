package manifests

import (
	"path/filepath"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

func TestGoldenWorkerHorizontalPodAutoscaler(t *testing.T) {
	for name, p := range map[string]*v1alpha1.DeltaPipeline{
		"worker-autoscaling-cpu":        pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerAutoscaling(3, 12, ptr.To[int32](70), nil)),
		"worker-autoscaling-cpu-memory": pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerAutoscaling(4, 20, ptr.To[int32](60), ptr.To[int32](80))),
	} {
		t.Run(name, func(t *testing.T) {
			w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
			if err != nil {
				t.Fatal(err)
			}
			if w.HPA == nil {
				t.Fatal("no HPA with spec.worker.autoscaling set")
			}
			out, err := yaml.Marshal(w.HPA)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join("testdata", name+".worker-hpa.yaml"), out)
		})
	}
}

func TestWorkerHorizontalPodAutoscalerScalesThePipeline(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerReplicas(5), pipelinetest.WithWorkerAutoscaling(3, 12, nil, ptr.To[int32](75)))
	w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	h := w.HPA
	want := autoscalingv2.CrossVersionObjectReference{APIVersion: "telemetry.deltapipeline.io/v1alpha1", Kind: "DeltaPipeline", Name: "claude"}
	if h.Spec.ScaleTargetRef != want {
		t.Errorf("scaleTargetRef = %+v, want the pipeline %+v", h.Spec.ScaleTargetRef, want)
	}
	if h.Name != naming.WorkerHorizontalPodAutoscaler(p) || h.Labels[naming.LabelComponent] != naming.ComponentWorker {
		t.Errorf("name %q labels %v, want %s in the worker tier", h.Name, h.Labels, naming.WorkerHorizontalPodAutoscaler(p))
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource.Name != corev1.ResourceMemory || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 75 {
		t.Errorf("metrics = %+v, want memory at 75 %% only", h.Spec.Metrics)
	}
	// The autoscaler writes spec.worker.replicas; the StatefulSet follows it
	// and is never left to the autoscaler.
	if r := w.StatefulSet.Spec.Replicas; r == nil || *r != 5 {
		t.Errorf("StatefulSet replicas = %v, want spec.worker.replicas 5", r)
	}
}

func TestWorkerAutoscalingMinimumDefaultsToTheWorkerReplicasDefault(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerAutoscaling(1, 6, ptr.To[int32](70), nil))
	p.Spec.Worker.Autoscaling.MinReplicas = nil
	h := WorkerHorizontalPodAutoscaler(p)
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != WorkerReplicas(pipelinetest.Stored("claude", "telemetry")) {
		t.Errorf("minReplicas = %v, want the default of spec.worker.replicas", h.Spec.MinReplicas)
	}
}

func TestNoWorkerHorizontalPodAutoscalerWithoutAutoscaling(t *testing.T) {
	w, err := BuildWorker(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithAutoscaling(2, 6)), DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	if w.HPA != nil {
		t.Errorf("worker HPA %s without spec.worker.autoscaling", w.HPA.Name)
	}
	for _, o := range w.Objects() {
		if _, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			t.Errorf("the worker tier's objects hold HPA %s without spec.worker.autoscaling", o.GetName())
		}
	}
}

func TestWorkerSelectorIsTheStatefulSetSelector(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry")
	w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := WorkerSelector(p), metav1.FormatLabelSelector(w.StatefulSet.Spec.Selector); got != want {
		t.Errorf("WorkerSelector = %q, want the StatefulSet's %q", got, want)
	}
	const want = "app.kubernetes.io/component=worker,app.kubernetes.io/instance=claude,app.kubernetes.io/name=deltapipeline"
	if got := WorkerSelector(p); got != want {
		t.Errorf("WorkerSelector = %q, want %q", got, want)
	}
}
