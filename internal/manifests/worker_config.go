package manifests

import (
	"fmt"
	"maps"
	"strconv"

	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

// WorkerConfig translates the pipeline into the worker's configuration file.
// Secret values never appear in it: each is a path under WorkerSecretsDir
// where the worker StatefulSet mounts the Secret.
func WorkerConfig(p *v1alpha1.DeltaPipeline) (workerconfig.Config, error) {
	var c workerconfig.Config

	conv := p.Spec.Worker.Conversion
	c.Conversion.MaxStreams = int(ptr.Deref(conv.MaxStreams, 0))
	if conv.MaxStale != nil {
		c.Conversion.MaxStale = workerconfig.D(conv.MaxStale.Duration)
	}
	if conv.Interval != nil {
		c.Conversion.Interval = workerconfig.D(conv.Interval.Duration)
	}
	c.Conversion.Writers = workerconfig.Writers(conv.Writers)

	if PersistenceEnabled(p) {
		c.State.Directory = WorkerStateDir
	}
	if WorkerAuthenticationEnabled(p) {
		c.Receivers.OTLP.AuthTokenFile = WorkerTokenPath
	}
	if HandoffEnabled(p) {
		c.Handoff = &workerconfig.Handoff{
			RoutingKey:        string(p.Spec.Routing.Key),
			RoutingAttributes: p.Spec.Routing.Attributes,
			Membership: workerconfig.MembershipSource{ConfigMap: &workerconfig.ConfigMapRef{
				Namespace: p.Namespace, Name: naming.MembershipConfigMap(p), Key: MembershipKey,
			}},
			Peer: workerconfig.PeerServer{TokenFile: PeerTokenPath},
		}
	}

	e := p.Spec.Exporters
	if rw := e.PrometheusRemoteWrite; rw != nil {
		const f = "spec.exporters.prometheusRemoteWrite"
		out := &workerconfig.RemoteWriteExporter{
			Endpoint:       rw.Endpoint,
			Headers:        workerHeaders(f, rw.Headers),
			TLS:            workerTLS(f+".tls", rw.TLS),
			ExternalLabels: maps.Clone(rw.ExternalLabels),
		}
		if rw.SigV4 != nil {
			out.SigV4 = &workerconfig.SigV4{Region: rw.SigV4.Region, RoleARN: rw.SigV4.RoleARN}
		}
		if rw.BasicAuth != nil {
			out.BasicAuth = &workerconfig.BasicAuth{
				Username:     rw.BasicAuth.Username,
				PasswordFile: secretRef(rw.BasicAuth.PasswordSecretRef, "").MountPath(),
			}
		}
		if rw.BearerTokenSecretRef != nil {
			out.BearerTokenFile = secretRef(*rw.BearerTokenSecretRef, "").MountPath()
		}
		c.Exporters.PrometheusRemoteWrite = out
	}
	if o := e.OTLP; o != nil {
		const f = "spec.exporters.otlp"
		c.Exporters.OTLP = &workerconfig.OTLPExporter{
			Endpoint:    o.Endpoint,
			Insecure:    o.Insecure,
			Headers:     workerHeaders(f, o.Headers),
			TLS:         workerTLS(f+".tls", o.TLS),
			Compression: o.Compression,
		}
	}
	if pe := e.Prometheus; pe != nil {
		c.Exporters.Prometheus = &workerconfig.PrometheusExporter{Endpoint: ":" + strconv.Itoa(int(PrometheusPort(p)))}
	}

	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return workerconfig.Config{}, fmt.Errorf("building the worker configuration: %w", err)
	}
	return c, nil
}

// WorkerConfigYAML renders WorkerConfig.
func WorkerConfigYAML(p *v1alpha1.DeltaPipeline) ([]byte, error) {
	c, err := WorkerConfig(p)
	if err != nil {
		return nil, err
	}
	return workerconfig.Marshal(c)
}

// PrometheusPort is the worker's scrape port, 0 without the prometheus exporter.
func PrometheusPort(p *v1alpha1.DeltaPipeline) int32 {
	pe := p.Spec.Exporters.Prometheus
	if pe == nil {
		return 0
	}
	if pe.Port == 0 {
		return workerconfig.DefaultPrometheusPort
	}
	return pe.Port
}

func workerHeaders(field string, headers []v1alpha1.HeaderSpec) []workerconfig.Header {
	var out []workerconfig.Header
	for _, h := range headers {
		wh := workerconfig.Header{Name: h.Name}
		switch {
		case h.ValueFrom != nil:
			wh.ValueFile = secretRef(h.ValueFrom.SecretKeyRef, field).MountPath()
		case h.Value != nil:
			wh.Value = *h.Value
		}
		out = append(out, wh)
	}
	return out
}

func workerTLS(field string, t *v1alpha1.TLSSpec) *workerconfig.TLS {
	if t == nil {
		return nil
	}
	out := &workerconfig.TLS{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CA != nil {
		out.CAFile = fileRef(*t.CA, field+".ca").MountPath()
	}
	if t.Cert != nil {
		out.CertFile = fileRef(*t.Cert, field+".cert").MountPath()
	}
	if t.Key != nil {
		out.KeyFile = secretRef(*t.Key, field+".key").MountPath()
	}
	return out
}
