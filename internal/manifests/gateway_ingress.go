package manifests

import (
	"fmt"
	"net/url"
	"path"
	"strconv"

	otelv1beta1 "github.com/open-telemetry/opentelemetry-operator/apis/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// What the gateway's receivers check and what the gateways send to the
// workers: TLS (spec.gateway.tls), client authentication (spec.gateway.auth)
// and the gateway-to-worker token (spec.worker.authentication). Everything
// here is upstream collector configuration: the receivers' own TLS settings
// and the contrib bearertokenauth and oidc extensions.

// Files of the gateway pods. Each Secret is mounted as a directory, never
// with subPath: the kubelet refreshes a directory mount when the Secret
// changes, and the collector re-reads these files without a restart.
const (
	// GatewayTLSDir holds tls.crt and tls.key of spec.gateway.tls.secretName.
	GatewayTLSDir = "/etc/deltapipeline/gateway-tls"
	// GatewayClientTokensDir holds GatewayClientTokensFile.
	GatewayClientTokensDir = "/etc/deltapipeline/client-tokens"
	// GatewayClientTokensFile (also the key of the Secret
	// naming.GatewayClientTokensSecret) lists every token of
	// spec.gateway.auth.bearerTokens, one per line.
	GatewayClientTokensFile = "tokens"
)

// The gateway-to-worker token, mounted at the same path in gateway and worker
// pods so that any other router of the gateway tier can send the same file.
const (
	// WorkerTokenMountPath is the directory of the token in both pods.
	WorkerTokenMountPath = "/etc/deltapipeline/worker-token"
	// WorkerTokenFile is the token's file name in WorkerTokenMountPath and
	// its key in the Secret naming.WorkerTokenSecret.
	WorkerTokenFile = "token"
)

// WorkerTokenPath is the token's full path in gateway and worker pods.
const WorkerTokenPath = WorkerTokenMountPath + "/" + WorkerTokenFile

// tlsReloadInterval is how often the receivers re-read the certificate. The
// kubelet refreshes a changed Secret within about a minute, and cert-manager
// renews well before expiry, so a renewed certificate is served within two
// minutes and no pod restarts.
const tlsReloadInterval = "1m"

// Authenticator component IDs of the receivers.
const (
	clientBearerTokenAuthID = "bearertokenauth/clients"
	clientOIDCAuthID        = "oidc/clients"
)

// Volume names of the gateway pods.
const (
	gatewayTLSVolume          = "gateway-tls"
	gatewayClientTokensVolume = "client-tokens"
	workerTokenVolume         = "worker-token"
)

// WorkerAuthenticationEnabled reports whether the workers require the
// gateway-to-worker token; it is on unless spec.worker.authentication.enabled
// is false.
func WorkerAuthenticationEnabled(p *v1alpha1.DeltaPipeline) bool {
	return ptr.Deref(p.Spec.Worker.Authentication.Enabled, true)
}

// GatewaySecretNames are the user's Secrets the gateway reads
// (spec.gateway.tls and spec.gateway.auth.bearerTokens), in spec order
// without repeats; the controller watches them.
func GatewaySecretNames(p *v1alpha1.DeltaPipeline) []string {
	var names []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if t := p.Spec.Gateway.TLS; t != nil {
		add(t.SecretName)
	}
	if a := p.Spec.Gateway.Auth; a != nil {
		for _, ref := range a.BearerTokens {
			add(ref.Name)
		}
	}
	return names
}

// gatewayReceiverProtocols are the otlp receiver's two servers with the
// pipeline's TLS and authenticator.
func gatewayReceiverProtocols(p *v1alpha1.DeltaPipeline) map[string]any {
	server := func(port int) map[string]any {
		s := map[string]any{"endpoint": "0.0.0.0:" + strconv.Itoa(port)}
		if p.Spec.Gateway.TLS != nil {
			s["tls"] = map[string]any{
				"cert_file":       path.Join(GatewayTLSDir, corev1.TLSCertKey),
				"key_file":        path.Join(GatewayTLSDir, corev1.TLSPrivateKeyKey),
				"reload_interval": tlsReloadInterval,
			}
		}
		if id := clientAuthenticatorID(p); id != "" {
			s["auth"] = map[string]any{"authenticator": id}
		}
		return s
	}
	return map[string]any{
		"grpc": server(OTLPGRPCPort),
		"http": server(OTLPHTTPPort),
	}
}

func clientAuthenticatorID(p *v1alpha1.DeltaPipeline) string {
	a := p.Spec.Gateway.Auth
	switch {
	case a == nil:
		return ""
	case len(a.BearerTokens) > 0:
		return clientBearerTokenAuthID
	case a.OIDC != nil:
		return clientOIDCAuthID
	}
	return ""
}

// gatewayIngressExtensions are the authenticator extensions of
// spec.gateway.auth, to be listed in service.extensions. user are the
// extensions of spec.gateway.config, which may not reuse their IDs.
//
// Bearer tokens come from one file that the extension watches: the
// extension accepts every line of it, and re-reads it when the kubelet
// swaps a refreshed Secret in, so adding or removing a token drops no
// request. Its inline tokens list would need a restart for every change.
func gatewayIngressExtensions(p *v1alpha1.DeltaPipeline, user map[string]any) (map[string]any, []string, error) {
	a := p.Spec.Gateway.Auth
	if a == nil {
		return nil, nil, nil
	}
	id := clientAuthenticatorID(p)
	if _, clash := user[id]; clash {
		return nil, nil, fmt.Errorf("spec.gateway.config.extensions.%s: reserved: spec.gateway.auth configures it", id)
	}
	switch id {
	case clientBearerTokenAuthID:
		return map[string]any{id: map[string]any{
			"filename": path.Join(GatewayClientTokensDir, GatewayClientTokensFile),
		}}, []string{id}, nil
	case clientOIDCAuthID:
		if err := ValidateOIDCIssuer(a.OIDC.IssuerURL); err != nil {
			return nil, nil, err
		}
		return map[string]any{id: map[string]any{
			"providers": []any{map[string]any{
				"issuer_url": a.OIDC.IssuerURL,
				"audience":   a.OIDC.Audience,
			}},
		}}, []string{id}, nil
	}
	return nil, nil, fmt.Errorf("spec.gateway.auth: set exactly one of bearerTokens and oidc")
}

// withIngressTelemetry raises the collector's own metrics to level detailed
// when spec.gateway.auth is set and the telemetry section is the operator's:
// a request the authenticator refuses never reaches the receiver, so only
// the HTTP and gRPC server metrics count it
// (http_server_request_duration_count{http_response_status_code="401"},
// rpc_server_call_duration_count{rpc_response_status_code="UNAUTHENTICATED"}),
// and the collector records those at level detailed only. A user's own telemetry section is kept as written.
func withIngressTelemetry(p *v1alpha1.DeltaPipeline, user, telemetry *otelv1beta1.AnyConfig) *otelv1beta1.AnyConfig {
	if clientAuthenticatorID(p) == "" || (user != nil && len(user.Object) > 0) {
		return telemetry
	}
	if metrics, ok := telemetry.Object["metrics"].(map[string]any); ok {
		metrics["level"] = "detailed"
	}
	return telemetry
}

// workerTokenHeaders is what the routing exporter adds to every request to a
// worker: the gateway-to-worker token. The collector expands ${file:...} when
// it starts; the gateway Deployment's config hash covers the token, so a new
// token rolls the gateways. (The bearertokenauth client extension, which
// would re-read the file, refuses to send a token over the plaintext gRPC the
// gateways use towards the workers.)
func workerTokenHeaders(p *v1alpha1.DeltaPipeline) map[string]any {
	if !WorkerAuthenticationEnabled(p) {
		return nil
	}
	return map[string]any{"authorization": "Bearer ${file:" + WorkerTokenPath + "}"}
}

// gatewayIngressVolumes are the gateway pod's volumes and the collector's
// mounts for TLS, client tokens and the worker token.
func gatewayIngressVolumes(p *v1alpha1.DeltaPipeline) ([]corev1.Volume, []corev1.VolumeMount) {
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	add := func(volume, secret, dir string, keys ...string) {
		v, m := secretFiles(volume, secret, dir, keys...)
		volumes, mounts = append(volumes, v), append(mounts, m)
	}
	if t := p.Spec.Gateway.TLS; t != nil {
		add(gatewayTLSVolume, t.SecretName, GatewayTLSDir, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	if clientAuthenticatorID(p) == clientBearerTokenAuthID {
		add(gatewayClientTokensVolume, naming.GatewayClientTokensSecret(p), GatewayClientTokensDir, GatewayClientTokensFile)
	}
	if WorkerAuthenticationEnabled(p) {
		add(workerTokenVolume, naming.WorkerTokenSecret(p), WorkerTokenMountPath, WorkerTokenFile)
	}
	return volumes, mounts
}

// workerTokenVolumes mount the gateway-to-worker token into a worker pod.
func workerTokenVolumes(p *v1alpha1.DeltaPipeline) ([]corev1.Volume, []corev1.VolumeMount) {
	if !WorkerAuthenticationEnabled(p) {
		return nil, nil
	}
	v, m := secretFiles(workerTokenVolume, naming.WorkerTokenSecret(p), WorkerTokenMountPath, WorkerTokenFile)
	return []corev1.Volume{v}, []corev1.VolumeMount{m}
}

// secretFiles mounts keys of a Secret as files of dir, read only, readable
// by the pod's group only.
func secretFiles(volume, secret, dir string, keys ...string) (corev1.Volume, corev1.VolumeMount) {
	items := make([]corev1.KeyToPath, len(keys))
	for i, k := range keys {
		items[i] = corev1.KeyToPath{Key: k, Path: k}
	}
	return corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  secret,
			Items:       items,
			DefaultMode: ptr.To[int32](0o440),
		}}},
		corev1.VolumeMount{Name: volume, MountPath: dir, ReadOnly: true}
}

// ValidateOIDCIssuer checks what the CRD's CEL rule checks, for objects
// stored before the rule existed: the issuer must be an absolute https URL.
func ValidateOIDCIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("spec.gateway.auth.oidc.issuerURL %q is not a URL: %w", issuer, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("spec.gateway.auth.oidc.issuerURL %q must be an https URL such as https://login.example.com/realms/dev", issuer)
	}
	return nil
}
