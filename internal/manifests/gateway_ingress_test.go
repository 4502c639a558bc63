package manifests

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

// testCredentials are the values the controller would read for the golden cases.
var testCredentials = Credentials{ClientTokens: []string{"team-a-token", "team-b-token"}, WorkerToken: "worker-token-value"}

func TestTLSAndAuthApplyToBothReceivers(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayTLS("claude-gateway-tls"),
		pipelinetest.WithGatewayBearerTokens(v1alpha1.SecretKeyRef{Name: "team-a", Key: "token"}))
	cfg := gatewayConfigMap(t, p)
	for _, proto := range []string{"grpc", "http"} {
		server := dig(cfg, "receivers", "otlp", "protocols", proto).(map[string]any)
		tls, _ := server["tls"].(map[string]any)
		if tls["cert_file"] != GatewayTLSDir+"/tls.crt" || tls["key_file"] != GatewayTLSDir+"/tls.key" || tls["reload_interval"] != tlsReloadInterval {
			t.Errorf("%s tls = %v", proto, tls)
		}
		if got := dig(server, "auth", "authenticator"); got != clientBearerTokenAuthID {
			t.Errorf("%s authenticator = %v, want %s", proto, got, clientBearerTokenAuthID)
		}
	}
	if got := dig(cfg, "extensions", clientBearerTokenAuthID, "filename"); got != GatewayClientTokensDir+"/"+GatewayClientTokensFile {
		t.Errorf("bearertokenauth filename = %v", got)
	}
	if got := dig(cfg, "service", "telemetry", "metrics", "level"); got != "detailed" {
		t.Errorf("telemetry level = %v, want detailed: refused requests are counted only in the server metrics", got)
	}
	if got := dig(gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry")), "service", "telemetry", "metrics", "level"); got != nil {
		t.Errorf("telemetry level without auth = %v, want the collector's default", got)
	}
	if exts := dig(cfg, "service", "extensions").([]any); !slices.Contains(exts, any(clientBearerTokenAuthID)) {
		t.Errorf("service.extensions = %v lacks %s", exts, clientBearerTokenAuthID)
	}
}

func TestWithoutTLSOrAuthTheReceiversArePlain(t *testing.T) {
	cfg := gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry"))
	for _, proto := range []string{"grpc", "http"} {
		server := dig(cfg, "receivers", "otlp", "protocols", proto).(map[string]any)
		if _, ok := server["tls"]; ok {
			t.Errorf("%s has tls without spec.gateway.tls", proto)
		}
		if _, ok := server["auth"]; ok {
			t.Errorf("%s has auth without spec.gateway.auth", proto)
		}
	}
}

func TestClientTokensSecretHasOneTokenPerLine(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayBearerTokens(
		v1alpha1.SecretKeyRef{Name: "a", Key: "t"}, v1alpha1.SecretKeyRef{Name: "b", Key: "t"}))
	s := GatewayClientTokensSecret(p, []string{"one", "two"})
	if got := string(s.Data[GatewayClientTokensFile]); got != "one\ntwo\n" {
		t.Errorf("tokens file = %q, want one per line", got)
	}
	if GatewayClientTokensSecret(pipelinetest.Stored("claude", "telemetry"), nil) != nil {
		t.Error("a client tokens Secret without bearer tokens configured")
	}
	if GatewayClientTokensSecret(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayOIDC("https://idp.example.com", "x")), nil) != nil {
		t.Error("a client tokens Secret with OIDC")
	}
}

// The client tokens and the TLS files are re-read by the collector, so a
// change of them must not roll the gateways; the worker token is read only
// at start, so a change of it must.
func TestOnlyTheWorkerTokenRollsTheGateways(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayTLS("tls"),
		pipelinetest.WithGatewayBearerTokens(v1alpha1.SecretKeyRef{Name: "a", Key: "t"}))
	hash := func(c Credentials) string {
		g, err := BuildGateway(p, DefaultOptions(), c)
		if err != nil {
			t.Fatal(err)
		}
		return g.Deployment.Spec.Template.Annotations[naming.ConfigHashAnnotation]
	}
	base := hash(Credentials{ClientTokens: []string{"one"}, WorkerToken: "w1"})
	if base == "" {
		t.Fatal("no config hash annotation on the gateway pod template")
	}
	if hash(Credentials{ClientTokens: []string{"one", "two"}, WorkerToken: "w1"}) != base {
		t.Error("a new client token rolls the gateways")
	}
	if hash(Credentials{ClientTokens: []string{"one"}, WorkerToken: "w2"}) == base {
		t.Error("a new worker token does not roll the gateways")
	}
}

func TestWorkerTokenIsMountedAtTheSamePathInBothTiers(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry")
	g, err := BuildGateway(p, DefaultOptions(), testCredentials)
	if err != nil {
		t.Fatal(err)
	}
	w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	for tier, spec := range map[string]corev1.PodSpec{"gateway": g.Deployment.Spec.Template.Spec, "worker": w.StatefulSet.Spec.Template.Spec} {
		if !slices.ContainsFunc(spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == WorkerTokenMountPath && m.SubPath == ""
		}) {
			t.Errorf("%s pods do not mount the worker token directory at %s", tier, WorkerTokenMountPath)
		}
	}
	wc, err := WorkerConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if wc.Receivers.OTLP.AuthTokenFile != WorkerTokenPath {
		t.Errorf("worker authTokenFile = %q, want %q", wc.Receivers.OTLP.AuthTokenFile, WorkerTokenPath)
	}
	if got := dig(gatewayConfigMap(t, p), "exporters", routerID, "bearer_token_file"); got != WorkerTokenPath {
		t.Errorf("router bearer_token_file = %v, want %s", got, WorkerTokenPath)
	}
	lb := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing))
	header := dig(gatewayConfigMap(t, lb), "exporters", "load_balancing", "protocol", "otlp", "headers", "authorization")
	if header != "Bearer ${file:"+WorkerTokenPath+"}" {
		t.Errorf("load_balancing authorization header = %v", header)
	}
	if s := WorkerTokenSecret(p, "abc"); s == nil || string(s.Data[WorkerTokenFile]) != "abc" {
		t.Errorf("worker token Secret = %v", s)
	}

	off := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerAuthentication(false))
	if WorkerTokenSecret(off, "abc") != nil || len(BuildShared(off, Credentials{WorkerToken: "abc"})) != 0 {
		t.Error("a worker token Secret with spec.worker.authentication.enabled false")
	}
	if _, ok := dig(gatewayConfigMap(t, off), "exporters", routerID).(map[string]any)["bearer_token_file"]; ok {
		t.Error("the router sends a worker token with authentication off")
	}
	offLB := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithWorkerAuthentication(false))
	if _, ok := dig(gatewayConfigMap(t, offLB), "exporters", "load_balancing", "protocol", "otlp").(map[string]any)["headers"]; ok {
		t.Error("the gateways send a worker token with authentication off")
	}
}

func TestOIDCIssuerMustBeHTTPS(t *testing.T) {
	for _, issuer := range []string{"http://login.example.com", "login.example.com", "https://", "://x"} {
		p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayOIDC(issuer, "aud"))
		if _, err := GatewayCollectorConfig(p); err == nil || !strings.Contains(err.Error(), "spec.gateway.auth.oidc.issuerURL") {
			t.Errorf("issuer %q: error %v, want one naming spec.gateway.auth.oidc.issuerURL", issuer, err)
		}
	}
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayOIDC("https://login.example.com/realms/dev", "claude-code"))
	provider := dig(gatewayConfigMap(t, p), "extensions", clientOIDCAuthID, "providers").([]any)[0].(map[string]any)
	if provider["issuer_url"] != "https://login.example.com/realms/dev" || provider["audience"] != "claude-code" {
		t.Errorf("oidc provider = %v", provider)
	}
}

func TestUserExtensionMayNotTakeTheAuthenticatorID(t *testing.T) {
	cfg, err := pipelinetest.GatewayConfig(`{"extensions": {"bearertokenauth/clients": {"token": "x"}}, "receivers": {}, "exporters": {}, "service": {"pipelines": {}}}`)
	if err != nil {
		t.Fatal(err)
	}
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayConfig(cfg),
		pipelinetest.WithGatewayBearerTokens(v1alpha1.SecretKeyRef{Name: "a", Key: "t"}))
	if _, err := GatewayCollectorConfig(p); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("error %v, want the clash reported", err)
	}
}
