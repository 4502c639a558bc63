package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/cmd/loadgen/totals"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
	"github.com/deltapipeline/deltapipeline/test/e2e/harness"
)

const (
	operatorNamespace = "deltapipeline-system"
	pipelineNamespace = "pipelines"
	// releaseName is the release name docs/install.md uses.
	releaseName = "deltapipeline-operator"
	// managerDeployment is the chart's manager Deployment of that release.
	managerDeployment = releaseName + "-manager"
	// sampleFile is the Claude Code → remote write sample users start from.
	sampleFile = "../../config/samples/telemetry_v1alpha1_deltapipeline_claudecode_amp.yaml"
	// conversionInterval replaces the sample's 30s, so each check waits
	// seconds rather than minutes for the cumulative values.
	conversionInterval = 5 * time.Second
	// convergeTimeout bounds how long the receiver may take to show the
	// totals once the clients stopped, gateway retries after a restart
	// included.
	convergeTimeout = 3 * time.Minute
)

var _ = Describe("The operator installed with Helm on a single-node cluster", Ordered, func() {
	var (
		env      suiteEnv
		k8s      client.Client
		recv     receiver
		runDir   string
		pipeline *v1alpha1.DeltaPipeline
		// sent accumulates every host-side run: later runs continue the
		// same streams (same seed), so restarts must not lose their totals.
		sent            totals.Totals
		gatewayEndpoint string
		managerRestarts int32
		anyFailed       bool
	)

	kubectl := func(ctx context.Context, args ...string) string {
		GinkgoHelper()
		out, err := command(ctx, env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		Expect(err).NotTo(HaveOccurred())
		return out
	}
	helm := func(ctx context.Context, args ...string) string {
		GinkgoHelper()
		out, err := command(ctx, env.Helm, append(args, "--kubeconfig", env.Kubeconfig)...)
		Expect(err).NotTo(HaveOccurred())
		return out
	}
	helmImageFlags := func(managerImage, workerImage string) []string {
		managerRepo, managerTag := splitImage(managerImage)
		workerRepo, workerTag := splitImage(workerImage)
		gatewayRepo, gatewayTag := splitImage(env.GatewayImage)
		return []string{
			"--set", "image.repository=" + managerRepo, "--set", "image.tag=" + managerTag,
			"--set", "workerImage.repository=" + workerRepo, "--set", "workerImage.tag=" + workerTag,
			"--set", "gatewayImage.repository=" + gatewayRepo, "--set", "gatewayImage.tag=" + gatewayTag,
		}
	}

	waitRolledOutDeployment := func(ctx context.Context, namespace, name string, timeout time.Duration) {
		GinkgoHelper()
		eventually(ctx, timeout, "deployment "+namespace+"/"+name+" rolled out", func(ctx context.Context) error {
			var d appsv1.Deployment
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d); err != nil {
				return err
			}
			return deploymentRolledOut(&d)
		})
	}
	waitRolledOutStatefulSet := func(ctx context.Context, namespace, name string, timeout time.Duration) {
		GinkgoHelper()
		eventually(ctx, timeout, "statefulset "+namespace+"/"+name+" rolled out", func(ctx context.Context) error {
			var s appsv1.StatefulSet
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
				return err
			}
			return statefulSetRolledOut(&s)
		})
	}
	waitReady := func(ctx context.Context, p *v1alpha1.DeltaPipeline, timeout time.Duration) {
		GinkgoHelper()
		eventually(ctx, timeout, "DeltaPipeline "+p.Name+" Ready", func(ctx context.Context) error {
			var got v1alpha1.DeltaPipeline
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionTrue || got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("Ready condition %+v at generation %d of %d", c, got.Status.ObservedGeneration, got.Generation)
			}
			return nil
		})
	}
	workerPods := func(ctx context.Context) []corev1.Pod {
		GinkgoHelper()
		var pods corev1.PodList
		Expect(k8s.List(ctx, &pods, client.InNamespace(pipelineNamespace),
			client.MatchingLabels(naming.SelectorLabels(pipeline, naming.ComponentWorker)))).To(Succeed())
		return pods.Items
	}
	// waitForTotals polls the receiver until every sent series shows its
	// total, then waits two conversion intervals more so that a late wrong
	// sample would be seen, and reports on everything stored.
	waitForTotals := func(ctx context.Context, want totals.Totals) harness.Report {
		GinkgoHelper()
		deadline := time.Now().Add(convergeTimeout)
		for {
			received, err := recv.samples(ctx)
			Expect(err).NotTo(HaveOccurred())
			if reachedAll(want, received) || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Second)
		}
		time.Sleep(2 * conversionInterval)
		received, err := recv.samples(ctx)
		Expect(err).NotTo(HaveOccurred())
		return harness.Verify(want, received, 1)
	}
	// workerFigure sums a metric over the status endpoints of the worker
	// pods, scraped at their pod IPs.
	workerFigure := func(ctx context.Context, name string) (float64, error) {
		var sum float64
		pods := workerPods(ctx)
		if len(pods) != int(*pipeline.Spec.Worker.Replicas) {
			return 0, fmt.Errorf("%d worker pods, want %d", len(pods), *pipeline.Spec.Worker.Replicas)
		}
		for _, pod := range pods {
			if pod.Status.PodIP == "" {
				return 0, fmt.Errorf("worker pod %s has no IP yet", pod.Name)
			}
			m, err := harness.ScrapeMetrics(ctx, fmt.Sprintf("http://%s:8888/metrics", pod.Status.PodIP))
			if err != nil {
				return 0, fmt.Errorf("scraping %s: %w", pod.Name, err)
			}
			sum += m.Sum(name, nil)
		}
		return sum, nil
	}
	expectNothingDropped := func(ctx context.Context) {
		GinkgoHelper()
		for _, name := range []string{"deltapipeline_worker_export_dropped_points_total", "deltapipeline_worker_rejected_points_total"} {
			v, err := workerFigure(ctx, name)
			Expect(err).NotTo(HaveOccurred())
			Expect(v).To(BeZero(), "%s over the workers", name)
		}
		refused, err := recv.refused(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(refused).To(BeZero(), "the receiver refused nothing")
	}
	// expectSizedPods checks the QoS class and resources of every pod of p
	// and of the manager, and prints them.
	expectSizedPods := func(ctx context.Context, p *v1alpha1.DeltaPipeline, want map[string]int) {
		GinkgoHelper()
		var got v1alpha1.DeltaPipeline
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		var pods corev1.PodList
		Expect(k8s.List(ctx, &pods, client.InNamespace(p.Namespace), client.MatchingLabels{naming.LabelInstance: p.Name})).To(Succeed())
		seen, err := podsSizedAsRendered(&got, pods.Items)
		Expect(err).NotTo(HaveOccurred())
		Expect(seen).To(Equal(want), "pods of %s by component", p.Name)
		var manager corev1.PodList
		Expect(k8s.List(ctx, &manager, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/instance": releaseName})).To(Succeed())
		Expect(manager.Items).NotTo(BeEmpty())
		var managerClasses []string
		for _, pod := range manager.Items {
			Expect(pod.Status.QOSClass).NotTo(BeElementOf(corev1.PodQOSBestEffort, corev1.PodQOSClass("")), "QoS class of manager pod %s", pod.Name)
			managerClasses = append(managerClasses, string(pod.Status.QOSClass))
		}
		fmt.Fprintf(GinkgoWriter, "FIGURES QoS classes of %s: %d gateway pods %s (%s), %d worker pods %s (%s), manager %s\n", p.Name,
			seen[naming.ComponentGateway], corev1.PodQOSBurstable, resourcesSummary(got.Status.Gateway.Resources),
			seen[naming.ComponentWorker], corev1.PodQOSBurstable, resourcesSummary(got.Status.Workers.Resources), strings.Join(managerClasses, ", "))
	}
	hostLoad := func(ctx context.Context, l clusterLoad) totals.Totals {
		GinkgoHelper()
		l.endpoint = gatewayEndpoint
		run, err := startLoad(env.Loadgen, runDir, l)
		Expect(err).NotTo(HaveOccurred())
		got, err := run.wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		return got
	}

	BeforeAll(func(ctx SpecContext) {
		var err error
		env, err = suiteEnvFromOS()
		Expect(err).NotTo(HaveOccurred())
		k8s, err = newClient(env.Kubeconfig)
		Expect(err).NotTo(HaveOccurred())
		runDir, err = os.MkdirTemp("", "deltapipeline-cluster-suite-")
		Expect(err).NotTo(HaveOccurred())
		sent = totals.Totals{Series: map[string]float64{}}

		By("creating namespaces that enforce the restricted Pod Security Standard")
		for _, ns := range []string{operatorNamespace, pipelineNamespace, receiverNamespace} {
			Expect(k8s.Create(ctx, restrictedNamespace(ns))).To(Succeed())
		}
		By("providing static local PersistentVolumes under the default StorageClass")
		Expect(k8s.Create(ctx, localStorageClass())).To(Succeed())
		for i := range 4 {
			dir := filepath.Join(env.VolumesDir, fmt.Sprintf("pv%d", i))
			Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
			Expect(k8s.Create(ctx, localVolume(fmt.Sprintf("local-pv%d", i), dir, env.NodeName))).To(Succeed())
		}

		By("starting the remote write receiver")
		pipeline = claudeCodeSample(env)
		objects, service := receiverObjects(env)
		for _, obj := range objects {
			Expect(k8s.Create(ctx, obj)).To(Succeed())
		}
		waitRolledOutDeployment(ctx, receiverNamespace, receiverName, 2*time.Minute)
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(service), service)).To(Succeed())
		httpClient := &http.Client{Timeout: 30 * time.Second}
		if env.PrometheusImage != "" {
			fmt.Fprintf(GinkgoWriter, "receiver: Prometheus %s\n", env.PrometheusImage)
			recv = prometheusAPI{base: fmt.Sprintf("http://%s:%d", service.Spec.ClusterIP, receiverPort), http: httpClient}
		} else {
			fmt.Fprintf(GinkgoWriter, "receiver: the end-to-end suite's receiver %s (no Prometheus image)\n", env.ReceiverImage)
			recv = harnessReceiver{base: fmt.Sprintf("http://%s:%d", service.Spec.ClusterIP, receiverReadPort), http: httpClient}
		}

		By("installing the operator with helm install from charts/")
		helm(ctx, append([]string{"install", releaseName, env.ChartDir, "-n", operatorNamespace, "--wait", "--timeout", "3m"},
			helmImageFlags(env.ManagerImage, env.WorkerImage)...)...)
		waitRolledOutDeployment(ctx, operatorNamespace, managerDeployment, time.Minute)
	}, NodeTimeout(6*time.Minute))

	AfterAll(func() {
		if !anyFailed && !CurrentSpecReport().Failed() && runDir != "" {
			Expect(os.RemoveAll(runDir)).To(Succeed())
		}
	})

	ReportAfterEach(func(report SpecReport) {
		if report.Failed() {
			anyFailed = true
			dumpCluster(context.Background(), env, runDir)
		}
	})

	It("runs the Claude Code sample: Ready, its published endpoints work from a pod, every series exact", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, pipeline)).To(Succeed())
		waitReady(ctx, pipeline, 4*time.Minute)

		By("running every pod Burstable, with the resources the status reports")
		expectSizedPods(ctx, pipeline, map[string]int{
			naming.ComponentGateway: int(*pipeline.Spec.Gateway.Replicas),
			naming.ComponentWorker:  int(*pipeline.Spec.Worker.Replicas),
		})

		By("running the images make images built, as non-root, with bound volumes")
		for _, pod := range workerPods(ctx) {
			Expect(pod.Spec.Containers[0].Image).To(Equal(env.WorkerImage))
		}
		var gateway appsv1.Deployment
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: naming.GatewayDeployment(pipeline)}, &gateway)).To(Succeed())
		Expect(gateway.Spec.Template.Spec.Containers[0].Image).To(Equal(env.GatewayImage))
		var claims corev1.PersistentVolumeClaimList
		Expect(k8s.List(ctx, &claims, client.InNamespace(pipelineNamespace))).To(Succeed())
		Expect(claims.Items).To(HaveLen(int(*pipeline.Spec.Worker.Replicas)))
		for _, c := range claims.Items {
			Expect(c.Status.Phase).To(Equal(corev1.ClaimBound), "claim %s", c.Name)
		}

		var svc corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: naming.GatewayService(pipeline)}, &svc)).To(Succeed())
		gatewayEndpoint = fmt.Sprintf("%s:4317", svc.Spec.ClusterIP)

		By("sending load from a pod in another namespace to status.endpoints.grpc")
		var got v1alpha1.DeltaPipeline
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pipeline), &got)).To(Succeed())
		Expect(got.Status.Endpoints.GRPC).NotTo(BeEmpty())
		fromPod := runLoadPod(ctx, k8s, env, got.Status.Endpoints.GRPC, kubectl)
		Expect(fromPod.FailedExports).To(BeZero())
		sent = sent.Merge(fromPod)
		report := waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES sample, load from a pod: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))

		By("sending load from the node to the gateway Service")
		sent = sent.Merge(hostLoad(ctx, clusterLoad{name: "steady", sessions: 30, sharedSessions: 5, rounds: 4, interval: 2 * time.Second, seed: 11}))
		report = waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES sample, load from the node: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))

		expectNothingDropped(ctx)

		var manager corev1.PodList
		Expect(k8s.List(ctx, &manager, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/instance": releaseName})).To(Succeed())
		Expect(manager.Items).NotTo(BeEmpty())
		managerRestarts = manager.Items[0].Status.ContainerStatuses[0].RestartCount
	}, SpecTimeout(10*time.Minute))

	It("keeps every series exact, without a reset, through kubectl delete pod and a rollout restart of the workers", func(ctx SpecContext) {
		before, err := workerFigure(ctx, "deltapipeline_worker_active_streams")
		Expect(err).NotTo(HaveOccurred())
		Expect(before).To(BeNumerically(">", 0))

		By("deleting worker pod 1")
		kubectl(ctx, "-n", pipelineNamespace, "delete", "pod", naming.WorkerPod(pipeline, 1), "--wait=true")
		waitRolledOutStatefulSet(ctx, pipelineNamespace, naming.WorkerStatefulSet(pipeline), 3*time.Minute)
		sent = sent.Merge(hostLoad(ctx, clusterLoad{name: "after-delete", sessions: 30, sharedSessions: 5, rounds: 3, interval: 2 * time.Second, seed: 11}))
		report := waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES after kubectl delete pod: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.Decreasing).To(BeEmpty())

		By("restarting every worker with kubectl rollout restart")
		kubectl(ctx, "-n", pipelineNamespace, "rollout", "restart", "statefulset/"+naming.WorkerStatefulSet(pipeline))
		kubectl(ctx, "-n", pipelineNamespace, "rollout", "status", "statefulset/"+naming.WorkerStatefulSet(pipeline), "--timeout=5m")
		waitRolledOutStatefulSet(ctx, pipelineNamespace, naming.WorkerStatefulSet(pipeline), 5*time.Minute)
		By("restoring each worker's streams from its volume")
		eventually(ctx, time.Minute, "restored streams reported by the restarted workers", func(ctx context.Context) error {
			v, err := workerFigure(ctx, "deltapipeline_worker_checkpoint_restored_streams")
			if err != nil {
				return err
			}
			if v < before {
				return fmt.Errorf("workers restored %v streams, held %v before", v, before)
			}
			return nil
		})
		sent = sent.Merge(hostLoad(ctx, clusterLoad{name: "after-rollout", sessions: 30, sharedSessions: 5, rounds: 3, interval: 2 * time.Second, seed: 11}))
		report = waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES after kubectl rollout restart of the workers: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))
		expectNothingDropped(ctx)
	}, SpecTimeout(15*time.Minute))

	It("keeps every series exact through a rollout restart of the gateways under load, and counts what a client that never retries lost", func(ctx SpecContext) {
		gatewayName := naming.GatewayDeployment(pipeline)
		gatewayPods := func() []string {
			var pods corev1.PodList
			Expect(k8s.List(ctx, &pods, client.InNamespace(pipelineNamespace),
				client.MatchingLabels(naming.SelectorLabels(pipeline, naming.ComponentGateway)))).To(Succeed())
			// Pods still shutting down after the rollout are the old ones.
			var names []string
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					names = append(names, p.Name)
				}
			}
			return names
		}
		before := gatewayPods()
		run, err := startLoad(env.Loadgen, runDir, clusterLoad{
			name: "gateway-rollout", endpoint: gatewayEndpoint, sessions: 30, sharedSessions: 5, rounds: 40, interval: time.Second, seed: 11, noRetry: true,
		})
		Expect(err).NotTo(HaveOccurred())
		time.Sleep(5 * time.Second)
		kubectl(ctx, "-n", pipelineNamespace, "rollout", "restart", "deployment/"+gatewayName)
		kubectl(ctx, "-n", pipelineNamespace, "rollout", "status", "deployment/"+gatewayName, "--timeout=5m")
		Expect(run.running()).To(BeTrue(), "the gateways finished rolling while the load still ran")
		for _, name := range gatewayPods() {
			Expect(before).NotTo(ContainElement(name), "gateway pod %s was not replaced", name)
		}
		rolled, err := run.wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(GinkgoWriter, "FIGURES refused requests for a client that never retries, across a gateway rollout: %d of %d exports refused (%d points lost by the client)\n",
			rolled.FailedExports, rolled.FailedExports+rolled.Exports, rolled.FailedPoints)
		sent = sent.Merge(rolled)
		report := waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES after kubectl rollout restart of the gateways: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))
		expectNothingDropped(ctx)
	}, SpecTimeout(10*time.Minute))

	It("rescales the workers 3 -> 5 -> 2 with kubectl scale under load: streams handed over, every series exact, the removed ordinals' claims deleted", func(ctx SpecContext) {
		stsName := naming.WorkerStatefulSet(pipeline)
		getPipeline := func(ctx context.Context) (*v1alpha1.DeltaPipeline, error) {
			var got v1alpha1.DeltaPipeline
			err := k8s.Get(ctx, client.ObjectKeyFromObject(pipeline), &got)
			return &got, err
		}
		// scrapeSum sums a metric over the named worker pods, at their pod IPs.
		scrapeSum := func(ctx context.Context, metric string, ordinals ...int) (float64, error) {
			var sum float64
			for _, i := range ordinals {
				var pod corev1.Pod
				if err := k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: naming.WorkerPod(pipeline, i)}, &pod); err != nil {
					return 0, err
				}
				m, err := harness.ScrapeMetrics(ctx, fmt.Sprintf("http://%s:8888/metrics", pod.Status.PodIP))
				if err != nil {
					return 0, fmt.Errorf("scraping %s: %w", pod.Name, err)
				}
				sum += m.Sum(metric, nil)
			}
			return sum, nil
		}
		// rescale runs kubectl scale and waits for the ring to settle on
		// workers with that many ready pods, noting what Rescaling said.
		// Settling after a hand-over means the operator read every
		// worker's /handoff on its telemetry port through cluster DNS: an
		// unreachable worker keeps the hand-over unfinished.
		rescale := func(ctx context.Context, workers int32) (time.Duration, *rescaleWatch) {
			GinkgoHelper()
			watch := &rescaleWatch{}
			start := time.Now()
			kubectl(ctx, "-n", pipelineNamespace, "scale", "dpl", pipeline.Name, "--replicas", fmt.Sprint(workers))
			eventually(ctx, 5*time.Minute, fmt.Sprintf("the ring settled on %d workers", workers), func(ctx context.Context) error {
				got, err := getPipeline(ctx)
				if err != nil {
					return err
				}
				watch.observe(got)
				if ptr.Deref(got.Spec.Worker.Replicas, 0) != workers {
					return StopTrying(fmt.Sprintf("spec.worker.replicas is %d after kubectl scale --replicas %d", ptr.Deref(got.Spec.Worker.Replicas, 0), workers))
				}
				if err := ringSettled(got, workers); err != nil {
					return err
				}
				var s appsv1.StatefulSet
				if err := k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: stsName}, &s); err != nil {
					return err
				}
				if ptr.Deref(s.Spec.Replicas, 0) != workers {
					return fmt.Errorf("statefulset %s has spec.replicas %d", stsName, ptr.Deref(s.Spec.Replicas, 0))
				}
				if err := statefulSetRolledOut(&s); err != nil {
					return err
				}
				if pods := workerPods(ctx); len(pods) != int(workers) {
					return fmt.Errorf("%d worker pods", len(pods))
				}
				return nil
			})
			took := time.Since(start)
			eventually(ctx, time.Minute, "Events of a hand-over and a completed rescale", func(ctx context.Context) error {
				var events corev1.EventList
				if err := k8s.List(ctx, &events, client.InNamespace(pipelineNamespace)); err != nil {
					return err
				}
				watch.events = eventReasons(events.Items, pipeline.Name, start)
				handingOver := slices.Index(watch.events, v1alpha1.ReasonHandingOver)
				if handingOver < 0 || !slices.Contains(watch.events[handingOver:], "RescaleComplete") {
					return fmt.Errorf("events %v since kubectl scale, want HandingOver then RescaleComplete", watch.events)
				}
				return nil
			})
			return took, watch
		}

		By("finding the ring steady on the sample's 3 workers")
		before, err := getPipeline(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(ringSettled(before, 3)).To(Succeed())
		Expect(before.Status.Membership.Epoch).To(BeNumerically(">", 0))

		By("admitting every source to the workers' telemetry port, the operator's namespace included, with telemetryFrom empty")
		Expect(before.Spec.NetworkPolicy.TelemetryFrom).To(BeEmpty())
		var policy networkingv1.NetworkPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: naming.WorkerNetworkPolicy(pipeline)}, &policy)).To(Succeed())
		everyone, _, err := admittedFrom(&policy, workerconfig.DefaultTelemetryPort)
		Expect(err).NotTo(HaveOccurred())
		Expect(everyone).To(BeTrue(), "the worker NetworkPolicy admits every source to %d", workerconfig.DefaultTelemetryPort)
		peerEveryone, peerFrom, err := admittedFrom(&policy, workerconfig.DefaultPeerPort)
		Expect(err).NotTo(HaveOccurred())
		Expect(peerEveryone).To(BeFalse(), "the peer port admits only the pipeline's workers")
		Expect(peerFrom).To(HaveLen(1))
		Expect(peerFrom[0].PodSelector).NotTo(BeNil())
		Expect(peerFrom[0].PodSelector.MatchLabels).To(Equal(naming.SelectorLabels(pipeline, naming.ComponentWorker)))

		By("providing volumes for the two added ordinals")
		for _, name := range []string{"pv4", "pv5"} {
			dir := filepath.Join(env.VolumesDir, name)
			Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
			Expect(k8s.Create(ctx, localVolume("local-"+name, dir, env.NodeName))).To(Succeed())
		}

		run, err := startLoad(env.Loadgen, runDir, clusterLoad{
			name: "rescale", endpoint: gatewayEndpoint, sessions: 30, sharedSessions: 5, rounds: 90, interval: time.Second, seed: 11,
		})
		Expect(err).NotTo(HaveOccurred())
		time.Sleep(10 * time.Second)

		By("scaling to 5 workers with kubectl scale under load")
		Expect(run.running()).To(BeTrue(), "the load ran before the scale-up")
		upTook, upWatch := rescale(ctx, 5)
		up, err := getPipeline(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(up.Status.Membership.Epoch).To(BeNumerically(">", before.Status.Membership.Epoch))
		Expect(up.Status.Workers.Replicas).To(Equal(int32(5)))
		// The gateways read the ring from the membership ConfigMap; the
		// workers watch it with their ServiceAccount's Role.
		for i := range 5 {
			epoch, err := scrapeSum(ctx, handoffEpochMetric, i)
			Expect(err).NotTo(HaveOccurred())
			Expect(epoch).To(BeNumerically("==", up.Status.Membership.Epoch), "membership epoch worker %d acts on", i)
		}
		sentUp, err := scrapeSum(ctx, handoffSentMetric, 0, 1, 2, 3, 4)
		Expect(err).NotTo(HaveOccurred())
		receivedUp, err := scrapeSum(ctx, handoffReceivedMetric, 3, 4)
		Expect(err).NotTo(HaveOccurred())
		duplicateUp, err := scrapeSum(ctx, handoffDuplicateMetric, 3, 4)
		Expect(err).NotTo(HaveOccurred())
		Expect(sentUp).To(BeNumerically(">", 0), "streams handed over on the scale-up")
		// A sender that restarted lost its count of what it sent.
		fmt.Fprintf(GinkgoWriter, "FIGURES kubectl scale 3 -> 5 workers under load: settled at epoch %d in %s; %v streams handed over, %v received by workers 3 and 4 (%v duplicates); worker restarts %s; %s\n",
			up.Status.Membership.Epoch, upTook.Round(time.Millisecond), sentUp, receivedUp, duplicateUp, restartCounts(workerPods(ctx)), upWatch)

		time.Sleep(8 * time.Second)
		By("scaling to 2 workers with kubectl scale under load")
		Expect(run.running()).To(BeTrue(), "the load still ran before the scale-down")
		receivedBefore, err := scrapeSum(ctx, handoffReceivedMetric, 0, 1)
		Expect(err).NotTo(HaveOccurred())
		downTook, downWatch := rescale(ctx, 2)
		stillLoaded := run.running()
		down, err := getPipeline(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(down.Status.Workers.Replicas).To(Equal(int32(2)))
		// Later checks count pods and claims against the local copy.
		pipeline.Spec.Worker.Replicas = ptr.To[int32](2)

		By("deleting the claims of the removed ordinals (PVC retention WhenScaled: Delete)")
		eventually(ctx, 2*time.Minute, "only the claims of workers 0 and 1 left", func(ctx context.Context) error {
			var claims corev1.PersistentVolumeClaimList
			if err := k8s.List(ctx, &claims, client.InNamespace(pipelineNamespace), client.MatchingLabels{naming.LabelInstance: pipeline.Name}); err != nil {
				return err
			}
			if names, want := claimNames(claims.Items), []string{workerClaimName(pipeline, 0), workerClaimName(pipeline, 1)}; !slices.Equal(names, want) {
				return fmt.Errorf("claims %v (all %d, deleting ones included), want %v", names, len(claims.Items), want)
			}
			if len(claims.Items) != 2 {
				return fmt.Errorf("%d claims, some still being deleted", len(claims.Items))
			}
			return nil
		})
		receivedDown, err := scrapeSum(ctx, handoffReceivedMetric, 0, 1)
		Expect(err).NotTo(HaveOccurred())
		Expect(receivedDown).To(BeNumerically(">", receivedBefore), "streams handed to the remaining workers on the scale-down")
		fmt.Fprintf(GinkgoWriter, "FIGURES kubectl scale 5 -> 2 workers under load: settled at epoch %d in %s, load still running when settled %v; %v streams received by workers 0 and 1 from the leaving ones; worker restarts %s; %s\n",
			down.Status.Membership.Epoch, downTook.Round(time.Millisecond), stillLoaded, receivedDown-receivedBefore, restartCounts(workerPods(ctx)), downWatch)

		By("stopping the load and finding every series exact")
		rescaled, err := run.wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(rescaled.FailedExports).To(BeZero(), "no export was refused for good")
		sent = sent.Merge(rescaled)
		report := waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES after kubectl scale 3 -> 5 -> 2 workers under load: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))
		Expect(report.Decreasing).To(BeEmpty(), "no series ever decreases")
		expectNothingDropped(ctx)
	}, SpecTimeout(15*time.Minute))

	It("moves the workers to the new release's image with helm upgrade, without a reset", func(ctx SpecContext) {
		helm(ctx, append([]string{"upgrade", releaseName, env.ChartDir, "-n", operatorNamespace, "--wait", "--timeout", "3m"},
			helmImageFlags(env.UpgradeManagerImage, env.UpgradeWorkerImage)...)...)
		waitRolledOutDeployment(ctx, operatorNamespace, managerDeployment, 2*time.Minute)
		eventually(ctx, 5*time.Minute, "every worker on "+env.UpgradeWorkerImage, func(ctx context.Context) error {
			var s appsv1.StatefulSet
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: naming.WorkerStatefulSet(pipeline)}, &s); err != nil {
				return err
			}
			if image := s.Spec.Template.Spec.Containers[0].Image; image != env.UpgradeWorkerImage {
				return fmt.Errorf("statefulset runs %s", image)
			}
			if err := statefulSetRolledOut(&s); err != nil {
				return err
			}
			for _, pod := range workerPods(ctx) {
				if pod.Spec.Containers[0].Image != env.UpgradeWorkerImage {
					return fmt.Errorf("pod %s runs %s", pod.Name, pod.Spec.Containers[0].Image)
				}
			}
			return nil
		})
		waitReady(ctx, pipeline, 2*time.Minute)
		sent = sent.Merge(hostLoad(ctx, clusterLoad{name: "after-upgrade", sessions: 30, sharedSessions: 5, rounds: 3, interval: 2 * time.Second, seed: 11}))
		report := waitForTotals(ctx, sent)
		fmt.Fprintf(GinkgoWriter, "FIGURES after helm upgrade: %s\n", report.Figures())
		Expect(report.Problems()).To(BeEmpty())
		Expect(report.Decreasing).To(BeEmpty())
		Expect(report.ExactMatches).To(Equal(report.SentSeries))
	}, SpecTimeout(12*time.Minute))

	It("keeps a worker filled to maxStreams under its memory limit: no OOM kill, peak RSS below the rendered limit", func(ctx SpecContext) {
		small := filledPipeline(env)
		Expect(k8s.Create(ctx, small)).To(Succeed())
		waitReady(ctx, small, 3*time.Minute)
		expectSizedPods(ctx, small, map[string]int{naming.ComponentGateway: 1, naming.ComponentWorker: 1})

		By("rendering the documented memory limit for maxStreams")
		var rendered v1alpha1.DeltaPipeline
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(small), &rendered)).To(Succeed())
		limit := rendered.Status.Workers.Resources.Limits.Memory().Value()
		Expect(limit).To(Equal(documentedWorkerMemoryLimit(fillMaxStreams)), "status.workers.resources.limits.memory")

		By("sending more streams than maxStreams from the node to the gateway Service")
		var svc corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: naming.GatewayService(small)}, &svc)).To(Succeed())
		run, err := startLoad(env.Loadgen, runDir, clusterLoad{
			name: "fill", endpoint: fmt.Sprintf("%s:4317", svc.Spec.ClusterIP),
			sessions: fillSessions, rounds: fillRounds, interval: time.Second, seed: 23,
		})
		Expect(err).NotTo(HaveOccurred())
		sentFill, err := run.wait(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(sentFill.Streams).To(BeNumerically(">", fillMaxStreams), "streams the load generator sent")

		workerName := naming.WorkerPod(small, 0)
		var pod corev1.Pod
		var active, rejected float64
		eventually(ctx, time.Minute, "the worker holding maxStreams streams and rejecting the others", func(ctx context.Context) error {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: workerName}, &pod); err != nil {
				return err
			}
			m, err := harness.ScrapeMetrics(ctx, fmt.Sprintf("http://%s:8888/metrics", pod.Status.PodIP))
			if err != nil {
				return fmt.Errorf("scraping %s: %w", workerName, err)
			}
			active = m.Sum("deltapipeline_worker_active_streams", nil)
			rejected = m.Sum("deltapipeline_worker_rejected_points_total", map[string]string{"reason": "stream_limit"})
			if active != fillMaxStreams || rejected == 0 {
				return fmt.Errorf("%v active streams of %d, %v points rejected at the stream limit", active, fillMaxStreams, rejected)
			}
			return nil
		})
		// Emits walk every held stream; the peak must include them.
		time.Sleep(2 * conversionInterval)

		By("finding no OOM kill and the peak RSS below the limit")
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: pipelineNamespace, Name: workerName}, &pod)).To(Succeed())
		status := pod.Status.ContainerStatuses[0]
		Expect(status.RestartCount).To(BeZero(), "restarts of %s", workerName)
		Expect(status.State.Running).NotTo(BeNil(), "state of %s", workerName)
		if t := status.LastTerminationState.Terminated; t != nil {
			Expect(t.Reason).NotTo(Equal("OOMKilled"), "last termination of %s", workerName)
		}
		mem, err := readContainerMemory(status.ContainerID)
		Expect(err).NotTo(HaveOccurred())
		Expect(mem.Limit).To(Equal(limit), "memory.limit_in_bytes of the worker's cgroup")
		if mem.OOMKills >= 0 {
			Expect(mem.OOMKills).To(BeZero(), "OOM kills in the worker's cgroup")
		}
		fmt.Fprintf(GinkgoWriter, "FIGURES worker filled to maxStreams: %d streams, peak RSS %s MiB of limit %s MiB "+
			"(request %s MiB; cgroup peak usage %s MiB; %d processes; %.0f points of %d sent streams rejected at the stream limit)\n",
			int64(active), mebibytes(mem.PeakRSS), mebibytes(limit), mebibytes(rendered.Status.Workers.Resources.Requests.Memory().Value()),
			mebibytes(mem.PeakUsage), mem.Processes, rejected, sentFill.Streams)
		Expect(mem.PeakRSS).To(BeNumerically("<", limit), "peak RSS of the worker")

		Expect(k8s.Delete(ctx, small)).To(Succeed())
	}, SpecTimeout(6*time.Minute))

	It("reports a missing Secret as a False condition with its reason, and nothing crashes", func(ctx SpecContext) {
		broken := claudeCodeSample(env)
		broken.Name = "missing-secret"
		broken.Spec.Worker.Replicas = ptr.To[int32](1)
		broken.Spec.Worker.Persistence.Enabled = ptr.To(false)
		broken.Spec.Exporters.PrometheusRemoteWrite.BearerTokenSecretRef = &v1alpha1.SecretKeyRef{Name: "absent-token", Key: "token"}
		Expect(k8s.Create(ctx, broken)).To(Succeed())
		eventually(ctx, 2*time.Minute, "ReferencesResolved=False with reason SecretNotFound", func(ctx context.Context) error {
			var got v1alpha1.DeltaPipeline
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(broken), &got); err != nil {
				return err
			}
			refs := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReferencesResolved)
			ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			if refs == nil || refs.Status != metav1.ConditionFalse || refs.Reason != v1alpha1.ReasonSecretNotFound || !strings.Contains(refs.Message, "absent-token") {
				return fmt.Errorf("ReferencesResolved %+v", refs)
			}
			if ready == nil || ready.Status != metav1.ConditionFalse {
				return fmt.Errorf("Ready %+v", ready)
			}
			return nil
		})
		By("keeping the manager running and the other pipeline Ready")
		time.Sleep(10 * time.Second)
		var manager corev1.PodList
		Expect(k8s.List(ctx, &manager, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/instance": releaseName})).To(Succeed())
		for _, pod := range manager.Items {
			Expect(pod.Status.ContainerStatuses[0].Ready).To(BeTrue(), "manager pod %s ready", pod.Name)
			Expect(pod.Status.ContainerStatuses[0].RestartCount).To(BeZero(), "manager pod %s restarts (%d before the upgrade)", pod.Name, managerRestarts)
		}
		waitReady(ctx, pipeline, time.Minute)
		var pods corev1.PodList
		Expect(k8s.List(ctx, &pods, client.InNamespace(pipelineNamespace))).To(Succeed())
		for _, pod := range pods.Items {
			for _, status := range pod.Status.ContainerStatuses {
				Expect(status.RestartCount).To(BeZero(), "container %s of pod %s restarted", status.Name, pod.Name)
			}
		}
		Expect(k8s.Delete(ctx, broken)).To(Succeed())
	}, SpecTimeout(5*time.Minute))

	It("removes what the pipelines and the release own on kubectl delete and helm uninstall", func(ctx SpecContext) {
		kubectl(ctx, "delete", "dpl", "--all", "--all-namespaces", "--wait=true")
		owned := map[string]client.ObjectList{
			"Deployments": &appsv1.DeploymentList{}, "StatefulSets": &appsv1.StatefulSetList{}, "Services": &corev1.ServiceList{},
			"ConfigMaps": &corev1.ConfigMapList{}, "ServiceAccounts": &corev1.ServiceAccountList{}, "Pods": &corev1.PodList{},
		}
		eventually(ctx, 3*time.Minute, "every object of the pipelines garbage-collected", func(ctx context.Context) error {
			for kind, list := range owned {
				if err := k8s.List(ctx, list, client.InNamespace(pipelineNamespace), client.HasLabels{naming.LabelInstance}); err != nil {
					return err
				}
				if n := meta.LenList(list); n > 0 {
					return fmt.Errorf("%d %s of the pipelines left", n, kind)
				}
			}
			return nil
		})
		By("keeping the state volumes, as docs/install.md says, until they are deleted")
		var claims corev1.PersistentVolumeClaimList
		Expect(k8s.List(ctx, &claims, client.InNamespace(pipelineNamespace))).To(Succeed())
		Expect(claims.Items).To(HaveLen(int(*pipeline.Spec.Worker.Replicas)))
		kubectl(ctx, "-n", pipelineNamespace, "delete", "pvc", "-l", naming.LabelInstance+"="+pipeline.Name, "--wait=true")

		helm(ctx, "uninstall", releaseName, "-n", operatorNamespace, "--wait")
		eventually(ctx, 2*time.Minute, "every object of the release removed", func(ctx context.Context) error {
			release := client.MatchingLabels{"app.kubernetes.io/instance": releaseName}
			for kind, list := range map[string]client.ObjectList{
				"Deployments": &appsv1.DeploymentList{}, "Pods": &corev1.PodList{}, "ServiceAccounts": &corev1.ServiceAccountList{},
				"Services": &corev1.ServiceList{},
			} {
				if err := k8s.List(ctx, list, client.InNamespace(operatorNamespace), release); err != nil {
					return err
				}
				if n := meta.LenList(list); n > 0 {
					return fmt.Errorf("%d %s of the release left", n, kind)
				}
			}
			out, err := command(ctx, env.Kubectl, "--kubeconfig", env.Kubeconfig, "get", "clusterroles,clusterrolebindings,roles,rolebindings", "-A",
				"-l", "app.kubernetes.io/instance="+releaseName, "-o", "name")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("RBAC of the release left: %s", out)
			}
			return nil
		})
		By("leaving the CRD in place, as Helm does with crds/")
		kubectl(ctx, "get", "crd", "deltapipelines.telemetry.deltapipeline.io")
	}, SpecTimeout(8*time.Minute))
})

// claudeCodeSample is the repository's Claude Code sample, pointed at the
// in-cluster Prometheus: plain remote write instead of SigV4 to AMP, the
// locally built gateway image, a shorter conversion interval.
func claudeCodeSample(env suiteEnv) *v1alpha1.DeltaPipeline {
	GinkgoHelper()
	raw, err := os.ReadFile(sampleFile)
	Expect(err).NotTo(HaveOccurred())
	var p v1alpha1.DeltaPipeline
	Expect(yaml.UnmarshalStrict(raw, &p)).To(Succeed())
	p.Namespace = pipelineNamespace
	Expect(p.Spec.Exporters.PrometheusRemoteWrite).NotTo(BeNil(), "the sample writes with remote write")
	p.Spec.Exporters.PrometheusRemoteWrite.Endpoint = receiverWriteURL(env.PrometheusImage != "")
	p.Spec.Exporters.PrometheusRemoteWrite.SigV4 = nil
	p.Spec.ServiceAccount.Annotations = nil
	p.Spec.Gateway.Image = env.GatewayImage
	p.Spec.Worker.Conversion.Interval = &metav1.Duration{Duration: conversionInterval}
	return &p
}

// The pipeline filledPipeline makes is small enough for the load generator
// to fill: fillSessions sessions of fillRounds rounds with seed 23 send 4 936
// streams to a worker that holds fillMaxStreams (measured on loopback through
// the collector's load_balancing exporter, which acknowledges the worker's
// partial success: the client sees no failed export).
const (
	fillMaxStreams = 3000
	fillSessions   = 160
	fillRounds     = 4
)

// filledPipeline is the Claude Code sample cut down to one gateway and one
// worker holding fillMaxStreams streams, with no state volume and only the
// worker's scrape endpoint as its destination, so that what it converts stays
// out of the receiver the other checks read.
func filledPipeline(env suiteEnv) *v1alpha1.DeltaPipeline {
	GinkgoHelper()
	p := claudeCodeSample(env)
	p.Name = "filled"
	p.Spec.Gateway.Replicas = ptr.To[int32](1)
	p.Spec.Worker.Replicas = ptr.To[int32](1)
	p.Spec.Worker.Persistence.Enabled = ptr.To(false)
	p.Spec.Worker.Conversion.MaxStreams = ptr.To[int32](fillMaxStreams)
	p.Spec.Exporters = v1alpha1.ExportersSpec{Prometheus: &v1alpha1.PrometheusSpec{}}
	return p
}

// documentedWorkerMemoryLimit is docs/api.md's default worker memory limit,
// 320 MiB + maxStreams × 1100 B rounded up to whole MiB, written out here
// so that a change of the policy shows as a failure against the docs.
func documentedWorkerMemoryLimit(maxStreams int64) int64 {
	const mib = 1 << 20
	bytes := 320*mib + maxStreams*1100
	return (bytes + mib - 1) / mib * mib
}

// runLoadPod runs bin/loadgen's image as a Job in the receiver namespace
// against endpoint, and reads the totals it logged.
func runLoadPod(ctx context.Context, k8s client.Client, env suiteEnv, endpoint string, kubectl func(context.Context, ...string) string) totals.Totals {
	GinkgoHelper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "loadgen", Namespace: receiverNamespace},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:   corev1.RestartPolicyNever,
				SecurityContext: manifests.RestrictedPodSecurityContext(65532),
				Containers: []corev1.Container{{
					Name:  "loadgen",
					Image: env.LoadgenImage,
					Args: []string{"--endpoint", endpoint, "--sessions", "20", "--shared-sessions", "4", "--rounds", "3",
						"--export-interval", "2s", "--seed", "7", "--totals-out", "/dev/stderr"},
					SecurityContext: manifests.RestrictedContainerSecurityContext(),
				}},
			}},
		},
	}
	Expect(k8s.Create(ctx, job)).To(Succeed())
	eventually(ctx, 3*time.Minute, "the loadgen Job to finish", func(ctx context.Context) error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return err
		}
		if job.Status.Failed > 0 {
			return StopTrying("the loadgen pod failed:\n" + kubectl(ctx, "-n", receiverNamespace, "logs", "job/loadgen"))
		}
		if job.Status.Succeeded == 0 {
			return fmt.Errorf("job %+v", job.Status)
		}
		return nil
	})
	logs := kubectl(ctx, "-n", receiverNamespace, "logs", "job/loadgen")
	sent, err := decodeTotals(logs)
	Expect(err).NotTo(HaveOccurred(), "the loadgen pod's log:\n%s", logs)
	Expect(k8s.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationForeground))).To(Succeed())
	return sent
}

// decodeTotals finds the totals JSON object in a loadgen log. The pod
// writes it to standard error, after its progress lines and before its last
// line: one stream, so the container log keeps it in one piece.
func decodeTotals(log string) (totals.Totals, error) {
	start := strings.Index(log, "{\n")
	if start < 0 {
		return totals.Totals{}, fmt.Errorf("no totals object in the log")
	}
	var t totals.Totals
	if err := json.NewDecoder(bytes.NewReader([]byte(log[start:]))).Decode(&t); err != nil {
		return totals.Totals{}, fmt.Errorf("decoding the totals in the log: %w", err)
	}
	if t.Series == nil {
		return totals.Totals{}, fmt.Errorf("the totals in the log have no series")
	}
	return t, nil
}

func reachedAll(want totals.Totals, received map[string][]harness.Sample) bool {
	for key, value := range want.Series {
		samples, ok := received[key]
		if !ok {
			return false
		}
		last := samples[0]
		for _, s := range samples[1:] {
			if s.TimestampMs >= last.TimestampMs {
				last = s
			}
		}
		if last.Value != value {
			return false
		}
	}
	return true
}

// dumpCluster writes what a failure needs into the run directory and the
// Ginkgo log: pods, events, and the logs of the operator and pipelines.
func dumpCluster(ctx context.Context, env suiteEnv, dir string) {
	if env.Kubectl == "" {
		return
	}
	run := func(args ...string) {
		out, _ := command(ctx, env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		fmt.Fprintln(GinkgoWriter, out)
	}
	run("get", "pods,pvc,pv", "-A", "-o", "wide")
	run("get", "deltapipelines", "-A", "-o", "yaml")
	run("get", "events", "-A", "--sort-by=.lastTimestamp")
	for _, ns := range []string{operatorNamespace, pipelineNamespace, receiverNamespace} {
		run("-n", ns, "logs", "--all-containers", "--prefix", "--tail=60", "-l", "app.kubernetes.io/name")
	}
	fmt.Fprintf(GinkgoWriter, "load generator logs and totals in %s\n", dir)
}
