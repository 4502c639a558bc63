package manifests

import (
	"path"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// ReferenceKind is the kind of object a pipeline field points at.
type ReferenceKind string

const (
	ReferenceSecret    ReferenceKind = "Secret"
	ReferenceConfigMap ReferenceKind = "ConfigMap"
)

// Reference is one Secret or ConfigMap key a pipeline reads, with the spec
// field that names it, so a missing one can be reported precisely.
type Reference struct {
	Kind  ReferenceKind
	Name  string
	Key   string
	Field string
}

// MountPath is where the referenced key appears in a worker container.
func (r Reference) MountPath() string {
	if r.Kind == ReferenceConfigMap {
		return path.Join(WorkerConfigMapDir, r.Name, r.Key)
	}
	return path.Join(WorkerSecretsDir, r.Name, r.Key)
}

func secretRef(ref v1alpha1.SecretKeyRef, field string) Reference {
	return Reference{Kind: ReferenceSecret, Name: ref.Name, Key: ref.Key, Field: field}
}

func fileRef(src v1alpha1.FileSource, field string) Reference {
	if src.ConfigMapKeyRef != nil {
		return Reference{Kind: ReferenceConfigMap, Name: src.ConfigMapKeyRef.Name, Key: src.ConfigMapKeyRef.Key, Field: field + ".configMapKeyRef"}
	}
	if src.SecretKeyRef != nil {
		return secretRef(*src.SecretKeyRef, field+".secretKeyRef")
	}
	return Reference{}
}

// References lists every Secret and ConfigMap key the pipeline reads, in
// spec order.
func References(p *v1alpha1.DeltaPipeline) []Reference {
	var refs []Reference
	e := p.Spec.Exporters
	if rw := e.PrometheusRemoteWrite; rw != nil {
		const f = "spec.exporters.prometheusRemoteWrite"
		refs = append(refs, headerRefs(f, rw.Headers)...)
		if rw.BasicAuth != nil {
			refs = append(refs, secretRef(rw.BasicAuth.PasswordSecretRef, f+".basicAuth.passwordSecretRef"))
		}
		if rw.BearerTokenSecretRef != nil {
			refs = append(refs, secretRef(*rw.BearerTokenSecretRef, f+".bearerTokenSecretRef"))
		}
		refs = append(refs, tlsRefs(f+".tls", rw.TLS)...)
	}
	if o := e.OTLP; o != nil {
		const f = "spec.exporters.otlp"
		refs = append(refs, headerRefs(f, o.Headers)...)
		refs = append(refs, tlsRefs(f+".tls", o.TLS)...)
	}
	return refs
}

func headerRefs(field string, headers []v1alpha1.HeaderSpec) []Reference {
	var refs []Reference
	for _, h := range headers {
		if h.ValueFrom != nil {
			refs = append(refs, secretRef(h.ValueFrom.SecretKeyRef, field+".headers["+h.Name+"].valueFrom.secretKeyRef"))
		}
	}
	return refs
}

func tlsRefs(field string, t *v1alpha1.TLSSpec) []Reference {
	if t == nil {
		return nil
	}
	var refs []Reference
	if t.CA != nil {
		refs = append(refs, fileRef(*t.CA, field+".ca"))
	}
	if t.Cert != nil {
		refs = append(refs, fileRef(*t.Cert, field+".cert"))
	}
	if t.Key != nil {
		refs = append(refs, secretRef(*t.Key, field+".key"))
	}
	return refs
}

// ReferencedSecretNames are the distinct Secret names the pipeline reads, in
// first-use order; the controller indexes pipelines by them.
func ReferencedSecretNames(p *v1alpha1.DeltaPipeline) []string {
	return referencedNames(p, ReferenceSecret)
}

// ReferencedConfigMapNames are the distinct ConfigMap names the pipeline reads.
func ReferencedConfigMapNames(p *v1alpha1.DeltaPipeline) []string {
	return referencedNames(p, ReferenceConfigMap)
}

func referencedNames(p *v1alpha1.DeltaPipeline, kind ReferenceKind) []string {
	var names []string
	seen := map[string]bool{}
	for _, r := range References(p) {
		if r.Kind == kind && !seen[r.Name] {
			seen[r.Name] = true
			names = append(names, r.Name)
		}
	}
	return names
}
