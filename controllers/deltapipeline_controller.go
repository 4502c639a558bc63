// Package controllers owns the DeltaPipeline reconciler: it turns each
// pipeline into the objects built by internal/manifests, keeps them as built,
// and reports what it sees in the pipeline's status and Events.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// Field indexes mapping a Secret or ConfigMap name to the pipelines reading it.
const (
	secretRefIndex    = ".spec.referencedSecrets"
	configMapRefIndex = ".spec.referencedConfigMaps"
)

// eventActionReconcile is the action of every Event the reconciler records;
// the reason is the condition reason it reports.
const eventActionReconcile = "Reconcile"

// DeltaPipelineReconciler reconciles DeltaPipeline objects.
type DeltaPipelineReconciler struct {
	client.Client
	// APIReader reads referenced Secrets and ConfigMaps directly, so the
	// operator does not cache every Secret of the cluster.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Options   manifests.Options
	// HandoffStatus reads the workers' hand-over progress while the ring
	// rescales; nil reads it from the worker pods over HTTP.
	HandoffStatus HandoffStatusReader
}

// +kubebuilder:rbac:groups=telemetry.deltapipeline.io,resources=deltapipelines,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=telemetry.deltapipeline.io,resources=deltapipelines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=telemetry.deltapipeline.io,resources=deltapipelines/finalizers,verbs=update

// The owned kinds (ownedKinds in owned_kinds.go) are watched, applied and
// pruned, so each needs every verb; a controller test checks the ClusterRole.
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;list;watch;create;update;patch;delete

// Secrets are owned too (the gateway-to-worker token, the gateways' client
// tokens) but never cached: they are read and listed from the API server.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=endpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// The operator holds the endpoint permissions it grants to the gateway
// resolver Role: Kubernetes refuses to let it grant more than it has.

// Reconcile brings one pipeline's objects and status up to date.
func (r *DeltaPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)

	var p v1alpha1.DeltaPipeline
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		// Owned objects go with the pipeline through garbage collection.
		return ctrl.Result{}, nil
	}

	status := p.Status.DeepCopy()
	status.ObservedGeneration = p.Generation
	status.Endpoints = manifests.GatewayEndpoints(&p)
	setCondition(status, &p, routingCondition(p.Spec.Routing))

	configCondition := metav1.Condition{Type: v1alpha1.ConditionConfigValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid, Message: "the gateway and worker configurations are valid"}

	monitors, err := r.podMonitors(&p, status)
	if err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, status, err)
	}

	clientTokens, gatewayRefs, err := r.gatewayReferences(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	workerRefs, err := r.referencesCondition(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	// One condition reports the first missing reference, the gateway's first.
	refCondition := workerRefs
	if gatewayRefs.Status == metav1.ConditionFalse {
		refCondition = gatewayRefs
	}
	setCondition(status, &p, refCondition)
	if refCondition.Status == metav1.ConditionFalse {
		// The Secret watch brings the pipeline back here once it is fixed.
		r.warnOnChange(&p, refCondition)
	}

	workerToken, err := r.workerToken(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	peerToken, err := r.peerToken(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	creds := manifests.Credentials{ClientTokens: clientTokens, WorkerToken: workerToken, PeerToken: peerToken}

	// What both tiers mount goes first, so neither tier's pods wait for it.
	shared := manifests.BuildShared(&p, creds)
	if err := r.ensureTier(ctx, &p, shared); err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, status, err)
	}
	built := []builtTier{{component: naming.ComponentShared, objects: shared}}

	if gatewayRefs.Status == metav1.ConditionTrue {
		// Otherwise the gateway keeps its current configuration: a collector
		// whose certificate or token file is missing does not start.
		gateway, err := manifests.BuildGateway(&p, r.Options, creds)
		if err != nil {
			// The gateway keeps running its current configuration.
			configCondition = invalidConfig(v1alpha1.ReasonInvalidGatewayConfig, err)
		} else {
			objects := slices.Concat(gateway.Objects(), monitors[naming.ComponentGateway])
			if err := r.ensureTier(ctx, &p, objects); err != nil {
				return ctrl.Result{}, r.failed(ctx, &p, status, err)
			}
			built = append(built, builtTier{component: naming.ComponentGateway, objects: objects})
		}
	}

	// With a missing reference the worker tier keeps its current
	// configuration: rolling workers onto a configuration whose files are
	// missing would stop them.
	plan := manifests.SteadyRing(1)
	if workerRefs.Status == metav1.ConditionTrue {
		var progress ringProgress
		if manifests.HandoffEnabled(&p) {
			if plan, progress, err = r.planRing(ctx, &p); err != nil {
				return ctrl.Result{}, r.failed(ctx, &p, status, err)
			}
		}
		worker, err := manifests.BuildWorker(&p, r.Options, creds, plan)
		switch {
		case err != nil && configCondition.Status == metav1.ConditionTrue:
			configCondition = invalidConfig(v1alpha1.ReasonInvalidWorkerConfig, err)
		case err != nil:
			configCondition.Message += "; " + err.Error()
		default:
			objects := slices.Concat(worker.Objects(), monitors[naming.ComponentWorker])
			if err := r.ensureTier(ctx, &p, objects); err != nil {
				return ctrl.Result{}, r.failed(ctx, &p, status, err)
			}
			built = append(built, builtTier{component: naming.ComponentWorker, objects: objects})
			status.Membership = nil
			if worker.Membership == nil {
				meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ConditionRescaling)
			} else {
				m := manifests.Membership(&p, plan)
				status.Membership = &v1alpha1.MembershipStatus{Epoch: int64(m.Epoch), Workers: int32(len(m.Members)), PreviousWorkers: int32(len(m.Previous))}
				rescaling := rescalingCondition(&p, plan, progress, time.Now())
				r.noteRescale(&p, rescaling)
				setCondition(status, &p, rescaling)
			}
		}
	}

	// Pruning follows both tiers, so the gateway Deployment has its
	// spec.replicas back before a removed autoscaler goes.
	if err := r.prune(ctx, &p, built); err != nil {
		return ctrl.Result{}, r.failed(ctx, &p, status, err)
	}

	if configCondition.Status == metav1.ConditionFalse {
		r.warnOnChange(&p, configCondition)
	}
	setCondition(status, &p, configCondition)

	if err := r.observeTiers(ctx, &p, status); err != nil {
		return ctrl.Result{}, err
	}
	r.reportResources(&p, status)
	setCondition(status, &p, readyCondition(status))

	// The workers' progress is not a watched object: a rescale is looked
	// at again until it is done.
	var result ctrl.Result
	if plan.Phase != manifests.RingSteady {
		result.RequeueAfter = rescalePoll
	}
	if statusEqual(&p.Status, status) {
		return result, nil
	}
	p.Status = *status
	if err := r.Status().Update(ctx, &p); err != nil {
		if apierrors.IsConflict(err) {
			// Another write raced ours; the next reconcile recomputes the
			// status from the newer object.
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("updating status of DeltaPipeline %s: %w", req.NamespacedName, err)
	}
	logger.V(1).Info("status updated", "ready", meta.IsStatusConditionTrue(status.Conditions, v1alpha1.ConditionReady))
	return result, nil
}

// warnOnChange records a Warning Event for a False condition unless the
// stored status already reports the same problem, so repeated reconciles of
// an unchanged problem do not repeat the Event.
func (r *DeltaPipelineReconciler) warnOnChange(p *v1alpha1.DeltaPipeline, c metav1.Condition) {
	if previous := meta.FindStatusCondition(p.Status.Conditions, c.Type); previous != nil &&
		previous.Status == c.Status && previous.Reason == c.Reason && previous.Message == c.Message {
		return
	}
	r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, c.Reason, eventActionReconcile, "%s", c.Message)
}

// failed reports a write the API server refused: Ready turns False with the
// error, a Warning Event is recorded, and the error is returned so that the
// write is retried with backoff.
func (r *DeltaPipelineReconciler) failed(ctx context.Context, p *v1alpha1.DeltaPipeline, status *v1alpha1.DeltaPipelineStatus, err error) error {
	log.FromContext(ctx).Error(err, "reconcile failed")
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonReconcileFailed, Message: err.Error()}
	r.warnOnChange(p, c)
	setCondition(status, p, c)
	if !statusEqual(&p.Status, status) {
		updated := p.DeepCopy()
		updated.Status = *status
		if statusErr := r.Status().Update(ctx, updated); statusErr != nil && !apierrors.IsNotFound(statusErr) {
			log.FromContext(ctx).Error(statusErr, "reporting the failure in the status")
		}
	}
	return err
}

// ensureTier applies one tier's objects in the owned kinds' order. Every
// object's kind is checked first, so an unowned kind fails the tier before
// anything of it is written.
func (r *DeltaPipelineReconciler) ensureTier(ctx context.Context, p *v1alpha1.DeltaPipeline, objects []client.Object) error {
	ranked := make([]rankedObject, 0, len(objects))
	for _, obj := range objects {
		k, err := ownedKindOf(obj)
		if err != nil {
			return err
		}
		ranked = append(ranked, rankedObject{rank: k.rank, obj: obj})
	}
	slices.SortStableFunc(ranked, func(a, b rankedObject) int { return a.rank - b.rank })
	for _, o := range ranked {
		if err := r.ensureLogged(ctx, p, o.obj); err != nil {
			return err
		}
	}
	return nil
}

type rankedObject struct {
	rank int
	obj  client.Object
}

func (r *DeltaPipelineReconciler) ensureLogged(ctx context.Context, p *v1alpha1.DeltaPipeline, obj client.Object) error {
	outcome, err := r.ensure(ctx, p, obj)
	if err != nil {
		return err
	}
	if outcome != outcomeUnchanged {
		log.FromContext(ctx).Info("object "+string(outcome), "kind", kindOf(obj), "name", obj.GetName())
	}
	return nil
}

// referencesCondition checks every referenced Secret and ConfigMap key and
// reports the first missing one, naming the object and the spec field.
func (r *DeltaPipelineReconciler) referencesCondition(ctx context.Context, p *v1alpha1.DeltaPipeline) (metav1.Condition, error) {
	for _, ref := range manifests.References(p) {
		notFoundReason, keyReason := missingReferenceReasons(ref.Kind)
		hasKey, err := r.referenceHasKey(ctx, p.Namespace, ref)
		if apierrors.IsNotFound(err) {
			return missingReference(notFoundReason, fmt.Sprintf("%s %q referenced by %s not found in namespace %s", ref.Kind, ref.Name, ref.Field, p.Namespace)), nil
		}
		if err != nil {
			return metav1.Condition{}, fmt.Errorf("reading %s %s/%s referenced by %s: %w", ref.Kind, p.Namespace, ref.Name, ref.Field, err)
		}
		if !hasKey {
			return missingReference(keyReason, fmt.Sprintf("%s %q referenced by %s has no key %q", ref.Kind, ref.Name, ref.Field, ref.Key)), nil
		}
	}
	return metav1.Condition{Type: v1alpha1.ConditionReferencesResolved, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonResolved, Message: "every referenced Secret and ConfigMap key exists"}, nil
}

// referenceHasKey reads the referenced Secret or ConfigMap straight from the
// API server, so the operator need not cache them, and reports whether it
// has the key.
func (r *DeltaPipelineReconciler) referenceHasKey(ctx context.Context, namespace string, ref manifests.Reference) (bool, error) {
	key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	switch ref.Kind {
	case manifests.ReferenceSecret:
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, key, &s); err != nil {
			return false, err
		}
		_, ok := s.Data[ref.Key]
		return ok, nil
	case manifests.ReferenceConfigMap:
		var cm corev1.ConfigMap
		if err := r.APIReader.Get(ctx, key, &cm); err != nil {
			return false, err
		}
		_, inData := cm.Data[ref.Key]
		_, inBinaryData := cm.BinaryData[ref.Key]
		return inData || inBinaryData, nil
	}
	return false, fmt.Errorf("unknown reference kind %q", ref.Kind)
}

// missingReferenceReasons are the condition reasons for a missing object of
// kind and for a missing key in one.
func missingReferenceReasons(kind manifests.ReferenceKind) (notFound, keyNotFound string) {
	if kind == manifests.ReferenceConfigMap {
		return v1alpha1.ReasonConfigMapNotFound, v1alpha1.ReasonConfigMapKeyNotFound
	}
	return v1alpha1.ReasonSecretNotFound, v1alpha1.ReasonSecretKeyNotFound
}

func invalidConfig(reason string, err error) metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionConfigValid, Status: metav1.ConditionFalse, Reason: reason, Message: err.Error()}
}

func missingReference(reason, message string) metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionReferencesResolved, Status: metav1.ConditionFalse, Reason: reason, Message: message}
}

// observeTiers copies replica counts from the gateway Deployment and the
// worker StatefulSet and sets the availability conditions.
func (r *DeltaPipelineReconciler) observeTiers(ctx context.Context, p *v1alpha1.DeltaPipeline, status *v1alpha1.DeltaPipelineStatus) error {
	var deploy appsv1.Deployment
	err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: naming.GatewayDeployment(p)}, &deploy)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading the gateway Deployment: %w", err)
	}
	gatewayDesired := manifests.GatewayReplicas(p)
	if err == nil && deploy.Spec.Replicas != nil {
		gatewayDesired = *deploy.Spec.Replicas
	}
	status.Gateway = tierStatus(gatewayDesired, deploy.Status.ReadyReplicas)
	setCondition(status, p, availability(v1alpha1.ConditionGatewayAvailable, "gateway", status.Gateway))

	var sts appsv1.StatefulSet
	err = r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: naming.WorkerStatefulSet(p)}, &sts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading the worker StatefulSet: %w", err)
	}
	// status.workers.replicas is what the StatefulSet is set to, not
	// spec.worker.replicas: it is the scale subresource's current count, which
	// an autoscaler compares with its recommendation.
	workersDesired := manifests.WorkerReplicas(p)
	selector := manifests.WorkerSelector(p)
	if err == nil && sts.Spec.Replicas != nil {
		workersDesired = *sts.Spec.Replicas
	}
	if err == nil && sts.Spec.Selector != nil {
		// The StatefulSet's selector is immutable, so it is the one that
		// says which pods are the workers.
		selector = metav1.FormatLabelSelector(sts.Spec.Selector)
	}
	status.Workers = v1alpha1.WorkerTierStatus{TierStatus: tierStatus(workersDesired, sts.Status.ReadyReplicas), Selector: selector}
	setCondition(status, p, availability(v1alpha1.ConditionWorkersAvailable, "workers", status.Workers.TierStatus))
	return nil
}

func tierStatus(desired, ready int32) v1alpha1.TierStatus {
	return v1alpha1.TierStatus{Replicas: desired, ReadyReplicas: ready, Summary: fmt.Sprintf("%d/%d", ready, desired)}
}

// availability is True when every desired replica of a tier is ready.
func availability(conditionType, tier string, s v1alpha1.TierStatus) metav1.Condition {
	if s.Replicas > 0 && s.ReadyReplicas >= s.Replicas {
		return metav1.Condition{Type: conditionType, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable,
			Message: fmt.Sprintf("%s: %d of %d replicas ready", tier, s.ReadyReplicas, s.Replicas)}
	}
	return metav1.Condition{Type: conditionType, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonProgressing,
		Message: fmt.Sprintf("%s: %d of %d replicas ready", tier, s.ReadyReplicas, s.Replicas)}
}

// routingCondition warns about routing keys that put every stream on one worker.
func routingCondition(r v1alpha1.RoutingSpec) metav1.Condition {
	if manifests.RoutingSpreadsLoad(r) {
		return metav1.Condition{Type: v1alpha1.ConditionRoutingBalanced, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSpreadRouting,
			Message: fmt.Sprintf("routing key %s spreads streams over the workers", routingKeyOrDefault(r))}
	}
	return metav1.Condition{Type: v1alpha1.ConditionRoutingBalanced, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonHotSpotRouting,
		Message: fmt.Sprintf("spec.routing.key %s hashes attributes that are identical for all clients of one program (Claude Code reports the same resource for every user), so every stream lands on one worker; use streamID or attributes [session.id]", r.Key)}
}

func routingKeyOrDefault(r v1alpha1.RoutingSpec) v1alpha1.RoutingKey {
	if r.Key == "" {
		return v1alpha1.RoutingKeyStreamID
	}
	return r.Key
}

// readyCondition is True when both tiers are available and nothing blocks
// the configuration from being applied.
func readyCondition(status *v1alpha1.DeltaPipelineStatus) metav1.Condition {
	var blocking []string
	for _, t := range []string{v1alpha1.ConditionReferencesResolved, v1alpha1.ConditionConfigValid, v1alpha1.ConditionGatewayAvailable, v1alpha1.ConditionWorkersAvailable} {
		if !meta.IsStatusConditionTrue(status.Conditions, t) {
			blocking = append(blocking, t)
		}
	}
	if len(blocking) == 0 {
		return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable, Message: "both tiers are available"}
	}
	return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotReady,
		Message: "not true: " + strings.Join(blocking, ", ")}
}

func setCondition(status *v1alpha1.DeltaPipelineStatus, p *v1alpha1.DeltaPipeline, c metav1.Condition) {
	c.ObservedGeneration = p.Generation
	meta.SetStatusCondition(&status.Conditions, c)
}

// statusEqual compares every status field. SetStatusCondition keeps a
// condition's transition time while its status holds, so an unchanged
// pipeline yields an equal status and no write.
func statusEqual(a, b *v1alpha1.DeltaPipelineStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// SetupWithManager registers the reconciler, its watches and field indexes.
func (r *DeltaPipelineReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &v1alpha1.DeltaPipeline{}, secretRefIndex, func(o client.Object) []string {
		p := o.(*v1alpha1.DeltaPipeline)
		return slices.Concat(manifests.ReferencedSecretNames(p), manifests.GatewaySecretNames(p))
	}); err != nil {
		return fmt.Errorf("indexing pipelines by referenced Secret: %w", err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.DeltaPipeline{}, configMapRefIndex, func(o client.Object) []string {
		return manifests.ReferencedConfigMapNames(o.(*v1alpha1.DeltaPipeline))
	}); err != nil {
		return fmt.Errorf("indexing pipelines by referenced ConfigMap: %w", err)
	}

	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DeltaPipeline{})
	for _, k := range ownedKinds {
		if k.uncached {
			// Watched through the Secret metadata watch below.
			continue
		}
		if k.optional != nil {
			if _, err := mgr.GetRESTMapper().RESTMapping(k.optional.GroupKind(), k.optional.Version); err != nil {
				// Without its CRD at start the kind is not watched: its
				// objects are applied on every reconcile once the CRD exists.
				continue
			}
		}
		b = b.Owns(k.newObject())
	}
	return b.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.pipelinesReadingOrOwningSecret())).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.pipelinesReferencing(configMapRefIndex))).
		Named("deltapipeline").
		Complete(r)
}

// pipelinesReadingOrOwningSecret maps a Secret to the pipelines that read it
// and to the pipeline that controls it (Secrets are an owned kind that is not
// cached, so this metadata watch stands in for Owns).
func (r *DeltaPipelineReconciler) pipelinesReadingOrOwningSecret() handler.MapFunc {
	readers := r.pipelinesReferencing(secretRefIndex)
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		requests := readers(ctx, o)
		if owner := metav1.GetControllerOf(o); owner != nil && owner.Kind == "DeltaPipeline" && owner.APIVersion == v1alpha1.GroupVersion.String() {
			owned := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: owner.Name}}
			if !slices.Contains(requests, owned) {
				requests = append(requests, owned)
			}
		}
		return requests
	}
}

// pipelinesReferencing maps a Secret or ConfigMap to the pipelines of its
// namespace that read it, so creating a missing one resolves them.
func (r *DeltaPipelineReconciler) pipelinesReferencing(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.DeltaPipelineList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "listing pipelines referencing an object", "index", index, "name", o.GetName())
			return nil
		}
		requests := make([]reconcile.Request, 0, len(list.Items))
		for _, p := range list.Items {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
		}
		return requests
	}
}
