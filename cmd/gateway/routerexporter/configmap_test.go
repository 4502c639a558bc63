package routerexporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/deltapipeline/deltapipeline/internal/ring"
)

// The router watches the membership ConfigMap through a real API server: a
// change reaches it within a second, with no restart.
func TestRouterWatchesTheMembershipConfigMap(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS must point at kube-apiserver and etcd: run `make test-gateway`, which builds them with `make envtest`")
	}
	env := &envtest.Environment{}
	restCfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeKubeconfig(t, kubeconfig, env)

	workers := startWorkers(t, 3)
	ctx := context.Background()
	publish := func(m ring.Membership) {
		t.Helper()
		doc, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cms := client.CoreV1().ConfigMaps("default")
		cm, err := cms.Get(ctx, "claude-membership", metav1.GetOptions{})
		if err != nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "claude-membership", Namespace: "default"}, Data: map[string]string{"membership.json": string(doc)}}
			if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			return
		}
		cm.Data["membership.json"] = string(doc)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	publish(membershipOf(1, workers[:2]))

	cfg := createDefaultConfig()
	cfg.Membership = MembershipConfig{ConfigMap: &ConfigMapSource{
		Namespace: "default", Name: "claude-membership", Key: "membership.json", Kubeconfig: kubeconfig,
	}}
	cfg.DrainTimeout = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := startRouter(t, cfg)
	waitFor(t, 10*time.Second, "the first membership", func() bool { return epochOf(s.router) == 1 })

	changed := time.Now()
	publish(membershipOf(2, workers))
	waitFor(t, time.Second, "epoch 2 within a second of the update", func() bool { return epochOf(s.router) == 2 })
	t.Logf("ConfigMap update seen after %s", time.Since(changed))
	if n := len(s.router.table.Load().queues); n != 3 {
		t.Fatalf("routing to %d workers, want 3", n)
	}
}

func writeKubeconfig(t *testing.T, path string, env *envtest.Environment) {
	t.Helper()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "gateway", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientcmd.Load(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
