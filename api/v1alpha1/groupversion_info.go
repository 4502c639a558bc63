// Package v1alpha1 owns the DeltaPipeline API (telemetry.deltapipeline.io/v1alpha1):
// the resource a user applies to get a gateway tier and a worker tier that
// turn delta OpenTelemetry metrics into cumulative series.
//
// +kubebuilder:object:generate=true
// +groupName=telemetry.deltapipeline.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "telemetry.deltapipeline.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
