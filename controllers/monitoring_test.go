package controllers

import (
	"context"
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

// envPodMonitorCRD names prometheus-operator's PodMonitor CRD file, which
// `make go-test` takes from the module proxy (PODMONITOR_CRD_SOURCE).
const envPodMonitorCRD = "PODMONITOR_CRD"

func podMonitor(ctx context.Context, p *v1alpha1.DeltaPipeline, name string) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(manifests.PodMonitorKind)
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, obj)
	return obj, err
}

// The specs run in order: the suite's API server starts without
// prometheus-operator's CRDs, the second installs the PodMonitor CRD.
var _ = Describe("PodMonitors for the tiers' telemetry", Ordered, func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = createNamespace(ctx)
	})

	It("reports the missing CRD in the Monitoring condition and runs the pipeline without PodMonitors", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithPodMonitors(nil)))
		waitForObjects(ctx, p)
		Eventually(condition(ctx, p, v1alpha1.ConditionMonitoring)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonPodMonitorCRDMissing))
		Expect(condition(ctx, p, v1alpha1.ConditionMonitoring)().Message).To(ContainSubstring("PodMonitor CRD"))
		Eventually(warningEvents(ctx, p, v1alpha1.ReasonPodMonitorCRDMissing)).ShouldNot(BeEmpty())
		markTiersReady(ctx, p)
		Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonAvailable),
			"a missing monitoring CRD does not make the pipeline unready")
	})

	It("renders a PodMonitor per tier once the CRD exists, keeps it as built, and removes both when turned off", func() {
		crdPath := os.Getenv(envPodMonitorCRD)
		Expect(crdPath).NotTo(BeEmpty(), "%s must name the PodMonitor CRD: run `make go-test`, which takes it from the module proxy", envPodMonitorCRD)
		_, err := envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{Paths: []string{crdPath}, ErrorIfPathMissing: true})
		Expect(err).NotTo(HaveOccurred())

		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithPodMonitors(map[string]string{"release": "kube-prometheus-stack"})))
		waitForObjects(ctx, p)
		Eventually(condition(ctx, p, v1alpha1.ConditionMonitoring)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonPodMonitorsApplied))

		for _, tier := range []struct{ name, component, port string }{
			{naming.GatewayPodMonitor(p), naming.ComponentGateway, "metrics"},
			{naming.WorkerPodMonitor(p), naming.ComponentWorker, "telemetry"},
		} {
			pm, err := podMonitor(ctx, p, tier.name)
			Expect(err).NotTo(HaveOccurred(), "PodMonitor %s", tier.name)
			expectControlledBy(pm, p)
			Expect(pm.GetLabels()).To(HaveKeyWithValue("release", "kube-prometheus-stack"))
			matchLabels, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
			Expect(matchLabels).To(Equal(naming.SelectorLabels(p, tier.component)))
			endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
			Expect(endpoints).To(HaveLen(1))
			Expect(endpoints[0]).To(HaveKeyWithValue("port", tier.port))
		}

		By("putting back a PodMonitor whose endpoints were edited")
		pm, err := podMonitor(ctx, p, naming.WorkerPodMonitor(p))
		Expect(err).NotTo(HaveOccurred())
		Expect(unstructured.SetNestedSlice(pm.Object, []any{map[string]any{"port": "otlp-grpc"}}, "spec", "podMetricsEndpoints")).To(Succeed())
		Expect(k8sClient.Update(ctx, pm)).To(Succeed())
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Monitoring.PodMonitor.Interval = "15s" })
		Eventually(func() (any, error) {
			pm, err := podMonitor(ctx, p, naming.WorkerPodMonitor(p))
			endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
			if len(endpoints) != 1 {
				return nil, err
			}
			return endpoints[0], err
		}).Should(And(HaveKeyWithValue("port", "telemetry"), HaveKeyWithValue("interval", "15s")))

		By("turning monitoring off")
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Monitoring.PodMonitor.Enabled = false })
		for _, name := range []string{naming.GatewayPodMonitor(p), naming.WorkerPodMonitor(p)} {
			Eventually(func() bool {
				_, err := podMonitor(ctx, p, name)
				return apierrors.IsNotFound(err)
			}).Should(BeTrue(), "PodMonitor %s removed", name)
		}
		Eventually(condition(ctx, p, v1alpha1.ConditionMonitoring)).Should(BeNil())
	})
})
