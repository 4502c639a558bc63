package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// TestManagerRunsAgainstAnAPIServer starts the manager the way the Helm chart
// does, against kube-apiserver and etcd from KUBEBUILDER_ASSETS, and checks
// what a cluster sees: probes, authenticated metrics, the leader Lease, a
// reconciled pipeline, and a clean exit on shutdown.
func TestManagerRunsAgainstAnAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS must point at kube-apiserver and etcd: run `make go-test`, which builds them with `make envtest`")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	restConfig, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatalf("writing the kubeconfig: %v", err)
	}
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("creating a client: %v", err)
	}

	probeAddr, metricsAddr := freeAddress(t), freeAddress(t)
	const workerImage = "registry.example.com/deltapipeline-worker:manager-test"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--kubeconfig=" + kubeconfig,
			"--leader-elect",
			"--leader-election-namespace=default",
			"--health-probe-bind-address=" + probeAddr,
			"--metrics-bind-address=" + metricsAddr,
			"--metrics-secure=true",
			"--worker-image=" + workerImage,
			"--zap-log-level=error",
		})
	}()

	plain := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		waitFor(t, done, "GET "+path+" answers 200", func() (bool, error) {
			resp, err := plain.Get("http://" + probeAddr + path)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	}

	// The self-signed serving certificate is the manager's default without
	// cert-manager; the point here is that metrics need a token.
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitFor(t, done, "GET /metrics without a token is refused", func() (bool, error) {
		resp, err := insecure.Get("https://" + metricsAddr + "/metrics")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return false, errors.New("metrics were served without authentication")
		}
		return resp.StatusCode == http.StatusUnauthorized, nil
	})

	token := metricsReaderToken(ctx, t, k8s)
	waitFor(t, done, "GET /metrics with an authorized token serves the controller's metrics", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := insecure.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, nil
		}
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `controller_runtime_reconcile_total{controller="deltapipeline"`), nil
	})

	waitFor(t, done, "the leader Lease is held", func() (bool, error) {
		var lease coordinationv1.Lease
		err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: defaultLeaderElectionID}, &lease)
		return err == nil && ptr.Deref(lease.Spec.HolderIdentity, "") != "", nil
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "manager-test-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	p := &v1alpha1.DeltaPipeline{
		ObjectMeta: metav1.ObjectMeta{Name: "claude", Namespace: ns.Name},
		Spec: v1alpha1.DeltaPipelineSpec{Exporters: v1alpha1.ExportersSpec{
			PrometheusRemoteWrite: &v1alpha1.RemoteWriteSpec{Endpoint: "http://prometheus.monitoring.svc:9090/api/v1/write"},
		}},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatalf("creating a pipeline: %v", err)
	}
	waitFor(t, done, "the worker StatefulSet runs the --worker-image", func() (bool, error) {
		var sts appsv1.StatefulSet
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: naming.WorkerStatefulSet(p)}, &sts); err != nil {
			return false, nil
		}
		image := sts.Spec.Template.Spec.Containers[0].Image
		if image != workerImage {
			return false, fmt.Errorf("worker image %q, want the flag's %q", image, workerImage)
		}
		return true, nil
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the manager stopped with %v, want a clean exit", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the manager did not stop within a minute of its context ending")
	}
}

// metricsReaderToken returns a token of a ServiceAccount allowed to get
// /metrics, as Prometheus would hold with the chart's metrics reader role.
func metricsReaderToken(ctx context.Context, t *testing.T, k8s client.Client) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader", Namespace: "default"}}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "manager-test-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "manager-test-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}},
	}
	for _, obj := range []client.Object{sa, role, binding} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
	}
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := k8s.SubResource("token").Create(ctx, sa, request); err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s: %v", sa.Name, err)
	}
	return request.Status.Token
}

// waitFor polls check until it reports true, fails the test on its error,
// and fails early when the manager exits.
func waitFor(t *testing.T, managerDone <-chan error, what string, check func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-managerDone:
			t.Fatalf("waiting until %s: the manager exited: %v", what, err)
		default:
		}
		ok, err := check()
		if err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

// freeAddress returns a loopback address with a port nobody listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}
