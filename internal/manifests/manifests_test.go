package manifests

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
	"github.com/deltapipeline/deltapipeline/internal/workerconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func goldenCases(t *testing.T) map[string]*v1alpha1.DeltaPipeline {
	t.Helper()
	extraProcessors, err := pipelinetest.GatewayConfig(`{
		"receivers": {"otlp/in-cluster": {"protocols": {"grpc": {"endpoint": "0.0.0.0:14317"}}}},
		"processors": {
			"filter/drop-debug": {"metrics": {"metric": ["name == \"debug.calls\""]}},
			"resource/cluster": {"attributes": [{"key": "k8s.cluster.name", "value": "prod", "action": "upsert"}]}
		},
		"exporters": {},
		"service": {"pipelines": {"metrics": {"receivers": ["otlp/in-cluster"], "processors": ["resource/cluster", "filter/drop-debug"], "exporters": []}}}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*v1alpha1.DeltaPipeline{
		"default":                   pipelinetest.Stored("claude", "telemetry"),
		"attributes":                pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes, "session.id")),
		"dns-resolver":              pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverDNS), pipelinetest.WithPersistence(false)),
		"k8s-resolver":              pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverK8s)),
		"load-balancing":            pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing)),
		"load-balancing-attributes": pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes, "session.id")),
		"amp-sigv4":                 pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes, "session.id"), pipelinetest.WithExporters(pipelinetest.AMPExporters())),
		"otlp-secrets":              pipelinetest.Stored("claude", "telemetry", pipelinetest.WithExporters(pipelinetest.OTLPWithSecretsExporters())),
		"extra-processors":          pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayConfig(extraProcessors)),
		"gateway-tls":               pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayTLS("claude-gateway-tls")),
		"gateway-bearer-tokens": pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayTLS("claude-gateway-tls"),
			pipelinetest.WithGatewayBearerTokens(v1alpha1.SecretKeyRef{Name: "team-a", Key: "token"}, v1alpha1.SecretKeyRef{Name: "team-b", Key: "token"})),
		"gateway-oidc": pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayTLS("claude-gateway-tls"),
			pipelinetest.WithGatewayOIDC("https://login.example.com/realms/dev", "claude-code")),
		"worker-auth-off": pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerAuthentication(false)),
		"resources-partial": pipelinetest.Stored("claude", "telemetry",
			pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "1Gi")}),
			pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("cpu", "2")})),
		"resources-unlimited": pipelinetest.Stored("claude", "telemetry",
			pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "0")}),
			pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "0")})),
		"resources-none": pipelinetest.Stored("claude", "telemetry",
			pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("cpu", "0", "memory", "0"), Limits: pipelinetest.Resources("memory", "0")}),
			pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("cpu", "0", "memory", "0"), Limits: pipelinetest.Resources("memory", "0")})),
	}
}

// workloadGoldenCases are the pipelines whose Deployment and StatefulSet
// are kept as golden files: the pod templates show the sizing policy.
var workloadGoldenCases = []string{"default", "load-balancing", "resources-partial", "resources-unlimited", "resources-none", "small-pipeline", "gateway-bearer-tokens", "worker-auth-off"}

func TestGoldenWorkloads(t *testing.T) {
	cases := goldenCases(t)
	cases["small-pipeline"] = pipelinetest.Stored("claude", "telemetry", pipelinetest.WithMaxStreams(10_000))
	for _, name := range workloadGoldenCases {
		t.Run(name, func(t *testing.T) {
			p := cases[name]
			g, err := BuildGateway(p, DefaultOptions(), testCredentials)
			if err != nil {
				t.Fatal(err)
			}
			w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
			if err != nil {
				t.Fatal(err)
			}
			for file, obj := range map[string]any{name + ".gateway-deployment.yaml": g.Deployment, name + ".worker-statefulset.yaml": w.StatefulSet} {
				out, err := yaml.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				compareGolden(t, filepath.Join("testdata", file), out)
			}
		})
	}
}

func TestGoldenConfigs(t *testing.T) {
	for name, p := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			gateway, err := GatewayCollectorConfigYAML(p)
			if err != nil {
				t.Fatalf("gateway config: %v", err)
			}
			compareGolden(t, filepath.Join("testdata", name+".gateway.yaml"), gateway)

			worker, err := WorkerConfigYAML(p)
			if err != nil {
				t.Fatalf("worker config: %v", err)
			}
			compareGolden(t, filepath.Join("testdata", name+".worker.yaml"), worker)
			// The worker must accept what the operator writes.
			if _, err := workerconfig.Parse(worker); err != nil {
				t.Fatalf("the worker refuses the rendered configuration: %v", err)
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/manifests -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run go test ./internal/manifests -update after checking the change):\n--- got\n%s", path, got)
	}
}

func gatewayConfigMap(t *testing.T, p *v1alpha1.DeltaPipeline) map[string]any {
	t.Helper()
	data, err := GatewayCollectorConfigYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func TestLoadBalancingRetriesPerWorkerOnly(t *testing.T) {
	cfg := gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing)))
	lb := dig(cfg, "exporters", "load_balancing").(map[string]any)
	if dig(lb, "retry_on_failure", "enabled") != false {
		t.Errorf("top-level retry_on_failure must be disabled, got %v", lb["retry_on_failure"])
	}
	if _, ok := lb["sending_queue"]; ok {
		t.Error("top-level sending_queue must not be set")
	}
	otlp := dig(lb, "protocol", "otlp").(map[string]any)
	if dig(otlp, "retry_on_failure", "enabled") != true || dig(otlp, "sending_queue", "enabled") != true {
		t.Errorf("per-worker queue and retry must be enabled: %v", otlp)
	}
	if got := dig(otlp, "retry_on_failure", "max_elapsed_time"); got != "180s" {
		t.Errorf("max_elapsed_time = %v, want at least 120s to outlast a worker restart", got)
	}
	if dig(otlp, "tls", "insecure") != true {
		t.Error("workers listen without TLS inside the cluster")
	}
}

func TestStaticResolverListsEveryWorkerPod(t *testing.T) {
	static := dig(gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithWorkerReplicas(2))), "exporters", "load_balancing", "resolver", "static").(map[string]any)
	want := []any{"claude-worker-0.claude-worker.telemetry.svc:4317", "claude-worker-1.claude-worker.telemetry.svc:4317"}
	if !slices.Equal(static["hostnames"].([]any), want) {
		t.Errorf("static resolver hostnames = %v, want %v", static["hostnames"], want)
	}
	g, err := BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing)), DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Role != nil || g.RoleBinding != nil {
		t.Error("the static resolver needs no API access")
	}
}

func TestResolverPointsAtTheWorkerHeadlessService(t *testing.T) {
	k8s := dig(gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverK8s))), "exporters", "load_balancing", "resolver", "k8s").(map[string]any)
	if k8s["service"] != "claude-worker.telemetry" || k8s["return_hostnames"] != true {
		t.Errorf("k8s resolver = %v", k8s)
	}
	dns := dig(gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverDNS))), "exporters", "load_balancing", "resolver", "dns").(map[string]any)
	if dns["hostname"] != "claude-worker.telemetry.svc" || dns["port"] != "4317" {
		t.Errorf("dns resolver = %v (port must be a string)", dns)
	}
}

func TestRoutingAttributesOnlyWithAttributesKey(t *testing.T) {
	for _, router := range []v1alpha1.GatewayRouter{v1alpha1.GatewayRouterDeltaPipeline, v1alpha1.GatewayRouterLoadBalancing} {
		id := routerID
		if router == v1alpha1.GatewayRouterLoadBalancing {
			id = loadBalancingID
		}
		exp := dig(gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(router), pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes, "session.id"))), "exporters", id).(map[string]any)
		if exp["routing_key"] != "attributes" || len(exp["routing_attributes"].([]any)) != 1 {
			t.Errorf("%s: attributes routing = %v", router, exp)
		}
		exp = dig(gatewayConfigMap(t, pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(router))), "exporters", id).(map[string]any)
		if _, ok := exp["routing_attributes"]; ok || exp["routing_key"] != "streamID" {
			t.Errorf("%s: streamID routing = %v", router, exp)
		}
	}
}

func TestRouterFollowsThePublishedMembership(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerReplicas(2))
	router := dig(gatewayConfigMap(t, p), "exporters", routerID).(map[string]any)
	cm := dig(router, "membership", "configmap").(map[string]any)
	if cm["namespace"] != "telemetry" || cm["name"] != "claude-membership" || cm["key"] != MembershipKey {
		t.Errorf("membership source = %v", cm)
	}
	if got := dig(router, "retry", "max_elapsed_time"); got != "180s" {
		t.Errorf("retry.max_elapsed_time = %v, want the gateway retry budget", got)
	}
	w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(7))
	if err != nil {
		t.Fatal(err)
	}
	if w.Membership == nil {
		t.Fatal("no membership ConfigMap")
	}
	want := `{"epoch":7,"members":[{"name":"claude-worker-0","endpoint":"claude-worker-0.claude-worker.telemetry.svc:4317","peer":"claude-worker-0.claude-worker.telemetry.svc:4319"},` +
		`{"name":"claude-worker-1","endpoint":"claude-worker-1.claude-worker.telemetry.svc:4317","peer":"claude-worker-1.claude-worker.telemetry.svc:4319"}]}`
	if got := w.Membership.Data[MembershipKey]; got != want {
		t.Errorf("membership = %s, want %s", got, want)
	}
	g, err := BuildGateway(p, DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Role == nil || len(g.Role.Rules) != 1 || !slices.Equal(g.Role.Rules[0].ResourceNames, []string{"claude-membership"}) ||
		!slices.Equal(g.Role.Rules[0].Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("the gateway Role must grant reading exactly the membership ConfigMap: %+v", g.Role)
	}
	if !*g.Deployment.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Error("the router watches the API server and needs its service account token")
	}
	lb, err := BuildWorker(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing)), DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	if lb.Membership != nil {
		t.Error("the loadBalancing router has no use for a membership ConfigMap")
	}
}

func TestPlanRingGrowsFirstShrinksLastAndEpochsOnlyGrow(t *testing.T) {
	three := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerReplicas(3))
	five := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerReplicas(5))
	two := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerReplicas(2))
	steady3 := Membership(three, RingPlan{Epoch: 4, Workers: 3})
	growing := Membership(five, RingPlan{Epoch: 5, Workers: 5, PreviousWorkers: 3})
	shrinking := Membership(two, RingPlan{Epoch: 7, Workers: 2, PreviousWorkers: 5})
	for _, c := range []struct {
		name string
		p    *v1alpha1.DeltaPipeline
		obs  RingObservation
		want RingPlan
		pods int32
	}{
		{"first publication", three, RingObservation{}, RingPlan{Epoch: 1, Workers: 3, Phase: RingSteady}, 3},
		{"unchanged", three, RingObservation{Published: &steady3, RecordedEpoch: 4, ReadyWorkers: 3},
			RingPlan{Epoch: 4, Workers: 3, Phase: RingSteady}, 3},
		{"ConfigMap deleted", three, RingObservation{RecordedEpoch: 4}, RingPlan{Epoch: 5, Workers: 3, Phase: RingSteady}, 3},
		{"ConfigMap older than the status", three, RingObservation{Published: &steady3, RecordedEpoch: 9},
			RingPlan{Epoch: 10, Workers: 3, Phase: RingSteady}, 3},
		{"growing: pods first", five, RingObservation{Published: &steady3, RecordedEpoch: 4, ReadyWorkers: 4},
			RingPlan{Epoch: 4, Workers: 3, Phase: RingStartingWorkers}, 5},
		{"growing: new pods ready, they join", five, RingObservation{Published: &steady3, RecordedEpoch: 4, ReadyWorkers: 5},
			RingPlan{Epoch: 5, Workers: 5, PreviousWorkers: 3, Phase: RingHandingOver}, 5},
		{"growing: hand-over running", five, RingObservation{Published: &growing, RecordedEpoch: 5, ReadyWorkers: 5},
			RingPlan{Epoch: 5, Workers: 5, PreviousWorkers: 3, Phase: RingHandingOver}, 5},
		{"a change during a hand-over waits for it", two, RingObservation{Published: &growing, RecordedEpoch: 5, ReadyWorkers: 5},
			RingPlan{Epoch: 5, Workers: 5, PreviousWorkers: 3, Phase: RingHandingOver}, 5},
		{"growing: complete, settled", five, RingObservation{Published: &growing, RecordedEpoch: 5, ReadyWorkers: 5, HandoverComplete: true},
			RingPlan{Epoch: 6, Workers: 5, Phase: RingSteady}, 5},
		{"shrinking: leaving workers leave the ring, pods stay", two, RingObservation{Published: ptrTo(Membership(five, RingPlan{Epoch: 6, Workers: 5})), RecordedEpoch: 6, ReadyWorkers: 5},
			RingPlan{Epoch: 7, Workers: 2, PreviousWorkers: 5, Phase: RingHandingOver}, 5},
		{"shrinking: drained, pods go", two, RingObservation{Published: &shrinking, RecordedEpoch: 7, ReadyWorkers: 5, HandoverComplete: true},
			RingPlan{Epoch: 8, Workers: 2, Phase: RingSteady}, 2},
	} {
		got := PlanRing(c.p, c.obs)
		if got != c.want {
			t.Errorf("%s: plan %+v, want %+v", c.name, got, c.want)
		}
		if pods := got.StatefulSetReplicas(c.p); pods != c.pods {
			t.Errorf("%s: %d worker pods, want %d", c.name, pods, c.pods)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestUnknownComponentsOfTheGatewayDistributionAreNamed(t *testing.T) {
	cfg, err := pipelinetest.GatewayConfig(`{"receivers": {}, "exporters": {}, "processors": {"groupbyattrs/x": {}}, "service": {"pipelines": {}}}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayConfig(cfg)), DefaultOptions(), Credentials{})
	if err == nil || !strings.Contains(err.Error(), `spec.gateway.config.processors.groupbyattrs/x: the DeltaPipeline gateway has no "groupbyattrs" component`) {
		t.Fatalf("error = %v, want one naming the unknown processor", err)
	}
	if _, err := BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithGatewayConfig(cfg)), DefaultOptions(), Credentials{}); err != nil {
		t.Errorf("with the contrib collector any component may be used: %v", err)
	}
}

func TestUserComponentsRunBeforeTheRoutingExporter(t *testing.T) {
	p := goldenCases(t)["extra-processors"]
	pipeline := dig(gatewayConfigMap(t, p), "service", "pipelines", "metrics").(map[string]any)
	want := []any{"memory_limiter", "resource/cluster", "filter/drop-debug"}
	if !slices.Equal(pipeline["processors"].([]any), want) {
		t.Errorf("processors = %v, want %v", pipeline["processors"], want)
	}
	if !slices.Equal(pipeline["receivers"].([]any), []any{"otlp", "otlp/in-cluster"}) {
		t.Errorf("receivers = %v", pipeline["receivers"])
	}
	if !slices.Equal(pipeline["exporters"].([]any), []any{routerID}) {
		t.Errorf("exporters = %v", pipeline["exporters"])
	}
}

func TestInvalidUserGatewayConfigNamesTheField(t *testing.T) {
	cases := map[string]struct{ config, field string }{
		"exporter":         {`{"receivers": {}, "exporters": {"debug": {}}, "service": {"pipelines": {}}}`, "spec.gateway.config.exporters"},
		"reserved":         {`{"receivers": {}, "exporters": {}, "processors": {"memory_limiter": {}}, "service": {"pipelines": {}}}`, "spec.gateway.config.processors.memory_limiter"},
		"undefined listed": {`{"receivers": {}, "exporters": {}, "processors": {"batch": {}}, "service": {"pipelines": {"metrics": {"receivers": [], "exporters": [], "processors": ["batch", "nope"]}}}}`, `"nope"`},
		"other pipeline":   {`{"receivers": {}, "exporters": {}, "service": {"pipelines": {"traces": {"receivers": [], "exporters": []}}}}`, "spec.gateway.config.service.pipelines.traces"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := pipelinetest.GatewayConfig(c.config)
			if err != nil {
				t.Fatal(err)
			}
			_, err = BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithGatewayConfig(cfg)), DefaultOptions(), Credentials{})
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error = %v, want one naming %s", err, c.field)
			}
		})
	}
}

func TestInvalidWorkerConfigIsAnError(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", func(p *v1alpha1.DeltaPipeline) {
		p.Spec.Exporters.PrometheusRemoteWrite.ExternalLabels = map[string]string{"bad-label": "x"}
	})
	_, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
	if err == nil || !strings.Contains(err.Error(), "externalLabels") {
		t.Fatalf("error = %v, want one naming externalLabels", err)
	}
}

func TestEveryObjectIsControlledByThePipeline(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithAutoscaling(2, 5), pipelinetest.WithResolver(v1alpha1.ResolverK8s))
	g, err := BuildGateway(p, DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := BuildWorker(p, DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	objects := []metav1.Object{g.ConfigMap, g.Deployment, g.Service, g.PDB, g.ServiceAccount, g.Role, g.RoleBinding, g.HPA,
		w.ConfigMap, w.StatefulSet, w.Service, w.PDB, w.ServiceAccount}
	for _, o := range objects {
		refs := o.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != p.UID || !ptr.Deref(refs[0].Controller, false) || refs[0].Kind != "DeltaPipeline" {
			t.Errorf("%s: owner references %v", o.GetName(), refs)
		}
		if o.GetNamespace() != p.Namespace || o.GetLabels()[naming.LabelManagedBy] != naming.ManagedBy {
			t.Errorf("%s: namespace %q labels %v", o.GetName(), o.GetNamespace(), o.GetLabels())
		}
	}
}

func TestConfigChangeChangesThePodTemplateHash(t *testing.T) {
	base, _ := BuildWorker(pipelinetest.Stored("claude", "telemetry"), DefaultOptions(), Credentials{}, SteadyRing(1))
	same, _ := BuildWorker(pipelinetest.Stored("claude", "telemetry"), DefaultOptions(), Credentials{}, SteadyRing(1))
	changed, _ := BuildWorker(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithPersistence(false)), DefaultOptions(), Credentials{}, SteadyRing(1))
	hash := func(w Worker) string { return w.StatefulSet.Spec.Template.Annotations[naming.ConfigHashAnnotation] }
	if hash(base) == "" || hash(base) != hash(same) {
		t.Errorf("equal pipelines give hashes %q and %q", hash(base), hash(same))
	}
	if hash(base) == hash(changed) {
		t.Error("a worker configuration change kept the pod template hash")
	}

	gBase, _ := BuildGateway(pipelinetest.Stored("claude", "telemetry"), DefaultOptions(), Credentials{})
	gChanged, _ := BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouting(v1alpha1.RoutingKeyAttributes, "session.id")), DefaultOptions(), Credentials{})
	gHash := func(g Gateway) string { return g.Deployment.Spec.Template.Annotations[naming.ConfigHashAnnotation] }
	if gHash(gBase) == gHash(gChanged) {
		t.Error("a gateway configuration change kept the pod template hash")
	}
}

func TestWorkerStatefulSetShape(t *testing.T) {
	w, err := BuildWorker(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithWorkerReplicas(5), pipelinetest.WithExporters(pipelinetest.OTLPWithSecretsExporters())), DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	s := w.StatefulSet.Spec
	if *s.Replicas != 5 || s.ServiceName != "claude-worker" || s.PodManagementPolicy != "Parallel" {
		t.Errorf("replicas %d serviceName %q policy %q", *s.Replicas, s.ServiceName, s.PodManagementPolicy)
	}
	if *s.Template.Spec.TerminationGracePeriodSeconds != 60 {
		t.Errorf("terminationGracePeriodSeconds = %d", *s.Template.Spec.TerminationGracePeriodSeconds)
	}
	c := s.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--config=/etc/deltapipeline/worker.yaml") {
		t.Errorf("args %v", c.Args)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Port.IntValue() != workerconfig.DefaultTelemetryPort {
		t.Errorf("probes %v %v", c.ReadinessProbe.HTTPGet, c.LivenessProbe.HTTPGet)
	}
	if !hasPort(c.Ports, 9464) {
		t.Errorf("prometheus port missing: %v", c.Ports)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for _, dir := range []string{"/etc/deltapipeline/secrets/otlp-auth", "/etc/deltapipeline/secrets/otlp-client", "/etc/deltapipeline/configmaps/otlp-ca", "/var/lib/deltapipeline"} {
		if mounts[dir] == "" {
			t.Errorf("nothing mounted at %s: %v", dir, mounts)
		}
	}
	if len(s.VolumeClaimTemplates) != 1 || s.VolumeClaimTemplates[0].Name != "state" {
		t.Errorf("volume claim templates %v", s.VolumeClaimTemplates)
	}
	if sc := c.SecurityContext; !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context %+v", sc)
	}
	if !*s.Template.Spec.SecurityContext.RunAsNonRoot {
		t.Error("pods must run as non-root")
	}
}

func TestWorkerConfigMapNeverHoldsSecretValues(t *testing.T) {
	w, err := BuildWorker(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithExporters(pipelinetest.OTLPWithSecretsExporters())), DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := workerconfig.Parse([]byte(w.ConfigMap.Data[WorkerConfigKey]))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Exporters.OTLP.Headers[1]
	if h.Value != "" || h.ValueFile != "/etc/deltapipeline/secrets/otlp-auth/header" {
		t.Errorf("secret header %+v must be a file reference", h)
	}
	if cfg.Exporters.OTLP.TLS.KeyFile != "/etc/deltapipeline/secrets/otlp-client/tls.key" || cfg.Exporters.OTLP.TLS.CAFile != "/etc/deltapipeline/configmaps/otlp-ca/ca.crt" {
		t.Errorf("tls %+v", cfg.Exporters.OTLP.TLS)
	}
}

func TestPersistenceOffRemovesTheVolume(t *testing.T) {
	w, _ := BuildWorker(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithPersistence(false)), DefaultOptions(), Credentials{}, SteadyRing(1))
	if len(w.StatefulSet.Spec.VolumeClaimTemplates) != 0 {
		t.Error("persistence off must not request a volume")
	}
	cfg, _ := WorkerConfig(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithPersistence(false)))
	if cfg.State.Directory != "" {
		t.Errorf("state directory %q without a volume", cfg.State.Directory)
	}
}

func TestOptionalGatewayObjects(t *testing.T) {
	g, _ := BuildGateway(pipelinetest.Stored("claude", "telemetry"), DefaultOptions(), Credentials{})
	if g.HPA != nil || g.Deployment.Spec.Replicas == nil || *g.Deployment.Spec.Replicas != 2 {
		t.Error("without autoscaling: no HPA and a fixed replica count")
	}
	g, _ = BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithAutoscaling(2, 6)), DefaultOptions(), Credentials{})
	if g.HPA == nil || g.HPA.Spec.MaxReplicas != 6 || g.Deployment.Spec.Replicas != nil {
		t.Error("with autoscaling: an HPA owns the replica count")
	}
	if _, ok := g.Deployment.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("autoscaling on CPU needs a CPU request")
	}
	g, _ = BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverDNS)), DefaultOptions(), Credentials{})
	if g.Role != nil || g.RoleBinding != nil {
		t.Error("the dns resolver needs no API access")
	}
}

func TestGatewayResolverRoleReadsOnlyEndpoints(t *testing.T) {
	r := GatewayResolverRole(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithResolver(v1alpha1.ResolverK8s)))
	for _, rule := range r.Rules {
		if !slices.Equal(rule.Verbs, []string{"get", "list", "watch"}) {
			t.Errorf("verbs %v", rule.Verbs)
		}
		if !slices.Equal(rule.Resources, []string{"endpointslices"}) && !slices.Equal(rule.Resources, []string{"endpoints"}) {
			t.Errorf("resources %v", rule.Resources)
		}
	}
}

func TestImages(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry")
	p.Spec.Gateway.Image = ""
	opts := Options{WorkerImage: "registry.local/worker:1", GatewayImage: "registry.local/otelcol:2"}
	g, _ := BuildGateway(p, opts, Credentials{})
	w, _ := BuildWorker(p, opts, Credentials{}, SteadyRing(1))
	if got := g.Deployment.Spec.Template.Spec.Containers[0].Image; got != "registry.local/otelcol:2" {
		t.Errorf("gateway image %q", got)
	}
	if got := w.StatefulSet.Spec.Template.Spec.Containers[0].Image; got != "registry.local/worker:1" {
		t.Errorf("worker image %q", got)
	}
	if !strings.HasPrefix(DefaultWorkerImage(), "ghcr.io/deltapipeline/deltapipeline-worker:") {
		t.Errorf("default worker image %q", DefaultWorkerImage())
	}
}

func TestWorkerServiceAccountCarriesIRSAAnnotation(t *testing.T) {
	sa := WorkerServiceAccount(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithServiceAccountAnnotation("eks.amazonaws.com/role-arn", "arn:aws:iam::123456789012:role/amp")))
	if sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Errorf("annotations %v", sa.Annotations)
	}
}

func TestRoutingSpreadsLoad(t *testing.T) {
	for key, spreads := range map[v1alpha1.RoutingKey]bool{
		v1alpha1.RoutingKeyStreamID: true, v1alpha1.RoutingKeyAttributes: true,
		v1alpha1.RoutingKeyResource: false, v1alpha1.RoutingKeyService: false,
	} {
		if got := RoutingSpreadsLoad(v1alpha1.RoutingSpec{Key: key}); got != spreads {
			t.Errorf("%s: RoutingSpreadsLoad = %v", key, got)
		}
	}
}

func TestEndpoints(t *testing.T) {
	e := GatewayEndpoints(pipelinetest.Stored("claude", "telemetry"))
	if e.GRPC != "claude-gateway.telemetry.svc:4317" || e.HTTP != "http://claude-gateway.telemetry.svc:4318" {
		t.Errorf("endpoints %+v", e)
	}
}

func TestReferences(t *testing.T) {
	p := pipelinetest.Stored("claude", "telemetry", pipelinetest.WithExporters(pipelinetest.OTLPWithSecretsExporters()))
	if got := ReferencedSecretNames(p); !slices.Equal(got, []string{"otlp-auth", "otlp-client"}) {
		t.Errorf("secrets %v", got)
	}
	if got := ReferencedConfigMapNames(p); !slices.Equal(got, []string{"otlp-ca"}) {
		t.Errorf("configmaps %v", got)
	}
	for _, r := range References(p) {
		if !strings.HasPrefix(r.Field, "spec.exporters.otlp.") {
			t.Errorf("field %q", r.Field)
		}
	}
}

func hasPort(ports []corev1.ContainerPort, port int32) bool {
	for _, p := range ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

func TestTierObjectsLeaveOutFeaturesThatAreOff(t *testing.T) {
	names := func(objects []client.Object) []string {
		var out []string
		for _, o := range objects {
			out = append(out, reflect.TypeOf(o).Elem().Name()+" "+o.GetName())
		}
		slices.Sort(out)
		return out
	}
	plain, err := BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithNetworkPolicies(false)), DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfigMap claude-gateway", "Deployment claude-gateway", "PodDisruptionBudget claude-gateway", "Service claude-gateway", "ServiceAccount claude-gateway"}
	if got := names(plain.Objects()); !slices.Equal(got, want) {
		t.Errorf("gateway objects without autoscaling, network policies and with the static resolver = %v, want %v", got, want)
	}
	full, err := BuildGateway(pipelinetest.Stored("claude", "telemetry", pipelinetest.WithRouter(v1alpha1.GatewayRouterLoadBalancing), pipelinetest.WithAutoscaling(2, 5), pipelinetest.WithResolver(v1alpha1.ResolverK8s)), DefaultOptions(), Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(full.Objects()); got != 9 {
		t.Errorf("gateway with autoscaling, network policies and the k8s resolver has %d objects %v, want 9", got, names(full.Objects()))
	}
	w, err := BuildWorker(pipelinetest.Stored("claude", "telemetry"), DefaultOptions(), Credentials{}, SteadyRing(1))
	if err != nil {
		t.Fatal(err)
	}
	// The membership, the peer token and the Role that reads the membership
	// come with the hand-over.
	if got := len(w.Objects()); got != 10 {
		t.Errorf("worker tier with the hand-over has %d objects %v, want 10", got, names(w.Objects()))
	}
}
