// Package v1alpha1 owns the DeltaPipeline API (telemetry.deltapipeline.io/v1alpha1):
// the resource a user applies to get a gateway tier and a worker tier that
// turn delta OpenTelemetry metrics into cumulative series.
//
// +kubebuilder:object:generate=true
// +groupName=telemetry.deltapipeline.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "telemetry.deltapipeline.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme. It
	// comes from apimachinery, not controller-runtime, so that importing the
	// API pulls in no controller machinery.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &DeltaPipeline{}, &DeltaPipelineList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
