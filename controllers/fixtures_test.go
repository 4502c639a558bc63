package controllers

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// createNamespace gives each spec its own namespace, so pipelines of
// different specs never share objects.
func createNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dpl-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func createPipeline(ctx context.Context, p *v1alpha1.DeltaPipeline) *v1alpha1.DeltaPipeline {
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	return p
}

// updatePipeline applies change to the stored pipeline, retrying when the
// operator's status writes conflict with it.
func updatePipeline(ctx context.Context, p *v1alpha1.DeltaPipeline, change func(*v1alpha1.DeltaPipeline)) {
	Eventually(func() error {
		var current v1alpha1.DeltaPipeline
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), &current); err != nil {
			return err
		}
		change(&current)
		return k8sClient.Update(ctx, &current)
	}).Should(Succeed())
}

func getPipeline(ctx context.Context, p *v1alpha1.DeltaPipeline) *v1alpha1.DeltaPipeline {
	var current v1alpha1.DeltaPipeline
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), &current)).To(Succeed())
	return &current
}

// condition returns the pipeline's condition of type t, or nil.
func condition(ctx context.Context, p *v1alpha1.DeltaPipeline, t string) func() *metav1.Condition {
	return func() *metav1.Condition {
		return meta.FindStatusCondition(getPipeline(ctx, p).Status.Conditions, t)
	}
}

// haveCondition matches a condition with the status and reason that
// describes the pipeline's current generation.
func haveCondition(ctx context.Context, p *v1alpha1.DeltaPipeline, status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(
		Not(BeNil()),
		HaveField("Status", status),
		HaveField("Reason", reason),
		WithTransform(func(c *metav1.Condition) bool {
			return c.ObservedGeneration == getPipeline(ctx, p).Generation
		}, BeTrue()),
	)
}

// ownedObject is one object the operator keeps for a pipeline.
type ownedObject struct {
	obj  client.Object
	name string
}

// ownedObjects lists every object a pipeline without autoscaling
// reconciles into, empty, for Get.
func ownedObjects(p *v1alpha1.DeltaPipeline) []ownedObject {
	objects := []ownedObject{
		{&corev1.ConfigMap{}, naming.GatewayConfigMap(p)},
		{&appsv1.Deployment{}, naming.GatewayDeployment(p)},
		{&corev1.Service{}, naming.GatewayService(p)},
		{&policyv1.PodDisruptionBudget{}, naming.GatewayPodDisruptionBudget(p)},
		{&corev1.ServiceAccount{}, naming.GatewayServiceAccount(p)},
		{&corev1.ConfigMap{}, naming.WorkerConfigMap(p)},
		{&appsv1.StatefulSet{}, naming.WorkerStatefulSet(p)},
		{&corev1.Service{}, naming.WorkerHeadlessService(p)},
		{&policyv1.PodDisruptionBudget{}, naming.WorkerPodDisruptionBudget(p)},
		{&corev1.ServiceAccount{}, naming.WorkerServiceAccount(p)},
	}
	if manifests.WorkerAuthenticationEnabled(p) {
		objects = append(objects, ownedObject{&corev1.Secret{}, naming.WorkerTokenSecret(p)})
	}
	if manifests.NetworkPoliciesEnabled(p) {
		objects = append(objects,
			ownedObject{&networkingv1.NetworkPolicy{}, naming.GatewayNetworkPolicy(p)},
			ownedObject{&networkingv1.NetworkPolicy{}, naming.WorkerNetworkPolicy(p)})
	}
	if manifests.HandoffEnabled(p) {
		objects = append(objects,
			ownedObject{&corev1.ConfigMap{}, naming.MembershipConfigMap(p)},
			ownedObject{&corev1.Secret{}, naming.PeerTokenSecret(p)},
			ownedObject{&rbacv1.Role{}, naming.WorkerMembershipRole(p)},
			ownedObject{&rbacv1.RoleBinding{}, naming.WorkerMembershipRoleBinding(p)})
	}
	if manifests.GatewayReadsKubernetesAPI(p) {
		objects = append(objects,
			ownedObject{&rbacv1.Role{}, naming.GatewayResolverRole(p)},
			ownedObject{&rbacv1.RoleBinding{}, naming.GatewayResolverRoleBinding(p)})
	}
	return objects
}

func (o ownedObject) String() string { return fmt.Sprintf("%s %s", kindOf(o.obj), o.name) }

// fetch returns a fresh copy of the stored object.
func fetch[T client.Object](ctx context.Context, p *v1alpha1.DeltaPipeline, obj T, name string) (T, error) {
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, obj)
	return obj, err
}

// waitForObject waits until the named object exists.
func waitForObject(ctx context.Context, p *v1alpha1.DeltaPipeline, obj client.Object, name string) {
	GinkgoHelper()
	Eventually(func() error {
		_, err := fetch(ctx, p, obj, name)
		return err
	}).Should(Succeed(), "waiting for %s %s", kindOf(obj), name)
}

// waitForObjects waits until every owned object exists.
func waitForObjects(ctx context.Context, p *v1alpha1.DeltaPipeline) {
	GinkgoHelper()
	for _, o := range ownedObjects(p) {
		waitForObject(ctx, p, o.obj.DeepCopyObject().(client.Object), o.name)
	}
}

// waitForDeletion waits until the named object is gone.
func waitForDeletion(ctx context.Context, p *v1alpha1.DeltaPipeline, obj client.Object, name string) {
	GinkgoHelper()
	Eventually(func() error {
		_, err := fetch(ctx, p, obj, name)
		return err
	}).Should(Satisfy(apierrors.IsNotFound), "waiting for %s %s to be deleted", kindOf(obj), name)
}

// resourceVersion reads the named object's resourceVersion, for polling
// that it stays unchanged.
func resourceVersion(ctx context.Context, p *v1alpha1.DeltaPipeline, obj client.Object, name string) func() (string, error) {
	return func() (string, error) {
		_, err := fetch(ctx, p, obj, name)
		return obj.GetResourceVersion(), err
	}
}

// resourceVersions records the resourceVersion of the pipeline and of every
// owned object; equal snapshots mean nothing was written in between.
func resourceVersions(ctx context.Context, p *v1alpha1.DeltaPipeline) map[string]string {
	versions := map[string]string{"DeltaPipeline " + p.Name: getPipeline(ctx, p).ResourceVersion}
	for _, o := range ownedObjects(p) {
		obj, err := fetch(ctx, p, o.obj.DeepCopyObject().(client.Object), o.name)
		Expect(err).NotTo(HaveOccurred(), "reading %s", o)
		versions[o.String()] = obj.GetResourceVersion()
	}
	return versions
}

// markTiersReady simulates every gateway and worker pod becoming ready, as
// the Deployment and StatefulSet controllers would report it.
func markTiersReady(ctx context.Context, p *v1alpha1.DeltaPipeline) {
	Eventually(func() error {
		d, err := fetch(ctx, p, &appsv1.Deployment{}, naming.GatewayDeployment(p))
		if err != nil {
			return err
		}
		n := ptr.Deref(d.Spec.Replicas, 1)
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		return k8sClient.Status().Update(ctx, d)
	}).Should(Succeed())
	Eventually(func() error {
		s, err := fetch(ctx, p, &appsv1.StatefulSet{}, naming.WorkerStatefulSet(p))
		if err != nil {
			return err
		}
		n := ptr.Deref(s.Spec.Replicas, 1)
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n, CurrentReplicas: n}
		return k8sClient.Status().Update(ctx, s)
	}).Should(Succeed())
}

// warningEvents returns the notes of Warning Events about p with reason.
func warningEvents(ctx context.Context, p *v1alpha1.DeltaPipeline, reason string) func() []string {
	return func() []string {
		var list eventsv1.EventList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(p.Namespace))).To(Succeed())
		var notes []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "DeltaPipeline" && e.Regarding.Name == p.Name && e.Type == corev1.EventTypeWarning && e.Reason == reason {
				notes = append(notes, e.Note)
			}
		}
		return notes
	}
}

// requestCounter counts the API requests sent through a rest.Config by HTTP
// method, to prove that a reconcile wrote nothing.
type requestCounter struct {
	mu       sync.Mutex
	byMethod map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.byMethod[req.Method]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (c *requestCounter) writes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for method, n := range c.byMethod {
		if method != http.MethodGet && method != http.MethodHead {
			out[method] = n
		}
	}
	return out
}

func (c *requestCounter) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byMethod[http.MethodGet]
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countingClient is a client whose every request is counted.
func countingClient() (client.Client, *requestCounter) {
	counter := &requestCounter{byMethod: map[string]int{}}
	cfg := rest.CopyConfig(restConfig)
	cfg.WrapTransport = counter.wrap
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c, counter
}

// forcedReconcile is what one more reconcile of a pipeline did.
type forcedReconcile struct {
	result ctrl.Result
	err    error
	// writes counts the API requests other than reads, by HTTP method.
	writes map[string]int
	events []string
}

// reconcileCounted reconciles p once more with a reconciler whose every
// request is counted.
func reconcileCounted(ctx context.Context, p *v1alpha1.DeltaPipeline) forcedReconcile {
	c, counter := countingClient()
	recorder := events.NewFakeRecorder(10)
	forced := &DeltaPipelineReconciler{Client: c, APIReader: c, Recorder: recorder, Options: testOptions}
	result, err := forced.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
	close(recorder.Events)
	var recorded []string
	for e := range recorder.Events {
		recorded = append(recorded, e)
	}
	return forcedReconcile{result: result, err: err, writes: counter.writes(), events: recorded}
}

// forcedReconcileWrites reconciles p once more, expecting success, and
// returns the writes it made and the Events it recorded.
func forcedReconcileWrites(ctx context.Context, p *v1alpha1.DeltaPipeline) (map[string]int, []string) {
	GinkgoHelper()
	forced := reconcileCounted(ctx, p)
	Expect(forced.err).NotTo(HaveOccurred())
	return forced.writes, forced.events
}

// eventuallyWritesNothing waits until reconciling p again writes nothing,
// the sign that the stored objects round-trip unchanged.
func eventuallyWritesNothing(ctx context.Context, p *v1alpha1.DeltaPipeline) {
	GinkgoHelper()
	Eventually(func() map[string]int {
		writes, _ := forcedReconcileWrites(ctx, p)
		return writes
	}).Should(BeEmpty())
}

// expectControlledBy checks obj is controlled by p, so it is garbage-collected with p.
func expectControlledBy(obj client.Object, p *v1alpha1.DeltaPipeline) {
	GinkgoHelper()
	ref := metav1.GetControllerOf(obj)
	Expect(ref).NotTo(BeNil(), "%s %s has no controller reference", kindOf(obj), obj.GetName())
	Expect(ref.APIVersion).To(Equal(v1alpha1.GroupVersion.String()))
	Expect(ref.Kind).To(Equal("DeltaPipeline"))
	Expect(ref.Name).To(Equal(p.Name))
	Expect(ref.UID).To(Equal(p.UID))
	Expect(ptr.Deref(ref.BlockOwnerDeletion, false)).To(BeTrue())
}

// reportedProgress plays the workers' /handoff for the suite, where no
// worker process runs: a spec sets what each worker of a pipeline reports.
type reportedProgress struct {
	mu     sync.Mutex
	status map[string]handoff.Status
}

var workerProgress = &reportedProgress{status: map[string]handoff.Status{}}

func progressKey(p *v1alpha1.DeltaPipeline, ordinal int) string {
	return p.Namespace + "/" + naming.WorkerPod(p, ordinal)
}

func (r *reportedProgress) HandoffStatus(_ context.Context, p *v1alpha1.DeltaPipeline, ordinal int) (handoff.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.status[progressKey(p, ordinal)]
	if !ok {
		return handoff.Status{}, fmt.Errorf("worker %s is not reachable", naming.WorkerPod(p, ordinal))
	}
	return st, nil
}

// report makes workers [0, n) of p report st.
func (r *reportedProgress) report(p *v1alpha1.DeltaPipeline, n int, st handoff.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range n {
		st.Member = naming.WorkerPod(p, i)
		r.status[progressKey(p, i)] = st
	}
}
