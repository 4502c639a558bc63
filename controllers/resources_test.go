package controllers

import (
	"context"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

// qosClass is the kubelet's QoS class of a pod, by the documented rule
// (kubernetes.io/docs/concepts/workloads/pods/pod-qos): BestEffort when no
// container requests or limits CPU or memory, Guaranteed when every container
// has CPU and memory limits equal to its requests (an unset request defaults
// to its limit), Burstable otherwise.
func qosClass(spec corev1.PodSpec) corev1.PodQOSClass {
	Expect(spec.Resources).To(BeNil(), "pod-level resources change the rule; the operator sets none")
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	anySet, allGuaranteed := false, true
	for _, c := range containers {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			request, hasRequest := c.Resources.Requests[name]
			limit, hasLimit := c.Resources.Limits[name]
			if (hasRequest && !request.IsZero()) || (hasLimit && !limit.IsZero()) {
				anySet = true
			}
			if !hasLimit || (hasRequest && request.Cmp(limit) != 0) {
				allGuaranteed = false
			}
		}
	}
	switch {
	case !anySet:
		return corev1.PodQOSBestEffort
	case allGuaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

// tierPodSpecs reads the stored gateway and worker pod templates.
func tierPodSpecs(ctx context.Context, p *v1alpha1.DeltaPipeline) (gateway, worker corev1.PodSpec) {
	GinkgoHelper()
	waitForObject(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
	waitForObject(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
	d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
	Expect(err).NotTo(HaveOccurred())
	s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
	Expect(err).NotTo(HaveOccurred())
	return d.Spec.Template.Spec, s.Spec.Template.Spec
}

// haveResources matches a container's resources by value, as the API server
// compares quantities.
func haveResources(requests, limits corev1.ResourceList) OmegaMatcher {
	return WithTransform(func(r corev1.ResourceRequirements) bool {
		return equality.Semantic.DeepEqual(r.Requests, requests) && equality.Semantic.DeepEqual(r.Limits, limits)
	}, BeTrue())
}

var _ = Describe("pod resources", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	DescribeTable("the samples' pods are Burstable, not BestEffort, and the status shows their resources",
		func(file string) {
			ns := createNamespace(ctx)
			data, err := os.ReadFile(filepath.Join("..", "config", "samples", file))
			Expect(err).NotTo(HaveOccurred())
			var p v1alpha1.DeltaPipeline
			Expect(yaml.UnmarshalStrict(data, &p)).To(Succeed())
			p.Namespace = ns
			createPipeline(ctx, &p)

			gateway, worker := tierPodSpecs(ctx, &p)
			Expect(qosClass(gateway)).To(Equal(corev1.PodQOSBurstable), "gateway pods")
			Expect(qosClass(worker)).To(Equal(corev1.PodQOSBurstable), "worker pods")
			for _, c := range append(gateway.Containers, worker.Containers...) {
				Expect(c.Resources.Requests).To(And(HaveKey(corev1.ResourceCPU), HaveKey(corev1.ResourceMemory)), "container %s: the scheduler and a CPU HPA need requests", c.Name)
				Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory), "container %s: the memory_limiter and GOMEMLIMIT follow the limit", c.Name)
			}

			Eventually(func() bool {
				s := getPipeline(ctx, &p).Status
				return equality.Semantic.DeepEqual(s.Gateway.Resources, &gateway.Containers[0].Resources) &&
					equality.Semantic.DeepEqual(s.Workers.Resources, &worker.Containers[0].Resources)
			}).Should(BeTrue(), "status.gateway.resources and status.workers.resources are the rendered containers' resources")
			Eventually(condition(ctx, &p, v1alpha1.ConditionWorkerMemoryFits)).Should(haveCondition(ctx, &p, metav1.ConditionTrue, v1alpha1.ReasonStreamsFitMemory))
		},
		Entry("Claude Code to Amazon Managed Service for Prometheus", "telemetry_v1alpha1_deltapipeline_claudecode_amp.yaml"),
		Entry("OTLP", "telemetry_v1alpha1_deltapipeline_otlp.yaml"),
	)

	It("keeps every default the user does not set, field by field, and follows changes", func() {
		ns := createNamespace(ctx)
		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithMaxStreams(10_000),
			pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("cpu", "2")}),
			pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("cpu", "250m")})))
		gateway, worker := tierPodSpecs(ctx, p)
		Expect(worker.Containers[0].Resources).To(haveResources(
			pipelinetest.Resources("cpu", "100m", "memory", "68Mi"),
			pipelinetest.Resources("cpu", "2", "memory", "331Mi")), "the CPU limit is the user's, everything else the default for 10 000 streams")
		Expect(gateway.Containers[0].Resources).To(haveResources(
			pipelinetest.Resources("cpu", "250m", "memory", "128Mi"),
			pipelinetest.Resources("memory", "512Mi")), "the CPU request is the user's")

		By("removing the worker's memory limit with a zero quantity")
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
			p.Spec.Worker.Resources.Limits = pipelinetest.Resources("cpu", "2", "memory", "0")
		})
		Eventually(func() corev1.ResourceRequirements {
			_, worker := tierPodSpecs(ctx, p)
			return worker.Containers[0].Resources
		}).Should(haveResources(pipelinetest.Resources("cpu", "100m", "memory", "68Mi"), pipelinetest.Resources("cpu", "2")))
		Eventually(condition(ctx, p, v1alpha1.ConditionWorkerMemoryFits)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonNoMemoryLimit))

		By("lowering the gateway's memory limit below the default request, which follows it, as does the memory_limiter")
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
			p.Spec.Gateway.Resources.Limits = pipelinetest.Resources("memory", "100Mi")
		})
		Eventually(func() corev1.ResourceRequirements {
			gateway, _ := tierPodSpecs(ctx, p)
			return gateway.Containers[0].Resources
		}).Should(haveResources(pipelinetest.Resources("cpu", "250m", "memory", "100Mi"), pipelinetest.Resources("memory", "100Mi")))
		Eventually(func() (string, error) {
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			return cm.Data[manifests.GatewayConfigFile], err
		}).Should(And(ContainSubstring("limit_mib: 80\n"), ContainSubstring("spike_limit_mib: 20\n")))
		Eventually(func() corev1.ResourceRequirements {
			return ptr.Deref(getPipeline(ctx, p).Status.Gateway.Resources, corev1.ResourceRequirements{})
		}).Should(haveResources(pipelinetest.Resources("cpu", "250m", "memory", "100Mi"), pipelinetest.Resources("memory", "100Mi")))
		eventuallyWritesNothing(ctx, p)
	})

	It("reports a memory limit too small for maxStreams, with a Warning Event, until it fits", func() {
		ns := createNamespace(ctx)
		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithMaxStreams(5_000_000),
			pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "1Gi")})))
		Eventually(condition(ctx, p, v1alpha1.ConditionWorkerMemoryFits)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonMaxStreamsExceedMemory))
		message := condition(ctx, p, v1alpha1.ConditionWorkerMemoryFits)().Message
		Expect(message).To(And(
			ContainSubstring("spec.worker.conversion.maxStreams 5000000"),
			ContainSubstring("spec.worker.resources.limits.memory is 1024Mi"),
			ContainSubstring("OOM-killed")))
		Eventually(warningEvents(ctx, p, v1alpha1.ReasonMaxStreamsExceedMemory)).Should(ConsistOf(message))

		By("rendering the user's limit anyway: the condition warns, it does not override")
		_, worker := tierPodSpecs(ctx, p)
		Expect(worker.Containers[0].Resources.Limits.Memory().String()).To(Equal("1Gi"))

		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Conversion.MaxStreams = ptr.To[int32](500_000) })
		Eventually(condition(ctx, p, v1alpha1.ConditionWorkerMemoryFits)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonStreamsFitMemory))
		Expect(warningEvents(ctx, p, v1alpha1.ReasonMaxStreamsExceedMemory)()).To(HaveLen(1), "one Event for one problem")
	})
})
