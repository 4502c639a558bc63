package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
	"github.com/deltapipeline/deltapipeline/internal/ring"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

var _ = Describe("DeltaPipeline reconciler", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = createNamespace(ctx)
	})

	It("lists every worker pod in the load_balancing exporter's static resolver by default, which needs no API access", func() {
		p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithWorkerReplicas(2)))
		Expect(p.Spec.Routing.Resolver).To(Equal(v1alpha1.ResolverStatic))
		waitForObjects(ctx, p)
		Eventually(func() (string, error) {
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			return cm.Data[manifests.GatewayConfigFile], err
		}).Should(And(
			ContainSubstring("- claude-worker-0.claude-worker."+ns+".svc:4317"),
			ContainSubstring("- claude-worker-1.claude-worker."+ns+".svc:4317"),
			Not(ContainSubstring("claude-worker-2."))))
		_, err := fetch(ctx, p, &rbacv1.Role{}, naming.GatewayResolverRole(p))
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no resolver Role for the static resolver")
	})

	Context("a new pipeline with default settings, so that every owned kind exists", func() {
		var p *v1alpha1.DeltaPipeline
		BeforeEach(func() {
			p = createPipeline(ctx, pipelinetest.New("claude", ns))
			waitForObjects(ctx, p)
		})

		It("creates every object of both tiers, controlled by the pipeline", func() {
			for _, o := range ownedObjects(p) {
				obj, err := fetch(ctx, p, o.obj, o.name)
				Expect(err).NotTo(HaveOccurred(), "reading %s", o)
				expectControlledBy(obj, p)
				Expect(obj.GetLabels()).To(HaveKeyWithValue(naming.LabelInstance, p.Name), "labels of %s", o)
				Expect(obj.GetLabels()).To(HaveKeyWithValue(naming.LabelManagedBy, naming.ManagedBy), "labels of %s", o)
			}
			_, err := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.GatewayHorizontalPodAutoscaler(p))
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no HPA without spec.gateway.autoscaling, got %v", err)
		})

		It("runs the gateway from its ConfigMap with the defaulted replicas and the manager's gateway image", func() {
			d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(2))))
			c := d.Spec.Template.Spec.Containers[0]
			Expect(c.Image).To(Equal(testOptions.GatewayImage))
			Expect(c.Args).To(ConsistOf("--config=/conf/collector.yaml"))
			Expect(c.ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromInt32(manifests.CollectorHealthPort)))
			Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
			Expect(d.Spec.Template.Spec.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
			Expect(d.Spec.Template.Annotations).To(HaveKey(naming.ConfigHashAnnotation))
			Expect(d.Spec.Template.Spec.Volumes[0].ConfigMap.Name).To(Equal(naming.GatewayConfigMap(p)))

			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			config := cm.Data[manifests.GatewayConfigFile]
			Expect(config).To(ContainSubstring("deltapipeline_router:"))
			Expect(config).To(ContainSubstring("name: " + naming.MembershipConfigMap(p)))
			Expect(config).To(ContainSubstring("routing_key: streamID"))
		})

		It("publishes the worker membership for the router, with an epoch that grows only when the workers change", func() {
			membership := func() (ring.Membership, error) {
				cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.MembershipConfigMap(p))
				if err != nil {
					return ring.Membership{}, err
				}
				return ring.ParseMembership([]byte(cm.Data[manifests.MembershipKey]))
			}
			var first ring.Membership
			Eventually(func(g Gomega) {
				m, err := membership()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(m.Members).To(HaveLen(3))
				first = m
			}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
			Expect(first.Members[2]).To(Equal(ring.Member{Name: naming.WorkerPod(p, 2), Endpoint: naming.WorkerPodHost(p, ns, 2) + ":4317", Peer: naming.WorkerPodHost(p, ns, 2) + ":4319"}))
			Eventually(func() *v1alpha1.MembershipStatus {
				var got v1alpha1.DeltaPipeline
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
					return nil
				}
				return got.Status.Membership
			}).WithTimeout(eventually).WithPolling(poll).Should(HaveValue(Equal(v1alpha1.MembershipStatus{Epoch: int64(first.Epoch), Workers: 3})))

			// A change elsewhere in the spec keeps the epoch.
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Replicas = ptr.To[int32](3) })
			Consistently(func() (uint64, error) { m, err := membership(); return m.Epoch, err }).
				WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(first.Epoch))
		})
		It("runs the workers as a StatefulSet behind a headless Service with a state volume each", func() {
			s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(s.Spec.Replicas).To(HaveValue(Equal(int32(3))))
			Expect(s.Spec.ServiceName).To(Equal(naming.WorkerHeadlessService(p)))
			Expect(s.Spec.PodManagementPolicy).To(Equal(appsv1.ParallelPodManagement))
			Expect(s.Spec.VolumeClaimTemplates).To(HaveLen(1))
			Expect(s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()).To(Equal("1Gi"))
			Expect(s.Spec.Template.Spec.TerminationGracePeriodSeconds).To(HaveValue(Equal(int64(manifests.WorkerTerminationGracePeriodSeconds))))
			c := s.Spec.Template.Spec.Containers[0]
			Expect(c.Image).To(Equal(testOptions.WorkerImage), "spec.worker.image is empty, so the manager's --worker-image applies")
			Expect(c.Args).To(ConsistOf("--config=" + manifests.WorkerConfigPath))
			Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", manifests.WorkerStateDir)))

			svc, err := fetch(ctx, p, &corev1.Service{}, naming.WorkerHeadlessService(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))

			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			cfg, err := workerconfig.Parse([]byte(cm.Data[manifests.WorkerConfigKey]))
			Expect(err).NotTo(HaveOccurred(), "the worker must accept the rendered configuration")
			Expect(cfg.State.Directory).To(Equal(manifests.WorkerStateDir))
		})

		It("grants the gateways read access to the membership ConfigMap and nothing else", func() {
			role, err := fetch(ctx, p, &rbacv1.Role{}, naming.GatewayResolverRole(p))
			Expect(err).NotTo(HaveOccurred())
			var granted []string
			for _, rule := range role.Rules {
				Expect(rule.Verbs).To(ConsistOf("get", "list", "watch"))
				for _, g := range rule.APIGroups {
					for _, r := range rule.Resources {
						for _, name := range rule.ResourceNames {
							granted = append(granted, g+"/"+r+"/"+name)
						}
					}
				}
			}
			Expect(granted).To(ConsistOf("/configmaps/" + naming.MembershipConfigMap(p)))

			binding, err := fetch(ctx, p, &rbacv1.RoleBinding{}, naming.GatewayResolverRoleBinding(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(binding.RoleRef.Name).To(Equal(role.Name))
			Expect(binding.Subjects).To(ConsistOf(HaveField("Name", naming.GatewayServiceAccount(p))))
		})

		It("drains a stopping gateway before SIGTERM and rolls the gateways without losing a ready replica", func() {
			d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			Expect(err).NotTo(HaveOccurred())
			c := d.Spec.Template.Spec.Containers[0]
			Expect(c.Lifecycle).NotTo(BeNil())
			Expect(c.Lifecycle.PreStop).NotTo(BeNil())
			Expect(c.Lifecycle.PreStop.Sleep).To(HaveValue(HaveField("Seconds", int64(manifests.GatewayPreStopDelaySeconds))), "the API server kept the pre-stop sleep action")
			Expect(d.Spec.Template.Spec.TerminationGracePeriodSeconds).To(HaveValue(Equal(int64(manifests.GatewayTerminationGracePeriodSeconds))))
			Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RollingUpdateDeploymentStrategyType))
			Expect(d.Spec.Strategy.RollingUpdate.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(0))))
			Expect(d.Spec.Strategy.RollingUpdate.MaxSurge).To(HaveValue(Equal(intstr.FromInt32(1))))
		})

		It("lets only the pipeline's gateways send OTLP to its workers and leaves scraping and egress open", func() {
			worker, err := fetch(ctx, p, &networkingv1.NetworkPolicy{}, naming.WorkerNetworkPolicy(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(worker.Spec.PodSelector.MatchLabels).To(Equal(naming.SelectorLabels(p, naming.ComponentWorker)))
			Expect(worker.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress))
			Expect(worker.Spec.Egress).To(BeEmpty())
			Expect(worker.Spec.Ingress).To(ConsistOf(
				SatisfyAll(
					HaveField("From", ConsistOf(HaveField("PodSelector", HaveValue(HaveField("MatchLabels", Equal(naming.SelectorLabels(p, naming.ComponentGateway))))))),
					HaveField("Ports", ConsistOf(HaveField("Port", HaveValue(Equal(intstr.FromInt32(manifests.OTLPGRPCPort)))), HaveField("Port", HaveValue(Equal(intstr.FromInt32(manifests.OTLPHTTPPort)))))),
				),
				SatisfyAll(
					HaveField("From", ConsistOf(HaveField("PodSelector", HaveValue(HaveField("MatchLabels", Equal(naming.SelectorLabels(p, naming.ComponentWorker))))))),
					HaveField("Ports", ConsistOf(HaveField("Port", HaveValue(Equal(intstr.FromInt32(4319)))))),
				),
				SatisfyAll(
					HaveField("From", BeEmpty()),
					HaveField("Ports", ConsistOf(HaveField("Port", HaveValue(Equal(intstr.FromInt32(8888)))))),
				),
			))

			gateway, err := fetch(ctx, p, &networkingv1.NetworkPolicy{}, naming.GatewayNetworkPolicy(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(gateway.Spec.PodSelector.MatchLabels).To(Equal(naming.SelectorLabels(p, naming.ComponentGateway)))
			Expect(gateway.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress))
			for _, rule := range gateway.Spec.Ingress {
				Expect(rule.From).To(BeEmpty(), "without allowedSources and telemetryFrom the gateway accepts anyone: %+v", rule)
			}
		})

		It("allows one gateway and one worker pod to be disrupted at a time", func() {
			for _, name := range []string{naming.GatewayPodDisruptionBudget(p), naming.WorkerPodDisruptionBudget(p)} {
				pdb, err := fetch(ctx, p, &policyv1.PodDisruptionBudget{}, name)
				Expect(err).NotTo(HaveOccurred())
				Expect(pdb.Spec.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(1))), "PodDisruptionBudget %s", name)
			}
		})

		It("reports the generation, the endpoints and progressing tiers, then Ready once both tiers are", func() {
			Eventually(condition(ctx, p, v1alpha1.ConditionGatewayAvailable)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonProgressing))
			Eventually(condition(ctx, p, v1alpha1.ConditionWorkersAvailable)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonProgressing))
			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonNotReady))
			Eventually(condition(ctx, p, v1alpha1.ConditionRoutingBalanced)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonSpreadRouting))
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonResolved))

			status := getPipeline(ctx, p).Status
			Expect(status.ObservedGeneration).To(Equal(getPipeline(ctx, p).Generation))
			Expect(status.Endpoints.GRPC).To(Equal(naming.GatewayService(p) + "." + ns + ".svc:4317"))
			Expect(status.Endpoints.HTTP).To(Equal("http://" + naming.GatewayService(p) + "." + ns + ".svc:4318"))
			Expect(status.Gateway).To(Equal(v1alpha1.TierStatus{Replicas: 2, ReadyReplicas: 0, Summary: "0/2", Resources: status.Gateway.Resources}))
			Expect(status.Workers).To(Equal(v1alpha1.WorkerTierStatus{
				TierStatus: v1alpha1.TierStatus{Replicas: 3, ReadyReplicas: 0, Summary: "0/3", Resources: status.Workers.Resources},
				Selector:   manifests.WorkerSelector(p),
			}))
			Expect(equality.Semantic.DeepEqual(status.Gateway.Resources, ptr.To(manifests.GatewayResources(p)))).To(BeTrue(), "status.gateway.resources %v", status.Gateway.Resources)
			Expect(equality.Semantic.DeepEqual(status.Workers.Resources, ptr.To(manifests.WorkerResources(p)))).To(BeTrue(), "status.workers.resources %v", status.Workers.Resources)

			markTiersReady(ctx, p)

			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonAvailable))
			Expect(condition(ctx, p, v1alpha1.ConditionGatewayAvailable)()).To(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonAvailable))
			Expect(condition(ctx, p, v1alpha1.ConditionWorkersAvailable)()).To(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonAvailable))
			status = getPipeline(ctx, p).Status
			Expect(status.Gateway.Summary).To(Equal("2/2"))
			Expect(status.Workers.Summary).To(Equal("3/3"))
		})

		It("carries the new generation in every condition after a spec change", func() {
			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(Not(BeNil()))
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To[int32](5) })
			generation := getPipeline(ctx, p).Generation
			Eventually(func() int64 { return getPipeline(ctx, p).Status.ObservedGeneration }).Should(Equal(generation))
			for _, c := range getPipeline(ctx, p).Status.Conditions {
				Expect(c.ObservedGeneration).To(Equal(generation), "condition %s", c.Type)
			}
			Expect(getPipeline(ctx, p).Status.Workers.Replicas).To(Equal(int32(5)))
		})

		It("puts back owned objects that were edited or deleted", func() {
			By("editing the gateway configuration")
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			want := cm.Data[manifests.GatewayConfigFile]
			cm.Data[manifests.GatewayConfigFile] = "receivers: {}\n"
			cm.Data["extra.yaml"] = "x: 1\n"
			Expect(k8sClient.Update(ctx, cm)).To(Succeed())
			Eventually(func() map[string]string {
				cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
				Expect(err).NotTo(HaveOccurred())
				return cm.Data
			}).Should(Equal(map[string]string{manifests.GatewayConfigFile: want}))

			By("changing the worker image and replicas")
			s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			Expect(err).NotTo(HaveOccurred())
			s.Spec.Replicas = ptr.To[int32](1)
			s.Spec.Template.Spec.Containers[0].Image = "example.com/not-the-worker:1"
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
			Eventually(func(g Gomega) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Spec.Replicas).To(HaveValue(Equal(int32(3))))
				g.Expect(s.Spec.Template.Spec.Containers[0].Image).To(Equal(testOptions.WorkerImage))
			}).Should(Succeed())

			By("removing a rule from the resolver Role")
			role, err := fetch(ctx, p, &rbacv1.Role{}, naming.GatewayResolverRole(p))
			Expect(err).NotTo(HaveOccurred())
			wantRules := role.Rules
			role.Rules = role.Rules[:1]
			Expect(k8sClient.Update(ctx, role)).To(Succeed())
			Eventually(func() []rbacv1.PolicyRule {
				role, err := fetch(ctx, p, &rbacv1.Role{}, naming.GatewayResolverRole(p))
				Expect(err).NotTo(HaveOccurred())
				return role.Rules
			}).Should(Equal(wantRules))

			By("deleting objects of both tiers")
			for _, o := range []ownedObject{
				{&corev1.Service{}, naming.WorkerHeadlessService(p)},
				{&appsv1.Deployment{}, naming.GatewayDeployment(p)},
				{&corev1.ConfigMap{}, naming.WorkerConfigMap(p)},
				{&rbacv1.RoleBinding{}, naming.GatewayResolverRoleBinding(p)},
			} {
				obj, err := fetch(ctx, p, o.obj, o.name)
				Expect(err).NotTo(HaveOccurred())
				oldUID := obj.GetUID()
				Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
				Eventually(func() (string, error) {
					obj, err := fetch(ctx, p, o.obj.DeepCopyObject().(client.Object), o.name)
					if err != nil {
						return "", err
					}
					return string(obj.GetUID()), nil
				}).ShouldNot(Or(BeEmpty(), Equal(string(oldUID))), "%s is recreated", o)
			}
		})

		It("keeps labels and annotations that others add to its objects", func() {
			svc, err := fetch(ctx, p, &corev1.Service{}, naming.GatewayService(p))
			Expect(err).NotTo(HaveOccurred())
			svc.Annotations["example.com/owner-team"] = "observability"
			Expect(k8sClient.Update(ctx, svc)).To(Succeed())
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Gateway.Service.Annotations = map[string]string{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}
			})
			Eventually(func() map[string]string {
				svc, err := fetch(ctx, p, &corev1.Service{}, naming.GatewayService(p))
				Expect(err).NotTo(HaveOccurred())
				return svc.Annotations
			}).Should(And(
				HaveKeyWithValue("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal"),
				HaveKeyWithValue("example.com/owner-team", "observability"),
			))

			By("removing the annotation from the spec removes it from the Service only")
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Service.Annotations = nil })
			Eventually(func() map[string]string {
				svc, err := fetch(ctx, p, &corev1.Service{}, naming.GatewayService(p))
				Expect(err).NotTo(HaveOccurred())
				return svc.Annotations
			}).Should(And(
				Not(HaveKey("service.beta.kubernetes.io/aws-load-balancer-scheme")),
				HaveKeyWithValue("example.com/owner-team", "observability"),
			))
		})

		It("writes nothing when reconciling an unchanged pipeline", func() {
			markTiersReady(ctx, p)
			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonAvailable))

			// The running controller settles: nothing changes any more.
			before := resourceVersions(ctx, p)
			Consistently(func() map[string]string { return resourceVersions(ctx, p) }).Should(Equal(before))

			// A second reconciler whose every request is counted reconciles
			// the settled pipeline once more.
			c, counter := countingClient()
			recorder := events.NewFakeRecorder(10)
			forced := &DeltaPipelineReconciler{Client: c, APIReader: c, Recorder: recorder, Options: testOptions}
			result, err := forced.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
			Expect(err).NotTo(HaveOccurred())
			Expect(result).To(Equal(ctrl.Result{}))

			Expect(counter.reads()).To(BeNumerically(">", 0), "the forced reconcile must have read the pipeline's objects")
			Expect(counter.writes()).To(BeEmpty(), "requests other than GET")
			Expect(recorder.Events).To(BeEmpty())
			Expect(resourceVersions(ctx, p)).To(Equal(before))
		})

		It("rolls the pods of a tier whose configuration changed, and only those", func() {
			gatewayHash := func() string {
				d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
				Expect(err).NotTo(HaveOccurred())
				return d.Spec.Template.Annotations[naming.ConfigHashAnnotation]
			}
			workerHash := func() string {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				Expect(err).NotTo(HaveOccurred())
				return s.Spec.Template.Annotations[naming.ConfigHashAnnotation]
			}
			gw, wk := gatewayHash(), workerHash()
			Expect(gw).NotTo(BeEmpty())
			Expect(wk).NotTo(BeEmpty())

			By("changing the emit interval, which only the workers read")
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Worker.Conversion.Interval = &metav1.Duration{Duration: 15 * time.Second}
			})
			Eventually(workerHash).ShouldNot(Equal(wk))
			Eventually(func() string {
				cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))
				Expect(err).NotTo(HaveOccurred())
				return cm.Data[manifests.WorkerConfigKey]
			}).Should(ContainSubstring("15s"))
			Expect(gatewayHash()).To(Equal(gw))

			By("routing by session.id, which only the gateways read")
			wk = workerHash()
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Routing = v1alpha1.RoutingSpec{Key: v1alpha1.RoutingKeyAttributes, Attributes: []string{"session.id"}, Resolver: v1alpha1.ResolverStatic}
			})
			// The workers know which streams are theirs from the routing key.
			Eventually(gatewayHash).ShouldNot(Equal(gw))
			Eventually(workerHash).ShouldNot(Equal(wk))

			By("adding workers, which the router follows from the membership without a roll")
			gw, wk = gatewayHash(), workerHash()
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Replicas = ptr.To[int32](4) })
			Eventually(func() (*int32, error) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				return s.Spec.Replicas, err
			}).Should(HaveValue(Equal(int32(4))), "the new worker's pod starts before it joins the ring")
			markTiersReady(ctx, p)
			Eventually(func() (string, error) {
				cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.MembershipConfigMap(p))
				return cm.Data[manifests.MembershipKey], err
			}).Should(ContainSubstring(naming.WorkerPod(p, 3)))
			Consistently(gatewayHash).Should(Equal(gw))
			Expect(workerHash()).To(Equal(wk), "the workers follow the membership too")
		})
	})

	DescribeTable("a settled pipeline is reconciled again without any write",
		func(opts ...pipelinetest.Option) {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, opts...))
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonResolved))
			waitForObject(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			markTiersReady(ctx, p)
			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonAvailable))

			writes, recorded := forcedReconcileWrites(ctx, p)
			Expect(writes).To(BeEmpty(), "requests other than GET")
			Expect(recorded).To(BeEmpty())
		},
		Entry("with an autoscaled gateway", pipelinetest.WithAutoscaling(2, 6)),
		Entry("with autoscaled workers", pipelinetest.WithWorkerAutoscaling(3, 8, ptr.To[int32](70), ptr.To[int32](80))),
		Entry("with the load_balancing exporter and the dns resolver", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverDNS)),
		Entry("without persistence", pipelinetest.WithPersistence(false)),
		Entry("with a Prometheus pull endpoint", pipelinetest.WithPrometheusExporter(9464)),
		Entry("with a LoadBalancer gateway Service", func(p *v1alpha1.DeltaPipeline) {
			p.Spec.Gateway.Service = v1alpha1.GatewayServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}}
		}),
		Entry("with SigV4, IRSA and attributes routing", pipelinetest.WithSigV4("us-east-1"), pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes, "session.id"),
			pipelinetest.WithServiceAccountAnnotation("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/amp-writer")),
		Entry("with scheduling and resources", func(p *v1alpha1.DeltaPipeline) {
			p.Spec.Worker.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
			p.Spec.Worker.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "telemetry", Effect: corev1.TaintEffectNoSchedule}}
			p.Spec.Worker.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.5"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			}
			p.Spec.Gateway.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}
		}),
	)

	Context("optional features", func() {
		It("creates the HPA while autoscaling is set, leaves replicas to it, and deletes it when autoscaling is turned off", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithAutoscaling(2, 6)))
			Eventually(func() (int32, error) {
				h, err := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.GatewayHorizontalPodAutoscaler(p))
				return h.Spec.MaxReplicas, err
			}).Should(Equal(int32(6)))
			h, _ := fetch(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.GatewayHorizontalPodAutoscaler(p))
			expectControlledBy(h, p)
			Expect(h.Spec.ScaleTargetRef.Name).To(Equal(naming.GatewayDeployment(p)))

			By("keeping the replica count the autoscaler chose")
			Eventually(func() error {
				d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
				if err != nil {
					return err
				}
				d.Spec.Replicas = ptr.To[int32](5)
				return k8sClient.Update(ctx, d)
			}).Should(Succeed())
			Consistently(func() (*int32, error) {
				d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
				return d.Spec.Replicas, err
			}).Should(HaveValue(Equal(int32(5))))

			By("turning autoscaling off")
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Autoscaling = nil })
			waitForDeletion(ctx, p, &autoscalingv2.HorizontalPodAutoscaler{}, naming.GatewayHorizontalPodAutoscaler(p))
			Eventually(func() (*int32, error) {
				d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
				return d.Spec.Replicas, err
			}).Should(HaveValue(Equal(int32(2))), "spec.gateway.replicas applies again")
		})

		It("drops the state volume when persistence is turned off", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns))
			Eventually(func() (int, error) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				return len(s.Spec.VolumeClaimTemplates), err
			}).Should(Equal(1))
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Worker.Persistence.Enabled = ptr.To(false) })
			Eventually(func(g Gomega) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Spec.VolumeClaimTemplates).To(BeEmpty())
				g.Expect(s.Spec.Template.Spec.Containers[0].VolumeMounts).NotTo(ContainElement(HaveField("MountPath", manifests.WorkerStateDir)))
				expectControlledBy(s, p)
			}).Should(Succeed())
		})

		It("opens the Prometheus port on the workers only while the pull exporter is configured", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithPrometheusExporter(9464)))
			ports := func() ([]int32, error) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				var out []int32
				if err == nil {
					for _, port := range s.Spec.Template.Spec.Containers[0].Ports {
						out = append(out, port.ContainerPort)
					}
				}
				return out, err
			}
			Eventually(ports).Should(ContainElement(int32(9464)))
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Exporters.Prometheus = nil })
			Eventually(ports).ShouldNot(ContainElement(int32(9464)))
		})

		It("removes the resolver Role and RoleBinding with the dns resolver, which needs no API access", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverK8s)))
			waitForObjects(ctx, p)
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Routing.Resolver = v1alpha1.ResolverDNS })
			waitForDeletion(ctx, p, &rbacv1.Role{}, naming.GatewayResolverRole(p))
			_, err := fetch(ctx, p, &rbacv1.RoleBinding{}, naming.GatewayResolverRoleBinding(p))
			Expect(apierrors.IsNotFound(err)).To(BeTrue())
			Eventually(func() (string, error) {
				cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
				return cm.Data[manifests.GatewayConfigFile], err
			}).Should(ContainSubstring("dns:"))
		})

		It("deletes the NetworkPolicies when they are turned off and puts them back when turned on", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns))
			waitForObject(ctx, p, &networkingv1.NetworkPolicy{}, naming.GatewayNetworkPolicy(p))
			waitForObject(ctx, p, &networkingv1.NetworkPolicy{}, naming.WorkerNetworkPolicy(p))
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.NetworkPolicy.Enabled = ptr.To(false) })
			waitForDeletion(ctx, p, &networkingv1.NetworkPolicy{}, naming.GatewayNetworkPolicy(p))
			waitForDeletion(ctx, p, &networkingv1.NetworkPolicy{}, naming.WorkerNetworkPolicy(p))
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.NetworkPolicy.Enabled = ptr.To(true) })
			waitForObject(ctx, p, &networkingv1.NetworkPolicy{}, naming.WorkerNetworkPolicy(p))
		})

		It("limits OTLP to the gateways to spec.gateway.allowedSources and scraping to spec.networkPolicy.telemetryFrom", func() {
			monitoring := map[string]string{"kubernetes.io/metadata.name": "monitoring"}
			p := createPipeline(ctx, pipelinetest.New("claude", ns,
				pipelinetest.WithPrometheusExporter(9464),
				pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("10.20.0.0/16", "10.20.99.0/24")),
				pipelinetest.WithTelemetryFrom(pipelinetest.NamespaceSource(monitoring))))
			sourcesOf := func(name string, port int32) func() ([]networkingv1.NetworkPolicyPeer, error) {
				return func() ([]networkingv1.NetworkPolicyPeer, error) {
					policy, err := fetch(ctx, p, &networkingv1.NetworkPolicy{}, name)
					if err != nil {
						return nil, err
					}
					for _, rule := range policy.Spec.Ingress {
						for _, rulePort := range rule.Ports {
							if rulePort.Port.IntValue() == int(port) {
								return rule.From, nil
							}
						}
					}
					return nil, fmt.Errorf("%s admits nothing on port %d", name, port)
				}
			}
			Eventually(sourcesOf(naming.GatewayNetworkPolicy(p), manifests.OTLPGRPCPort)).Should(ConsistOf(
				HaveField("IPBlock", HaveValue(Equal(networkingv1.IPBlock{CIDR: "10.20.0.0/16", Except: []string{"10.20.99.0/24"}})))))
			scrapers := ConsistOf(HaveField("NamespaceSelector", HaveValue(HaveField("MatchLabels", Equal(monitoring)))))
			Eventually(sourcesOf(naming.GatewayNetworkPolicy(p), manifests.CollectorMetricsPort)).Should(scrapers)
			Eventually(sourcesOf(naming.WorkerNetworkPolicy(p), 8888)).Should(scrapers)
			Eventually(sourcesOf(naming.WorkerNetworkPolicy(p), 9464)).Should(scrapers)

			By("clearing allowedSources")
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.AllowedSources = nil })
			Eventually(sourcesOf(naming.GatewayNetworkPolicy(p), manifests.OTLPGRPCPort)).Should(BeEmpty())
		})

		It("annotates the workers' ServiceAccount for IRSA", func() {
			const roleARN = "arn:aws:iam::111122223333:role/amp-writer"
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithSigV4("us-east-1"), pipelinetest.WithServiceAccountAnnotation("eks.amazonaws.com/role-arn", roleARN)))
			Eventually(func() (map[string]string, error) {
				sa, err := fetch(ctx, p, &corev1.ServiceAccount{}, naming.WorkerServiceAccount(p))
				return sa.Annotations, err
			}).Should(HaveKeyWithValue("eks.amazonaws.com/role-arn", roleARN))
			Eventually(func() (string, error) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				return s.Spec.Template.Spec.ServiceAccountName, err
			}).Should(Equal(naming.WorkerServiceAccount(p)))
		})
	})

	Context("extra gateway configuration", func() {
		const extraProcessors = `{
			"processors": {
				"filter/drop-debug": {"metrics": {"metric": ["name == \"debug.calls\""]}},
				"resource/cluster": {"attributes": [{"key": "k8s.cluster.name", "value": "prod", "action": "upsert"}]}
			},
			"exporters": {},
			"service": {"pipelines": {"metrics": {"processors": ["resource/cluster", "filter/drop-debug"], "exporters": []}}}
		}`

		It("runs the user's processors, in order, between memory_limiter and the routing exporter", func() {
			cfg, err := pipelinetest.GatewayConfig(extraProcessors)
			Expect(err).NotTo(HaveOccurred())
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithGatewayConfig(cfg)))
			Eventually(condition(ctx, p, v1alpha1.ConditionConfigValid)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonValid))
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(cm.Data[manifests.GatewayConfigFile]).To(MatchRegexp(`(?s)processors:\s*- memory_limiter\s*- resource/cluster\s*- filter/drop-debug`))

			By("settling without further writes: the stored configuration round-trips unchanged")
			waitForObjects(ctx, p)
			eventuallyWritesNothing(ctx, p)
		})

		It("refuses user exporters with a False ConfigValid condition and an Event, keeping the running gateway configuration", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns))
			waitForObjects(ctx, p)
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))
			Expect(err).NotTo(HaveOccurred())

			debugExporter, err := pipelinetest.GatewayConfig(`{"exporters": {"debug": {}}, "service": {"pipelines": {"metrics": {"exporters": ["debug"]}}}}`)
			Expect(err).NotTo(HaveOccurred())
			updatePipeline(ctx, p, pipelinetest.WithGatewayConfig(debugExporter))
			Eventually(condition(ctx, p, v1alpha1.ConditionConfigValid)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonInvalidGatewayConfig))
			Expect(condition(ctx, p, v1alpha1.ConditionConfigValid)().Message).To(ContainSubstring("spec.gateway.config.exporters"))
			Eventually(warningEvents(ctx, p, v1alpha1.ReasonInvalidGatewayConfig)).Should(ContainElement(ContainSubstring("spec.gateway.config.exporters")))
			Expect(condition(ctx, p, v1alpha1.ConditionReady)()).To(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonNotReady))
			Consistently(resourceVersion(ctx, p, &corev1.ConfigMap{}, naming.GatewayConfigMap(p))).Should(Equal(cm.ResourceVersion))

			By("removing the exporter")
			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) { p.Spec.Gateway.Config = nil })
			Eventually(condition(ctx, p, v1alpha1.ConditionConfigValid)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonValid))
		})
	})

	Context("a pipeline reading a CA certificate from a ConfigMap that does not exist", func() {
		It("reports the ConfigMap and the field, then mounts it once it exists", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithTLSCAFromConfigMap("backend-ca", "ca.crt")))
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonConfigMapNotFound))
			message := condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message
			Expect(message).To(ContainSubstring(`"backend-ca"`))
			Expect(message).To(ContainSubstring("spec.exporters.prometheusRemoteWrite.tls.ca.configMapKeyRef"))
			Eventually(warningEvents(ctx, p, v1alpha1.ReasonConfigMapNotFound)).ShouldNot(BeEmpty())

			Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "backend-ca", Namespace: ns},
				Data:       map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----\n"},
			})).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonResolved))
			Eventually(func(g Gomega) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("ConfigMap.Name", "backend-ca")))
			}).Should(Succeed())
		})
	})

	Context("routing", func() {
		It("warns that routing by resource puts every stream on one worker", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithRouting(v1alpha1.RoutingKeyResource)))
			Eventually(condition(ctx, p, v1alpha1.ConditionRoutingBalanced)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonHotSpotRouting))
			Expect(condition(ctx, p, v1alpha1.ConditionRoutingBalanced)().Message).To(ContainSubstring("spec.routing.key"))

			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Routing.Key = v1alpha1.RoutingKeyAttributes
				p.Spec.Routing.Attributes = []string{"session.id"}
			})
			Eventually(condition(ctx, p, v1alpha1.ConditionRoutingBalanced)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonSpreadRouting))
		})
	})

	Context("a pipeline referencing a Secret that does not exist", func() {
		const secretName, secretKey = "remote-write-token", "token"

		It("reports the missing Secret, leaves the worker tier alone, and recovers once the Secret exists", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithBearerTokenSecret(secretName, secretKey)))

			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))
			message := condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message
			Expect(message).To(ContainSubstring(`"` + secretName + `"`))
			Expect(message).To(ContainSubstring("spec.exporters.prometheusRemoteWrite.bearerTokenSecretRef"))
			Eventually(warningEvents(ctx, p, v1alpha1.ReasonSecretNotFound)).Should(ContainElement(ContainSubstring(secretName)))
			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonNotReady))

			By("running the gateway but no workers on a configuration whose files are missing")
			waitForObject(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
			_, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "worker StatefulSet: %v", err)

			By("creating the Secret without the key")
			secret := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: ns},
				StringData: map[string]string{"other": "x"},
			}
			Expect(k8sClient.Create(ctx, secret)).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretKeyNotFound))
			Expect(condition(ctx, p, v1alpha1.ConditionReferencesResolved)().Message).To(ContainSubstring(`"` + secretKey + `"`))

			By("adding the key")
			secret.StringData = map[string]string{secretKey: "s3cr3t-value"}
			Expect(k8sClient.Update(ctx, secret)).To(Succeed())
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionTrue, v1alpha1.ReasonResolved))

			Eventually(func(g Gomega) {
				s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", secretName)))
			}).Should(Succeed())
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(cm.Data[manifests.WorkerConfigKey]).To(ContainSubstring(manifests.WorkerSecretsDir + "/" + secretName + "/" + secretKey))
			Expect(cm.Data[manifests.WorkerConfigKey]).NotTo(ContainSubstring("s3cr3t-value"), "Secret values never go into ConfigMaps")

			By("settling: reconciling the resolved pipeline again writes nothing")
			eventuallyWritesNothing(ctx, p)
		})

		It("reports the problem once: reconciling it again writes nothing and repeats no Event", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns, pipelinetest.WithBearerTokenSecret(secretName, secretKey)))
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))
			waitForObject(ctx, p, &policyv1.PodDisruptionBudget{}, naming.GatewayPodDisruptionBudget(p))
			Eventually(warningEvents(ctx, p, v1alpha1.ReasonSecretNotFound)).Should(HaveLen(1))
			pipelineVersion := getPipeline(ctx, p).ResourceVersion

			forced := reconcileCounted(ctx, p)
			Expect(forced.err).NotTo(HaveOccurred(), "a missing Secret is reported in the status, not retried with backoff")
			Expect(forced.result).To(Equal(ctrl.Result{}))
			Expect(forced.writes).To(BeEmpty(), "requests other than GET")
			Expect(forced.events).To(BeEmpty())
			Expect(getPipeline(ctx, p).ResourceVersion).To(Equal(pipelineVersion))
		})

		It("keeps the running workers' configuration when an edit references a missing Secret", func() {
			p := createPipeline(ctx, pipelinetest.New("claude", ns))
			waitForObjects(ctx, p)
			cm, err := fetch(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))
			Expect(err).NotTo(HaveOccurred())
			sts, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			Expect(err).NotTo(HaveOccurred())

			updatePipeline(ctx, p, func(p *v1alpha1.DeltaPipeline) {
				p.Spec.Exporters.PrometheusRemoteWrite.BearerTokenSecretRef = &v1alpha1.SecretKeyRef{Name: secretName, Key: secretKey}
				p.Spec.Worker.Replicas = ptr.To[int32](4)
			})
			Eventually(condition(ctx, p, v1alpha1.ConditionReferencesResolved)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))
			Consistently(resourceVersion(ctx, p, &corev1.ConfigMap{}, naming.WorkerConfigMap(p))).Should(Equal(cm.ResourceVersion))
			now, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
			Expect(err).NotTo(HaveOccurred())
			Expect(now.ResourceVersion).To(Equal(sts.ResourceVersion))
		})
	})

	Context("an object of the same name controlled by someone else", func() {
		It("is left alone, and the pipeline reports the conflict until it is gone", func() {
			p := pipelinetest.New("claude", ns)
			blocker := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{
					Name: naming.GatewayConfigMap(p), Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "someone-else", UID: "0f0f0f0f-0000-4000-8000-000000000000", Controller: ptr.To(true)}},
				},
				Data: map[string]string{"theirs": "yes"},
			}
			Expect(k8sClient.Create(ctx, blocker)).To(Succeed())
			createPipeline(ctx, p)

			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonReconcileFailed))
			Expect(condition(ctx, p, v1alpha1.ConditionReady)().Message).To(ContainSubstring("ConfigMap " + naming.GatewayConfigMap(p) + " already exists and is controlled by Deployment someone-else"))
			Eventually(warningEvents(ctx, p, v1alpha1.ReasonReconcileFailed)).ShouldNot(BeEmpty())
			stored, err := fetch(ctx, p, &corev1.ConfigMap{}, blocker.Name)
			Expect(err).NotTo(HaveOccurred())
			Expect(stored.Data).To(Equal(map[string]string{"theirs": "yes"}))

			Expect(k8sClient.Delete(ctx, stored)).To(Succeed())
			waitForObjects(ctx, p)
			Eventually(condition(ctx, p, v1alpha1.ConditionReady)).Should(haveCondition(ctx, p, metav1.ConditionFalse, v1alpha1.ReasonNotReady))
		})
	})

	Context("invalid specs", func() {
		DescribeTable("are refused by the API server with a message naming the field",
			func(want string, opts ...pipelinetest.Option) {
				p := pipelinetest.New("claude", ns, opts...)
				err := k8sClient.Create(ctx, p)
				Expect(err).To(HaveOccurred(), "the API server accepted an invalid pipeline")
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
				Expect(err.Error()).To(ContainSubstring(want))
			},
			Entry("attributes routing without attributes", "spec.routing.attributes",
				pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes)),
			Entry("attributes with another routing key", "spec.routing.attributes is only allowed when spec.routing.key is attributes",
				pipelinetest.WithRouting(v1alpha1.RoutingKeyStreamID, "session.id")),
			Entry("an unknown routing key", "spec.routing.key",
				pipelinetest.WithRouting("session")),
			Entry("an unknown resolver", "spec.routing.resolver",
				pipelinetest.WithResolver("consul")),
			Entry("no exporter", "spec.exporters must set at least one of prometheusRemoteWrite, otlp, prometheus",
				func(p *v1alpha1.DeltaPipeline) { p.Spec.Exporters = v1alpha1.ExportersSpec{} }),
			Entry("sigv4 together with a bearer token", "sigv4, basicAuth and bearerTokenSecretRef are mutually exclusive",
				pipelinetest.WithSigV4("us-east-1"), pipelinetest.WithBearerTokenSecret("token", "token")),
			Entry("zero workers", "spec.worker.replicas",
				pipelinetest.WithWorkerReplicas(0)),
			Entry("zero gateways", "spec.gateway.replicas",
				pipelinetest.WithGatewayReplicas(0)),
			Entry("autoscaling minimum above maximum", "spec.gateway.autoscaling.minReplicas must not be greater than maxReplicas",
				pipelinetest.WithAutoscaling(5, 3)),
			Entry("a remote write endpoint that is not a URL", "spec.exporters.prometheusRemoteWrite.endpoint",
				func(p *v1alpha1.DeltaPipeline) { p.Spec.Exporters.PrometheusRemoteWrite.Endpoint = "prometheus:9090" }),
			Entry("an OTLP endpoint without a port", "spec.exporters.otlp.endpoint",
				func(p *v1alpha1.DeltaPipeline) {
					p.Spec.Exporters.OTLP = &v1alpha1.OTLPExporterSpec{Endpoint: "collector.observability.svc"}
				}),
			Entry("an insecure OTLP exporter with TLS", "spec.exporters.otlp: insecure and tls are mutually exclusive",
				func(p *v1alpha1.DeltaPipeline) {
					p.Spec.Exporters.OTLP = &v1alpha1.OTLPExporterSpec{Endpoint: "collector:4317", Insecure: true, TLS: &v1alpha1.TLSSpec{InsecureSkipVerify: true}}
				}),
			Entry("a Prometheus port the worker already uses", "spec.exporters.prometheus.port",
				pipelinetest.WithPrometheusExporter(4317)),
			Entry("a header with a value and a Secret", "exactly one of value and valueFrom",
				func(p *v1alpha1.DeltaPipeline) {
					p.Spec.Exporters.PrometheusRemoteWrite.Headers = []v1alpha1.HeaderSpec{{
						Name: "X-Scope-OrgID", Value: ptr.To("tenant"),
						ValueFrom: &v1alpha1.SecretValueSource{SecretKeyRef: v1alpha1.SecretKeyRef{Name: "tenant", Key: "id"}},
					}}
				}),
			Entry("maxStale shorter than the emit interval", "spec.worker.conversion.maxStale must not be shorter than spec.worker.conversion.interval",
				func(p *v1alpha1.DeltaPipeline) {
					p.Spec.Worker.Conversion.Interval = &metav1.Duration{Duration: time.Minute}
					p.Spec.Worker.Conversion.MaxStale = &metav1.Duration{Duration: 30 * time.Second}
				}),
			Entry("an invalid IAM role ARN", "spec.exporters.prometheusRemoteWrite.sigv4.roleARN",
				func(p *v1alpha1.DeltaPipeline) {
					p.Spec.Exporters.PrometheusRemoteWrite.SigV4 = &v1alpha1.SigV4Spec{Region: "us-east-1", RoleARN: "amp-writer"}
				}),
			Entry("a name too long for the worker pods' names", "metadata.name must be at most 40 characters",
				func(p *v1alpha1.DeltaPipeline) { p.Name = strings.Repeat("a", 41) }),
			Entry("an allowed source that is not a CIDR", "must be a CIDR such as 10.0.0.0/8",
				pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("10.0.0.300/8"))),
			Entry("an allowed source address without a prefix length", "spec.gateway.allowedSources[0].ipBlock.cidr",
				pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("10.0.0.1"))),
			Entry("an exception outside its CIDR", "every ipBlock.except entry must be a CIDR inside ipBlock.cidr",
				pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("10.0.0.0/8", "192.168.0.0/16"))),
			Entry("an IPv6 exception in an IPv4 block", "every ipBlock.except entry must be a CIDR inside ipBlock.cidr",
				pipelinetest.WithAllowedSources(pipelinetest.CIDRSource("10.0.0.0/8", "2001:db8::/32"))),
			Entry("a telemetry source with both a CIDR and a selector", "set either ipBlock or namespaceSelector/podSelector on a traffic source",
				pipelinetest.WithTelemetryFrom(v1alpha1.TrafficSource{
					IPBlock:           &v1alpha1.IPBlock{CIDR: "10.0.0.0/8"},
					NamespaceSelector: &metav1.LabelSelector{},
				})),
			Entry("an empty traffic source", "set either ipBlock or namespaceSelector/podSelector on a traffic source",
				pipelinetest.WithAllowedSources(v1alpha1.TrafficSource{})),
		)
	})
})
