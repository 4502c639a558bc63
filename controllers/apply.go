package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// managedAnnotationsAnnotation lists the annotation keys the operator set on
// an object, so keys removed from the spec can be removed from the object
// without touching annotations other controllers add.
const managedAnnotationsAnnotation = "telemetry.deltapipeline.io/managed-annotations"

// applyOutcome says what ensure did, for logs and tests.
type applyOutcome string

const (
	outcomeUnchanged applyOutcome = "unchanged"
	outcomeCreated   applyOutcome = "created"
	outcomeUpdated   applyOutcome = "updated"
	outcomeReplaced  applyOutcome = "replaced"
)

// ensure makes the cluster hold desired. It writes only when the stored
// object differs from what the operator last wrote (the desired hash) or has
// drifted from it (a field the operator sets was edited), so a reconcile of
// an unchanged pipeline makes no write.
func (r *DeltaPipelineReconciler) ensure(ctx context.Context, owner *v1alpha1.DeltaPipeline, desired client.Object) (applyOutcome, error) {
	if err := stampDesiredHash(desired); err != nil {
		return "", err
	}
	kind := kindOf(desired)

	existing := desired.DeepCopyObject().(client.Object)
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, desired); err != nil {
			return "", fmt.Errorf("creating %s %s: %w", kind, desired.GetName(), err)
		}
		return outcomeCreated, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s %s: %w", kind, desired.GetName(), err)
	}
	if ctrl := metav1.GetControllerOf(existing); ctrl != nil && ctrl.UID != owner.UID {
		return "", fmt.Errorf("%s %s already exists and is controlled by %s %s, not by this pipeline", kind, desired.GetName(), ctrl.Kind, ctrl.Name)
	}

	preserveAllocatedFields(existing, desired)
	if upToDate(existing, desired) {
		return outcomeUnchanged, nil
	}
	if requiresReplacement(existing, desired) {
		// Fields such as a StatefulSet's volume claim templates cannot be
		// updated; the object is recreated and its pods restart.
		if err := r.Delete(ctx, existing, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("deleting %s %s to change immutable fields: %w", kind, desired.GetName(), err)
		}
		if err := r.Create(ctx, desired); err != nil {
			return "", fmt.Errorf("recreating %s %s: %w", kind, desired.GetName(), err)
		}
		return outcomeReplaced, nil
	}

	mergeMetadata(existing, desired)
	copyManagedFields(existing, desired)
	if err := r.Update(ctx, existing); err != nil {
		return "", fmt.Errorf("updating %s %s: %w", kind, desired.GetName(), err)
	}
	return outcomeUpdated, nil
}

// remove deletes an object of an optional feature that was turned off, if
// this pipeline controls it.
func (r *DeltaPipelineReconciler) remove(ctx context.Context, owner *v1alpha1.DeltaPipeline, obj client.Object) error {
	err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	if ctrl := metav1.GetControllerOf(obj); ctrl == nil || ctrl.UID != owner.UID {
		return nil
	}
	if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	return nil
}

// stampDesiredHash records a digest of everything the operator sets on the object.
func stampDesiredHash(obj client.Object) error {
	payload, err := json.Marshal(struct {
		Labels      map[string]string
		Annotations map[string]string
		Owners      []metav1.OwnerReference
		Managed     any
	}{obj.GetLabels(), obj.GetAnnotations(), obj.GetOwnerReferences(), managedFields(obj)})
	if err != nil {
		return fmt.Errorf("hashing %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	annotations := obj.GetAnnotations()
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(annotations)+2)
	for k, v := range annotations {
		out[k] = v
	}
	out[naming.DesiredHashAnnotation] = manifests.ContentHash(payload)
	if len(keys) > 0 {
		out[managedAnnotationsAnnotation] = strings.Join(keys, ",")
	}
	obj.SetAnnotations(out)
	return nil
}

// upToDate is true when the stored object carries what the operator last
// wrote and nobody changed a field the operator sets. Fields the API server
// defaults (unset in desired) are ignored by the derivative comparison.
func upToDate(existing, desired client.Object) bool {
	for k, v := range desired.GetAnnotations() {
		if existing.GetAnnotations()[k] != v {
			return false
		}
	}
	for k, v := range desired.GetLabels() {
		if existing.GetLabels()[k] != v {
			return false
		}
	}
	if !slices.ContainsFunc(existing.GetOwnerReferences(), func(o metav1.OwnerReference) bool {
		return o.Controller != nil && *o.Controller && o.UID == desired.GetOwnerReferences()[0].UID
	}) {
		return false
	}
	if exactComparison(desired) {
		return equality.Semantic.DeepEqual(managedFields(desired), managedFields(existing))
	}
	return equality.Semantic.DeepDerivative(managedFields(desired), managedFields(existing))
}

// exactComparison is for kinds without server-side defaults, where an
// added key (say, in a ConfigMap) is drift too.
func exactComparison(obj client.Object) bool {
	switch obj.(type) {
	case *corev1.ConfigMap, *rbacv1.Role, *rbacv1.RoleBinding:
		return true
	}
	return false
}

// managedFields is the part of an object the operator owns besides metadata.
func managedFields(obj client.Object) any {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return o.Data
	case *corev1.Service:
		return o.Spec
	case *corev1.ServiceAccount:
		return nil
	case *appsv1.Deployment:
		return o.Spec
	case *appsv1.StatefulSet:
		return o.Spec
	case *policyv1.PodDisruptionBudget:
		return o.Spec
	case *rbacv1.Role:
		return o.Rules
	case *rbacv1.RoleBinding:
		return []any{o.RoleRef, o.Subjects}
	case *autoscalingv2.HorizontalPodAutoscaler:
		return o.Spec
	}
	panic(fmt.Sprintf("managedFields: unsupported kind %T", obj))
}

func copyManagedFields(dst, src client.Object) {
	switch d := dst.(type) {
	case *corev1.ConfigMap:
		d.Data = src.(*corev1.ConfigMap).Data
		d.BinaryData = nil
	case *corev1.Service:
		d.Spec = src.(*corev1.Service).Spec
	case *corev1.ServiceAccount:
	case *appsv1.Deployment:
		d.Spec = src.(*appsv1.Deployment).Spec
	case *appsv1.StatefulSet:
		d.Spec = src.(*appsv1.StatefulSet).Spec
	case *policyv1.PodDisruptionBudget:
		d.Spec = src.(*policyv1.PodDisruptionBudget).Spec
	case *rbacv1.Role:
		d.Rules = src.(*rbacv1.Role).Rules
	case *rbacv1.RoleBinding:
		s := src.(*rbacv1.RoleBinding)
		d.RoleRef, d.Subjects = s.RoleRef, s.Subjects
	case *autoscalingv2.HorizontalPodAutoscaler:
		d.Spec = src.(*autoscalingv2.HorizontalPodAutoscaler).Spec
	default:
		panic(fmt.Sprintf("copyManagedFields: unsupported kind %T", dst))
	}
}

// preserveAllocatedFields copies into desired the values the cluster chose
// and that must not be reset: Service IPs and node ports, and the gateway
// replica count an autoscaler set.
func preserveAllocatedFields(existing, desired client.Object) {
	switch d := desired.(type) {
	case *corev1.Service:
		e := existing.(*corev1.Service)
		if d.Spec.ClusterIP == "" {
			d.Spec.ClusterIP = e.Spec.ClusterIP
			d.Spec.ClusterIPs = e.Spec.ClusterIPs
		}
		if d.Spec.Type == e.Spec.Type {
			nodePorts := map[string]int32{}
			for _, p := range e.Spec.Ports {
				nodePorts[p.Name] = p.NodePort
			}
			for i := range d.Spec.Ports {
				if d.Spec.Ports[i].NodePort == 0 {
					d.Spec.Ports[i].NodePort = nodePorts[d.Spec.Ports[i].Name]
				}
			}
			if d.Spec.HealthCheckNodePort == 0 {
				d.Spec.HealthCheckNodePort = e.Spec.HealthCheckNodePort
			}
		}
	case *appsv1.Deployment:
		if d.Spec.Replicas == nil {
			d.Spec.Replicas = existing.(*appsv1.Deployment).Spec.Replicas
		}
	}
}

// requiresReplacement reports a change to fields the API server refuses to update.
func requiresReplacement(existing, desired client.Object) bool {
	d, ok := desired.(*appsv1.StatefulSet)
	if !ok {
		return false
	}
	e := existing.(*appsv1.StatefulSet)
	if len(d.Spec.VolumeClaimTemplates) != len(e.Spec.VolumeClaimTemplates) {
		return true
	}
	for i := range d.Spec.VolumeClaimTemplates {
		dc, ec := d.Spec.VolumeClaimTemplates[i], e.Spec.VolumeClaimTemplates[i]
		if dc.Name != ec.Name || !equality.Semantic.DeepDerivative(dc.Spec, ec.Spec) {
			return true
		}
	}
	return d.Spec.ServiceName != e.Spec.ServiceName ||
		d.Spec.PodManagementPolicy != e.Spec.PodManagementPolicy ||
		!equality.Semantic.DeepEqual(d.Spec.Selector, e.Spec.Selector)
}

// mergeMetadata sets the desired labels, annotations and owner, removes
// annotations the operator set before but no longer wants, and keeps what
// other controllers added.
func mergeMetadata(existing, desired client.Object) {
	labels := existing.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range desired.GetLabels() {
		labels[k] = v
	}
	existing.SetLabels(labels)

	annotations := existing.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	if previous := annotations[managedAnnotationsAnnotation]; previous != "" {
		for _, k := range strings.Split(previous, ",") {
			delete(annotations, k)
		}
	}
	delete(annotations, managedAnnotationsAnnotation)
	for k, v := range desired.GetAnnotations() {
		annotations[k] = v
	}
	existing.SetAnnotations(annotations)

	owners := slices.DeleteFunc(existing.GetOwnerReferences(), func(o metav1.OwnerReference) bool {
		return o.Controller != nil && *o.Controller
	})
	existing.SetOwnerReferences(append(owners, desired.GetOwnerReferences()...))
}

func kindOf(obj client.Object) string {
	return reflect.TypeOf(obj).Elem().Name()
}
