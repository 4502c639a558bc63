package controllers

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

// readScale reads the pipeline through its scale subresource, as kubectl
// scale and the HorizontalPodAutoscaler controller do.
func readScale(ctx context.Context, p *v1alpha1.DeltaPipeline) (*autoscalingv1.Scale, error) {
	return readScaleAs(ctx, k8sClient, p)
}

func readScaleAs(ctx context.Context, c client.Client, p *v1alpha1.DeltaPipeline) (*autoscalingv1.Scale, error) {
	scale := &autoscalingv1.Scale{}
	err := c.SubResource("scale").Get(ctx, p, scale)
	return scale, err
}

// writeScale sets the replicas through the scale subresource, retrying on
// conflicts with the operator's status writes.
func writeScale(ctx context.Context, p *v1alpha1.DeltaPipeline, replicas int32) {
	GinkgoHelper()
	Eventually(func() error {
		scale, err := readScale(ctx, p)
		if err != nil {
			return err
		}
		scale.Spec.Replicas = replicas
		return k8sClient.SubResource("scale").Update(ctx, p, client.WithSubResourceBody(scale))
	}).Should(Succeed())
}

func statefulSetReplicas(ctx context.Context, p *v1alpha1.DeltaPipeline) func() (*int32, error) {
	return func() (*int32, error) {
		sts, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
		return sts.Spec.Replicas, err
	}
}

var _ = Describe("Scaling the workers", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = createNamespace(ctx)
	})

	It("keeps a kubectl rollout restart's stamp on the pod templates it rewrites, so a later scale rolls no pod", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns))
		Eventually(statefulSetReplicas(ctx, p)).Should(HaveValue(Equal(int32(3))))
		waitForObject(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
		const stamp = "2026-12-01T18:00:00Z"
		// What kubectl rollout restart writes.
		restart := func(obj client.Object, template func() *corev1.PodTemplateSpec) {
			GinkgoHelper()
			Eventually(func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
					return err
				}
				t := template()
				if t.Annotations == nil {
					t.Annotations = map[string]string{}
				}
				t.Annotations[restartedAtAnnotation] = stamp
				return k8sClient.Update(ctx, obj)
			}).Should(Succeed())
		}
		sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: naming.WorkerStatefulSet(p)}}
		restart(sts, func() *corev1.PodTemplateSpec { return &sts.Spec.Template })
		gw := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: naming.GatewayDeployment(p)}}
		restart(gw, func() *corev1.PodTemplateSpec { return &gw.Spec.Template })

		writeScale(ctx, p, 4)
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Replicas = ptr.To[int32](3) })
		Eventually(statefulSetReplicas(ctx, p)).Should(HaveValue(Equal(int32(4))))
		Eventually(func() (*int32, error) {
			d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			return d.Spec.Replicas, err
		}).Should(HaveValue(Equal(int32(3))))
		got, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.Template.Annotations).To(HaveKeyWithValue(restartedAtAnnotation, stamp), "the workers' template after the scale")
		gwGot, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
		Expect(err).NotTo(HaveOccurred())
		Expect(gwGot.Spec.Template.Annotations).To(HaveKeyWithValue(restartedAtAnnotation, stamp), "the gateways' template after the change")
	})

	It("serves spec.worker.replicas, the StatefulSet's replicas and the worker pods' selector through the scale subresource", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns))
		Eventually(func() (autoscalingv1.ScaleStatus, error) {
			scale, err := readScale(ctx, p)
			return scale.Status, err
		}).Should(Equal(autoscalingv1.ScaleStatus{Replicas: 3, Selector: manifests.WorkerSelector(p)}))
		scale, err := readScale(ctx, p)
		Expect(err).NotTo(HaveOccurred())
		Expect(scale.Spec.Replicas).To(Equal(int32(3)), "the scale's spec is the defaulted spec.worker.replicas")
		Expect(scale.Status.Selector).To(Equal("app.kubernetes.io/component=worker,app.kubernetes.io/instance=claude,app.kubernetes.io/name=deltapipeline"))

		By("scaling to 5 as kubectl scale dpl claude --replicas 5 does")
		writeScale(ctx, p, 5)
		Expect(getPipeline(ctx, p).Spec.Worker.Replicas).To(HaveValue(Equal(int32(5))))
		Eventually(statefulSetReplicas(ctx, p)).Should(HaveValue(Equal(int32(5))))
		Eventually(func() (int32, error) {
			scale, err := readScale(ctx, p)
			return scale.Status.Replicas, err
		}).Should(Equal(int32(5)), "the scale's status follows the StatefulSet")
		Expect(getPipeline(ctx, p).Status.Workers.Summary).To(Equal("0/5"))

		By("refusing zero workers through the scale subresource as through the spec")
		scale, err = readScale(ctx, p)
		Expect(err).NotTo(HaveOccurred())
		scale.Spec.Replicas = 0
		err = k8sClient.SubResource("scale").Update(ctx, p, client.WithSubResourceBody(scale))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.worker.replicas"))
	})

	It("creates the workers' HPA on the pipeline, leaves spec.worker.replicas to it, and deletes only it when worker autoscaling is removed", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns,
			pipelinetest.WithAutoscaling(2, 6),
			pipelinetest.WithWorkerAutoscaling(3, 8, ptr.To[int32](70), nil)))
		Eventually(func() (int32, error) {
			h, err := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.WorkerHorizontalPodAutoscaler(p))
			return h.Spec.MaxReplicas, err
		}).Should(Equal(int32(8)))
		h, err := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.WorkerHorizontalPodAutoscaler(p))
		Expect(err).NotTo(HaveOccurred())
		expectControlledBy(h, p)
		Expect(h.Spec.ScaleTargetRef).To(Equal(autoscalingv2.CrossVersionObjectReference{
			APIVersion: "telemetry.deltapipeline.io/v1alpha1", Kind: "DeltaPipeline", Name: "claude",
		}), "the HPA scales the pipeline, never the StatefulSet")
		Expect(h.Spec.MinReplicas).To(HaveValue(Equal(int32(3))))
		Expect(h.Spec.Metrics).To(HaveLen(1))
		Expect(h.Spec.Metrics[0].Resource.Name).To(BeEquivalentTo("cpu"))
		Expect(h.Spec.Metrics[0].Resource.Target.AverageUtilization).To(HaveValue(Equal(int32(70))))
		Expect(h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds).To(HaveValue(Equal(int32(600))))
		Expect(h.Spec.Behavior.ScaleDown.Policies).To(Equal([]autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 300}}))
		Expect(h.Spec.Behavior.ScaleUp.StabilizationWindowSeconds).To(HaveValue(Equal(int32(60))))
		Expect(h.Spec.Behavior.ScaleUp.Policies).To(ConsistOf(
			autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 60},
			autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60}))

		By("keeping the gateway's own HPA on its Deployment")
		g, err := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.GatewayHorizontalPodAutoscaler(p))
		Expect(err).NotTo(HaveOccurred())
		Expect(g.Spec.ScaleTargetRef.Kind).To(Equal("Deployment"))
		Expect(g.Spec.ScaleTargetRef.Name).To(Equal(naming.GatewayDeployment(p)))

		By("following what the autoscaler writes through the scale subresource, without writing it back")
		writeScale(ctx, p, 6)
		Eventually(statefulSetReplicas(ctx, p)).Should(HaveValue(Equal(int32(6))))
		Consistently(func() *int32 { return getPipeline(ctx, p).Spec.Worker.Replicas }).Should(HaveValue(Equal(int32(6))))

		By("removing worker autoscaling")
		updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Autoscaling = nil })
		waitForDeletion(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.WorkerHorizontalPodAutoscaler(p))
		Consistently(func() error {
			_, err := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.GatewayHorizontalPodAutoscaler(p))
			return err
		}).Should(Succeed(), "the gateway's HPA stays")
		Expect(getPipeline(ctx, p).Spec.Worker.Replicas).To(HaveValue(Equal(int32(6))), "the last count the autoscaler chose stays in the spec")
		Expect(statefulSetReplicas(ctx, p)()).To(HaveValue(Equal(int32(6))))
	})

	It("lets the editor role of config/rbac scale a pipeline and the viewer role only read its scale", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns))
		asUser := func(roleFile string) client.Client {
			GinkgoHelper()
			raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", roleFile))
			Expect(err).NotTo(HaveOccurred())
			var role rbacv1.ClusterRole
			Expect(yaml.Unmarshal(raw, &role)).To(Succeed())
			// ClusterRoles are cluster-wide; the namespace keeps specs apart.
			role.Name = role.Name + "-" + ns
			Expect(k8sClient.Create(ctx, &role)).To(Succeed())
			user := role.Name + "-user"
			Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
			})).To(Succeed())
			cfg := rest.CopyConfig(restConfig)
			cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
			c, err := client.New(cfg, client.Options{Scheme: scheme})
			Expect(err).NotTo(HaveOccurred())
			return c
		}
		scaleAs := func(c client.Client, replicas int32) error {
			scale := &autoscalingv1.Scale{}
			if err := c.SubResource("scale").Get(ctx, p, scale); err != nil {
				return err
			}
			scale.Spec.Replicas = replicas
			return c.SubResource("scale").Update(ctx, p, client.WithSubResourceBody(scale))
		}

		viewer := asUser("viewer_role.yaml")
		// The binding reaches the authorizer's cache after a moment.
		Eventually(func() error { _, err := readScaleAs(ctx, viewer, p); return err }).Should(Succeed())
		Expect(scaleAs(viewer, 4)).To(Satisfy(apierrors.IsForbidden))

		editor := asUser("editor_role.yaml")
		Eventually(func() error {
			err := scaleAs(editor, 4)
			if apierrors.IsConflict(err) {
				return nil
			}
			return err
		}).Should(Succeed())
		Eventually(func() *int32 { return getPipeline(ctx, p).Spec.Worker.Replicas }).Should(HaveValue(Equal(int32(4))))
	})

	It("answers the kubectl commands of docs/api.md: kubectl scale dpl and kubectl get hpa", func() {
		p := createPipeline(ctx, pipelinetest.New("claude-code", ns, pipelinetest.WithWorkerAutoscaling(3, 12, nil, ptr.To[int32](80))))
		waitForObject(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.WorkerHorizontalPodAutoscaler(p))
		// make envtest builds kubectl next to kube-apiserver.
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		Expect(kubectl).To(BeAnExistingFile(), "run `make envtest`, which builds kubectl into KUBEBUILDER_ASSETS")
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(kubeconfig, testEnv.KubeConfig, 0o600)).To(Succeed())
		run := func(args ...string) string {
			GinkgoHelper()
			out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...)...).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "kubectl %v:\n%s", args, out)
			return string(out)
		}

		Expect(run("get", "hpa", "claude-code-worker")).To(MatchRegexp(`claude-code-worker\s+DeltaPipeline/claude-code\s+.*\s3\s+12\s`))
		Expect(run("scale", "dpl", "claude-code", "--replicas", "5")).To(ContainSubstring("deltapipeline.telemetry.deltapipeline.io/claude-code scaled"))
		Expect(getPipeline(ctx, p).Spec.Worker.Replicas).To(HaveValue(Equal(int32(5))))
		Eventually(func() string {
			return run("get", "dpl", "claude-code", "-o", `jsonpath={.spec.worker.replicas} {.status.workers.replicas} {.status.workers.selector}`)
		}).Should(Equal("5 5 app.kubernetes.io/component=worker,app.kubernetes.io/instance=claude-code,app.kubernetes.io/name=deltapipeline"))
	})

	DescribeTable("refuses invalid worker autoscaling with a message naming the field",
		func(want string, opts ...pipelinetest.Option) {
			err := k8sClient.Create(ctx, pipelinetest.New("claude", ns, opts...))
			Expect(err).To(HaveOccurred(), "the API server accepted an invalid pipeline")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("a minimum above the maximum", "spec.worker.autoscaling.minReplicas (default 3) must not be greater than maxReplicas",
			pipelinetest.WithWorkerAutoscaling(5, 4, ptr.To[int32](70), nil)),
		Entry("a maximum below the defaulted minimum", "spec.worker.autoscaling.minReplicas (default 3) must not be greater than maxReplicas",
			func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Worker.Autoscaling = &v1alpha1.WorkerAutoscalingSpec{MaxReplicas: 2, TargetCPUUtilizationPercentage: ptr.To[int32](70)}
			}),
		Entry("no utilization target", "spec.worker.autoscaling must set at least one of targetCPUUtilizationPercentage and targetMemoryUtilizationPercentage",
			pipelinetest.WithWorkerAutoscaling(3, 6, nil, nil)),
		Entry("a memory target above 100 %", "spec.worker.autoscaling.targetMemoryUtilizationPercentage",
			pipelinetest.WithWorkerAutoscaling(3, 6, nil, ptr.To[int32](150))),
		Entry("the loadBalancing router", "spec.worker.autoscaling needs spec.gateway.router deltapipeline: rescaling resets the moved series with the upstream load_balancing exporter; state hand-off needs the deltapipeline router",
			pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithWorkerAutoscaling(3, 6, ptr.To[int32](70), nil)),
	)

	It("refuses switching an autoscaled pipeline to the loadBalancing router", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithWorkerAutoscaling(3, 6, nil, ptr.To[int32](80))))
		// A status write of the operator in between is a conflict, not the
		// refusal: retry until the API server judges the change itself.
		var err error
		Eventually(func() bool {
			current := getPipeline(ctx, p)
			current.Spec.Gateway.Router = v1alpha1.GatewayRouterLoadBalancing
			err = k8sClient.Update(ctx, current)
			return apierrors.IsConflict(err)
		}).Should(BeFalse())
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		Expect(err.Error()).To(ContainSubstring("state hand-off needs the deltapipeline router"))
		Expect(getPipeline(ctx, p).Spec.Gateway.Router).To(Equal(v1alpha1.GatewayRouterDeltaPipeline))
	})
})
