package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

func TestAvailabilityNeedsEveryDesiredReplica(t *testing.T) {
	for _, tc := range []struct {
		desired, ready int32
		want           metav1.ConditionStatus
	}{
		{3, 3, metav1.ConditionTrue},
		{3, 2, metav1.ConditionFalse},
		{0, 0, metav1.ConditionFalse},
		{2, 3, metav1.ConditionTrue},
	} {
		c := availability(v1alpha1.ConditionWorkersAvailable, "workers", tierStatus(tc.desired, tc.ready))
		if c.Status != tc.want {
			t.Errorf("%d of %d ready: %s, want %s", tc.ready, tc.desired, c.Status, tc.want)
		}
	}
}

func TestReadyListsWhatBlocksIt(t *testing.T) {
	status := &v1alpha1.DeltaPipelineStatus{}
	for _, c := range []string{v1alpha1.ConditionReferencesResolved, v1alpha1.ConditionConfigValid, v1alpha1.ConditionGatewayAvailable} {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue, Reason: "x"})
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: v1alpha1.ConditionWorkersAvailable, Status: metav1.ConditionFalse, Reason: "x"})
	ready := readyCondition(status)
	if ready.Status != metav1.ConditionFalse || ready.Message != "not true: WorkersAvailable" {
		t.Errorf("ready = %s %q", ready.Status, ready.Message)
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: v1alpha1.ConditionWorkersAvailable, Status: metav1.ConditionTrue, Reason: "x"})
	if ready := readyCondition(status); ready.Status != metav1.ConditionTrue {
		t.Errorf("ready = %s %q with every condition True", ready.Status, ready.Message)
	}
}

func TestRoutingBalancedWarnsAboutResourceKeys(t *testing.T) {
	for key, want := range map[v1alpha1.RoutingKey]metav1.ConditionStatus{
		"":                            metav1.ConditionTrue,
		v1alpha1.RoutingKeyStreamID:   metav1.ConditionTrue,
		v1alpha1.RoutingKeyAttributes: metav1.ConditionTrue,
		v1alpha1.RoutingKeyResource:   metav1.ConditionFalse,
		v1alpha1.RoutingKeyService:    metav1.ConditionFalse,
	} {
		if got := routingCondition(v1alpha1.RoutingSpec{Key: key}).Status; got != want {
			t.Errorf("key %q: %s, want %s", key, got, want)
		}
	}
}

func TestMergeMetadataKeepsWhatOthersAdded(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "telemetry.deltapipeline.io/v1alpha1", Kind: "DeltaPipeline", Name: "p", UID: "new", Controller: ptr.To(true)}
	existing := &corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Labels: map[string]string{"team": "obs", naming.LabelInstance: "old"},
		Annotations: map[string]string{
			"lb/scheme":                  "internal",
			"kubectl.kubernetes.io/note": "kept",
			managedAnnotationsAnnotation: "lb/scheme",
		},
		OwnerReferences: []metav1.OwnerReference{
			{Kind: "DeltaPipeline", Name: "p", UID: "old", Controller: ptr.To(true)},
			{Kind: "Other", Name: "o", UID: "other"},
		},
	}}
	desired := &corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Labels:          map[string]string{naming.LabelInstance: "p"},
		Annotations:     map[string]string{"lb/type": "nlb"},
		OwnerReferences: []metav1.OwnerReference{owner},
	}}
	if err := stampDesiredHash(registered(t, desired), desired); err != nil {
		t.Fatal(err)
	}
	mergeMetadata(existing, desired)

	if existing.Labels["team"] != "obs" || existing.Labels[naming.LabelInstance] != "p" {
		t.Errorf("labels %v", existing.Labels)
	}
	a := existing.Annotations
	if _, ok := a["lb/scheme"]; ok {
		t.Errorf("an annotation the spec no longer sets was kept: %v", a)
	}
	if a["lb/type"] != "nlb" || a["kubectl.kubernetes.io/note"] != "kept" || a[managedAnnotationsAnnotation] != "lb/type" || a[naming.DesiredHashAnnotation] == "" {
		t.Errorf("annotations %v", a)
	}
	if len(existing.OwnerReferences) != 2 || existing.OwnerReferences[1].UID != "new" || existing.OwnerReferences[0].UID != "other" {
		t.Errorf("owner references %v: want the other owner kept and the controller replaced", existing.OwnerReferences)
	}
}

func TestDesiredHashFollowsContent(t *testing.T) {
	build := func(data string) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{Data: map[string]string{"k": data}}
		if err := stampDesiredHash(registered(t, cm), cm); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	a, b, c := build("1"), build("1"), build("2")
	if a.Annotations[naming.DesiredHashAnnotation] != b.Annotations[naming.DesiredHashAnnotation] {
		t.Error("equal content, different hashes")
	}
	if a.Annotations[naming.DesiredHashAnnotation] == c.Annotations[naming.DesiredHashAnnotation] {
		t.Error("different content, equal hashes")
	}
}

func TestImmutableStatefulSetFieldsRequireReplacement(t *testing.T) {
	base := func() *appsv1.StatefulSet {
		return &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
			ServiceName:         "w",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "state"},
				Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				}},
			}},
		}}
	}
	for name, change := range map[string]func(*appsv1.StatefulSet){
		"claim removed": func(s *appsv1.StatefulSet) { s.Spec.VolumeClaimTemplates = nil },
		"claim resized": func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		},
		"service renamed":  func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "x" },
		"selector changed": func(s *appsv1.StatefulSet) { s.Spec.Selector.MatchLabels["a"] = "c" },
	} {
		desired := base()
		change(desired)
		if !registered(t, desired).requiresReplacement(base(), desired) {
			t.Errorf("%s: no replacement", name)
		}
	}
	replicas := base()
	replicas.Spec.Replicas = ptr.To[int32](5)
	replicas.Spec.Template.Spec.Containers = []corev1.Container{{Image: "new"}}
	if registered(t, replicas).requiresReplacement(base(), replicas) {
		t.Error("replicas and pod template can be updated in place")
	}
}

func TestAllocatedServiceFieldsArePreserved(t *testing.T) {
	existing := &corev1.Service{Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.7", ClusterIPs: []string{"10.0.0.7"},
		Ports:               []corev1.ServicePort{{Name: "otlp-grpc", Port: 4317, NodePort: 31001}},
		HealthCheckNodePort: 32000,
	}}
	desired := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "otlp-grpc", Port: 4317}}}}
	registered(t, desired).preserveAllocated(existing, desired)
	if desired.Spec.ClusterIP != "10.0.0.7" || desired.Spec.Ports[0].NodePort != 31001 || desired.Spec.HealthCheckNodePort != 32000 {
		t.Errorf("allocated fields not carried over: %+v", desired.Spec)
	}

	toClusterIP := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{{Name: "otlp-grpc", Port: 4317}}}}
	registered(t, toClusterIP).preserveAllocated(existing, toClusterIP)
	if toClusterIP.Spec.Ports[0].NodePort != 0 {
		t.Error("a node port was kept on a Service changing to ClusterIP, which the API server refuses")
	}
}

// registered is the registry entry of obj's kind.
func registered(t *testing.T, obj client.Object) ownedKind {
	t.Helper()
	k, err := ownedKindOf(obj)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPruneScopeFollowsTheBuiltTiers(t *testing.T) {
	labelled := func(component string) client.Object {
		o := &corev1.ConfigMap{}
		if component != "" {
			o.Labels = map[string]string{naming.LabelComponent: component}
		}
		return o
	}
	both := map[string]bool{naming.ComponentGateway: true, naming.ComponentWorker: true}
	gatewayOnly := map[string]bool{naming.ComponentGateway: true}
	for _, tc := range []struct {
		component string
		built     map[string]bool
		want      bool
	}{
		{naming.ComponentGateway, gatewayOnly, true},
		{naming.ComponentWorker, gatewayOnly, false},
		{"", gatewayOnly, false},
		{"sidecar", gatewayOnly, false},
		{naming.ComponentWorker, both, true},
		{"", both, true},
		{"sidecar", both, true},
	} {
		if got := inPruneScope(labelled(tc.component), tc.built); got != tc.want {
			t.Errorf("component %q with tiers %v built: prunable %v, want %v", tc.component, tc.built, got, tc.want)
		}
	}
}
