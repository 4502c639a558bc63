package controllers

import (
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/internal/manifests"
)

// ownedKinds is every kind of object a pipeline turns into. The reconciler
// watches each of them, applies desired objects of these kinds only, and
// prunes, kind by kind, the objects the pipeline controls but no longer
// wants. Adding a kind is an entry here, its builder in internal/manifests,
// and an RBAC marker above Reconcile (a test fails without the marker).
//
// The order is the apply order within a tier: identities and configuration
// before the workloads that mount them, the autoscaler after its target.
var ownedKinds = []ownedKind{
	kindEntry(&corev1.ServiceAccount{}, &corev1.ServiceAccountList{}, ownedParts[*corev1.ServiceAccount]{
		// Tokens and image pull secrets are the cluster's; the operator sets metadata only.
		managed: func(*corev1.ServiceAccount) any { return nil },
		copy:    func(dst, src *corev1.ServiceAccount) {},
	}),
	kindEntry(&corev1.ConfigMap{}, &corev1.ConfigMapList{}, ownedParts[*corev1.ConfigMap]{
		exact:   true,
		managed: func(o *corev1.ConfigMap) any { return o.Data },
		copy: func(dst, src *corev1.ConfigMap) {
			dst.Data = src.Data
			dst.BinaryData = nil
		},
	}),
	// Secrets (the gateway-to-worker token, the gateways' client tokens) are
	// read and listed from the API server, never cached: a cache would hold
	// every Secret of the watched namespaces in the manager's memory. Changes
	// reach the reconciler through the Secret metadata watch.
	kindEntry(&corev1.Secret{}, &corev1.SecretList{}, ownedParts[*corev1.Secret]{
		exact:    true,
		uncached: true,
		managed:  func(o *corev1.Secret) any { return o.Data },
		copy: func(dst, src *corev1.Secret) {
			dst.Data = src.Data
			dst.StringData = nil
		},
	}),
	kindEntry(&corev1.Service{}, &corev1.ServiceList{}, ownedParts[*corev1.Service]{
		managed:           func(o *corev1.Service) any { return o.Spec },
		copy:              func(dst, src *corev1.Service) { dst.Spec = src.Spec },
		preserveAllocated: preserveServiceAllocations,
	}),
	kindEntry(&policyv1.PodDisruptionBudget{}, &policyv1.PodDisruptionBudgetList{}, ownedParts[*policyv1.PodDisruptionBudget]{
		managed: func(o *policyv1.PodDisruptionBudget) any { return o.Spec },
		copy:    func(dst, src *policyv1.PodDisruptionBudget) { dst.Spec = src.Spec },
	}),
	kindEntry(&networkingv1.NetworkPolicy{}, &networkingv1.NetworkPolicyList{}, ownedParts[*networkingv1.NetworkPolicy]{
		managed: func(o *networkingv1.NetworkPolicy) any { return o.Spec },
		copy:    func(dst, src *networkingv1.NetworkPolicy) { dst.Spec = src.Spec },
	}),
	kindEntry(&rbacv1.Role{}, &rbacv1.RoleList{}, ownedParts[*rbacv1.Role]{
		exact:   true,
		managed: func(o *rbacv1.Role) any { return o.Rules },
		copy:    func(dst, src *rbacv1.Role) { dst.Rules = src.Rules },
	}),
	kindEntry(&rbacv1.RoleBinding{}, &rbacv1.RoleBindingList{}, ownedParts[*rbacv1.RoleBinding]{
		exact:   true,
		managed: func(o *rbacv1.RoleBinding) any { return []any{o.RoleRef, o.Subjects} },
		copy:    func(dst, src *rbacv1.RoleBinding) { dst.RoleRef, dst.Subjects = src.RoleRef, src.Subjects },
	}),
	kindEntry(&appsv1.Deployment{}, &appsv1.DeploymentList{}, ownedParts[*appsv1.Deployment]{
		managed: func(o *appsv1.Deployment) any { return o.Spec },
		copy:    func(dst, src *appsv1.Deployment) { dst.Spec = src.Spec },
		preserveAllocated: func(existing, desired *appsv1.Deployment) {
			// Without spec.replicas the autoscaler sizes the gateway.
			if desired.Spec.Replicas == nil {
				desired.Spec.Replicas = existing.Spec.Replicas
			}
			preserveRolloutRestart(&existing.Spec.Template, &desired.Spec.Template)
		},
	}),
	kindEntry(&appsv1.StatefulSet{}, &appsv1.StatefulSetList{}, ownedParts[*appsv1.StatefulSet]{
		managed: func(o *appsv1.StatefulSet) any { return o.Spec },
		copy:    func(dst, src *appsv1.StatefulSet) { dst.Spec = src.Spec },
		preserveAllocated: func(existing, desired *appsv1.StatefulSet) {
			preserveRolloutRestart(&existing.Spec.Template, &desired.Spec.Template)
		},
		requiresReplacement: statefulSetRequiresReplacement,
	}),
	kindEntry(&autoscalingv2.HorizontalPodAutoscaler{}, &autoscalingv2.HorizontalPodAutoscalerList{}, ownedParts[*autoscalingv2.HorizontalPodAutoscaler]{
		managed: func(o *autoscalingv2.HorizontalPodAutoscaler) any { return o.Spec },
		copy:    func(dst, src *autoscalingv2.HorizontalPodAutoscaler) { dst.Spec = src.Spec },
	}),
	// prometheus-operator's PodMonitor, the one kind served by a CRD the
	// cluster may lack: unstructured, so the operator needs neither its Go
	// module nor its CRD to start.
	optionalKindEntry(manifests.PodMonitorKind, ownedParts[*unstructured.Unstructured]{
		managed: func(o *unstructured.Unstructured) any { return o.Object["spec"] },
		copy:    func(dst, src *unstructured.Unstructured) { dst.Object["spec"] = src.Object["spec"] },
	}),
}

// ownedKind is what the reconciler knows about one owned kind.
type ownedKind struct {
	name string
	// optional is set for a kind served by a CRD that may not be installed:
	// it is watched only when its CRD exists at start, and applied and
	// pruned only while it exists.
	optional *schema.GroupVersionKind
	// rank is the kind's place in the apply order.
	rank   int
	object client.Object
	list   client.ObjectList
	exact  bool
	// uncached kinds are read and listed through the API reader and not
	// watched through the manager's cache.
	uncached bool
	managed  func(client.Object) any
	copy     func(dst, src client.Object)
	// preserveAllocated copies into desired the values the cluster chose,
	// or a user chose through the cluster's own tools (a rollout restart).
	preserveAllocated func(existing, desired client.Object)
	// requiresReplacement reports a change the API server refuses to update.
	requiresReplacement func(existing, desired client.Object) bool
}

// ownedParts is, for one kind, the part of an object the operator sets
// besides metadata and how an update treats it.
type ownedParts[T client.Object] struct {
	// exact is for kinds without server-side defaults, where a key someone
	// added (say, to a ConfigMap) is drift too; other kinds are compared
	// only on the fields the operator sets.
	exact bool
	// uncached, see ownedKind.uncached.
	uncached bool
	// managed is the part of the object the operator sets besides metadata.
	managed func(T) any
	// copy writes that part from the desired object onto the stored one.
	copy func(dst, src T)
	// preserveAllocated, optional, copies into desired the values the
	// cluster chose and that must not be reset.
	preserveAllocated func(existing, desired T)
	// requiresReplacement, optional, reports a change to fields the API
	// server refuses to update.
	requiresReplacement func(existing, desired T) bool
}

// kindEntry erases the type of one kind's parts; the registry lookup by Go
// type guarantees the assertions hold.
func kindEntry[T client.Object, L client.ObjectList](object T, list L, parts ownedParts[T]) ownedKind {
	k := ownedKind{
		name:     reflect.TypeOf(object).Elem().Name(),
		object:   object,
		list:     list,
		exact:    parts.exact,
		uncached: parts.uncached,
		managed:  func(o client.Object) any { return parts.managed(o.(T)) },
		copy:     func(dst, src client.Object) { parts.copy(dst.(T), src.(T)) },
		preserveAllocated: func(existing, desired client.Object) {
			if parts.preserveAllocated != nil {
				parts.preserveAllocated(existing.(T), desired.(T))
			}
		},
		requiresReplacement: func(existing, desired client.Object) bool {
			return parts.requiresReplacement != nil && parts.requiresReplacement(existing.(T), desired.(T))
		},
	}
	return k
}

// optionalKindEntry is the entry of a kind served by a CRD that may be
// missing, handled as unstructured objects of gvk. It is the only
// unstructured kind, so that the lookup by Go type stays unambiguous.
func optionalKindEntry(gvk schema.GroupVersionKind, parts ownedParts[*unstructured.Unstructured]) ownedKind {
	object := &unstructured.Unstructured{}
	object.SetGroupVersionKind(gvk)
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	k := kindEntry(object, list, parts)
	k.name = gvk.Kind
	k.optional = &gvk
	return k
}

// ownedKindsByType finds a kind's entry from an object of it.
var ownedKindsByType = func() map[reflect.Type]ownedKind {
	byType := make(map[reflect.Type]ownedKind, len(ownedKinds))
	for i, k := range ownedKinds {
		k.rank = i
		byType[reflect.TypeOf(k.object)] = k
	}
	return byType
}()

// ownedKindOf returns the registry entry of obj's kind, or an error naming
// the kind when the operator does not own objects of it.
func ownedKindOf(obj client.Object) (ownedKind, error) {
	k, ok := ownedKindsByType[reflect.TypeOf(obj)]
	if !ok {
		return ownedKind{}, fmt.Errorf("the operator does not own objects of kind %T (%s): add the kind to ownedKinds in controllers/owned_kinds.go", obj, obj.GetName())
	}
	return k, nil
}

// newObject is an empty object of the kind, for watches and reads.
func (k ownedKind) newObject() client.Object { return k.object.DeepCopyObject().(client.Object) }

// newList is an empty list of the kind, for pruning.
func (k ownedKind) newList() client.ObjectList { return k.list.DeepCopyObject().(client.ObjectList) }
