package controllers

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
)

// The suite runs the reconciler in a real manager against kube-apiserver and
// etcd from KUBEBUILDER_ASSETS (`make envtest`). No controller-manager runs,
// so Deployments and StatefulSets never get pods: the tests set their status
// to simulate readiness, and garbage collection is checked through owner
// references rather than by waiting for it.

const (
	eventually = 30 * time.Second
	// consistently is how long the tests watch for a write that must not happen.
	consistently = 2 * time.Second
	poll         = 100 * time.Millisecond
)

// testOptions are the manager flags the suite runs with; distinct from the
// defaults so the tests see that flags reach the builders.
var testOptions = manifests.Options{
	WorkerImage:          "registry.example.com/deltapipeline-worker:suite",
	GatewayImage:         "registry.example.com/deltapipeline-gateway:suite",
	UpstreamGatewayImage: "registry.example.com/otelcol-contrib:0.161.0",
}

var (
	testEnv    *envtest.Environment
	restConfig *rest.Config
	scheme     *runtime.Scheme
	// k8sClient reads straight from the API server, never from a cache, so
	// assertions see what is stored.
	k8sClient client.Client
	cancelMgr context.CancelFunc
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "DeltaPipeline controller suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(eventually)
	SetDefaultEventuallyPollingInterval(poll)
	SetDefaultConsistentlyDuration(consistently)
	SetDefaultConsistentlyPollingInterval(poll)

	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(),
		"KUBEBUILDER_ASSETS must point at kube-apiserver and etcd: run `make go-test`, which builds them with `make envtest`")

	scheme = runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
		// The shared build machines are slow to start kube-apiserver.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	var err error
	restConfig, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred(), "starting envtest from %s", os.Getenv("KUBEBUILDER_ASSETS"))

	k8sClient, err = client.New(restConfig, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())

	var ctx context.Context
	ctx, cancelMgr = context.WithCancel(context.Background())
	reconciler := &DeltaPipelineReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("deltapipeline-operator"),
		Options:   testOptions,
		// No worker runs under envtest: specs report the workers'
		// hand-over progress themselves.
		HandoffStatus: workerProgress,
	}
	Expect(reconciler.SetupWithManager(ctx, mgr)).To(Succeed())

	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed(), "running the manager")
	}()
})

var _ = AfterSuite(func() {
	if cancelMgr != nil {
		cancelMgr()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
