package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/controllers"
	"github.com/deltapipeline/deltapipeline/internal/handoff"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// ControlPlane is a real kube-apiserver and etcd (envtest) with the
// DeltaPipeline CRD installed and the operator's reconciler running in this
// process, exactly as cmd/manager wires it.
type ControlPlane struct {
	Client client.Client

	// workerTelemetry maps a worker ordinal to its local telemetry URL,
	// where the operator reads the worker's hand-over progress (a pod's
	// DNS name in a cluster); set by the pipeline that runs the workers.
	workerTelemetry atomic.Pointer[func(ordinal int) (string, bool)]

	env         *envtest.Environment
	stopManager context.CancelFunc
	managerDone chan error
	stopOnce    sync.Once
}

// StartControlPlane starts envtest from KUBEBUILDER_ASSETS, installs the
// CRDs found in crdDir and starts the manager. managerLog receives the
// manager's log.
func StartControlPlane(ctx context.Context, crdDir string, managerLog *os.File) (*ControlPlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run through `make e2e` or `make demo`, which build the control plane with `make envtest` and export it")
	}
	if _, err := os.Stat(filepath.Join(crdDir, "telemetry.deltapipeline.io_deltapipelines.yaml")); err != nil {
		return nil, fmt.Errorf("the DeltaPipeline CRD is missing from %s (run `make manifests`): %w", crdDir, err)
	}
	log.SetLogger(zap.New(zap.WriteTo(managerLog), zap.UseDevMode(false)))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the scheme: %w", err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	restConfig, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the envtest control plane: %w", err)
	}
	cp := &ControlPlane{env: env}
	fail := func(err error) (*ControlPlane, error) {
		return nil, errors.Join(err, cp.Stop())
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// One test process starts a control plane per pipeline, one after
		// the other, each with its own manager; controller-runtime refuses a
		// controller name used before in the process because the metrics
		// would clash, and these managers serve no metrics.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fail(fmt.Errorf("creating the manager: %w", err))
	}
	reconciler := &controllers.DeltaPipelineReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Recorder:      mgr.GetEventRecorder("deltapipeline-operator"),
		Options:       manifests.DefaultOptions(),
		HandoffStatus: localHandoffStatus{cp: cp, client: &http.Client{Timeout: 2 * time.Second}},
	}
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		return fail(fmt.Errorf("setting up the reconciler: %w", err))
	}
	// The manager lives until Stop, not until the caller's context ends: a
	// test starts the pipeline in a setup node whose context is cancelled
	// when the setup returns, and later specs still need the operator.
	managerCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	cp.stopManager = stop
	cp.managerDone = make(chan error, 1)
	go func() { cp.managerDone <- mgr.Start(managerCtx) }()

	cp.Client, err = client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		return fail(fmt.Errorf("creating a client: %w", err))
	}
	return cp, nil
}

func (cp *ControlPlane) setWorkerTelemetry(lookup func(ordinal int) (string, bool)) {
	cp.workerTelemetry.Store(&lookup)
}

// localHandoffStatus reads the local workers' /handoff, as the operator
// reads the pods' in a cluster.
type localHandoffStatus struct {
	cp     *ControlPlane
	client *http.Client
}

func (l localHandoffStatus) HandoffStatus(ctx context.Context, _ *v1alpha1.DeltaPipeline, ordinal int) (handoff.Status, error) {
	lookup := l.cp.workerTelemetry.Load()
	if lookup == nil {
		return handoff.Status{}, errors.New("no local workers yet")
	}
	url, ok := (*lookup)(ordinal)
	if !ok {
		return handoff.Status{}, fmt.Errorf("no local worker of ordinal %d runs", ordinal)
	}
	return controllers.FetchHandoffStatus(ctx, l.client, url+"/handoff")
}

// Stop stops the manager and the control plane.
func (cp *ControlPlane) Stop() error {
	var err error
	cp.stopOnce.Do(func() {
		if cp.stopManager != nil {
			cp.stopManager()
			select {
			case merr := <-cp.managerDone:
				if merr != nil {
					err = fmt.Errorf("the manager stopped with: %w", merr)
				}
			case <-time.After(30 * time.Second):
				err = errors.New("the manager did not stop within 30s")
			}
		}
		if serr := cp.env.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the envtest control plane: %w", serr))
		}
	})
	return err
}

// RenderedConfigs are the two configuration files the operator rendered
// for a pipeline.
type RenderedConfigs struct {
	Gateway, Worker string
}

// ApplyPipeline creates the namespace, the Secrets the pipeline reads and the
// pipeline, then waits for the operator to render both ConfigMaps and
// returns their configurations.
func (cp *ControlPlane) ApplyPipeline(ctx context.Context, p *v1alpha1.DeltaPipeline, secrets ...*corev1.Secret) (RenderedConfigs, error) {
	ns := &corev1.Namespace{}
	ns.Name = p.Namespace
	if err := cp.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return RenderedConfigs{}, fmt.Errorf("creating namespace %s: %w", p.Namespace, err)
	}
	for _, s := range secrets {
		s = s.DeepCopy()
		s.Namespace = p.Namespace
		if err := cp.Client.Create(ctx, s); err != nil {
			return RenderedConfigs{}, fmt.Errorf("creating Secret %s/%s: %w", p.Namespace, s.Name, err)
		}
	}
	if err := cp.Client.Create(ctx, p); err != nil {
		return RenderedConfigs{}, fmt.Errorf("creating DeltaPipeline %s/%s: %w", p.Namespace, p.Name, err)
	}
	var out RenderedConfigs
	var err error
	if out.Gateway, err = cp.waitConfigMapKey(ctx, types.NamespacedName{Namespace: p.Namespace, Name: naming.GatewayConfigMap(p)}, manifests.GatewayConfigFile); err != nil {
		return RenderedConfigs{}, err
	}
	if out.Worker, err = cp.waitConfigMapKey(ctx, types.NamespacedName{Namespace: p.Namespace, Name: naming.WorkerConfigMap(p)}, manifests.WorkerConfigKey); err != nil {
		return RenderedConfigs{}, err
	}
	return out, nil
}

func (cp *ControlPlane) waitConfigMapKey(ctx context.Context, name types.NamespacedName, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	var last error
	for {
		var cm corev1.ConfigMap
		err := cp.Client.Get(ctx, name, &cm)
		if err == nil {
			if v, ok := cm.Data[key]; ok && v != "" {
				return v, nil
			}
			err = fmt.Errorf("key %q is missing", key)
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the operator to render ConfigMap %s: %w (last: %w)", name, ctx.Err(), last)
		case <-ticker.C:
		}
	}
}
