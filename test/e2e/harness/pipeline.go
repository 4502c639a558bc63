// Package harness runs a whole DeltaPipeline on one machine, without
// Kubernetes nodes: the operator's reconciler against a real API server
// (envtest) renders the gateway and worker configurations, then the real
// upstream collector (bin/otelcol) runs as the gateways and bin/worker as the
// workers, as local processes with those configurations, writing to a remote
// write receiver that keeps every sample. The load generator (bin/loadgen)
// plays Claude Code clients and records what it sent.
//
// It owns the orchestration shared by the end-to-end suite (test/e2e) and
// `make demo` (hack/demo): starting, restarting and stopping the processes,
// and comparing what arrived with what was sent.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// Binaries are the programs the pipeline runs: Gateway (DeltaPipeline's
// gateway distribution) for the deltapipeline router, Otelcol (the upstream
// collector) for loadBalancing.
type Binaries struct {
	Gateway, Otelcol, Worker, Loadgen string
}

// Environment variables naming the binaries; the Makefile sets them.
const (
	EnvGateway = "GATEWAY_BINARY"
	EnvOtelcol = "OTELCOL_BINARY"
	EnvWorker  = "WORKER_BINARY"
	EnvLoadgen = "LOADGEN_BINARY"
)

// BinariesFromEnv reads the binaries' paths from the environment and checks
// they exist.
func BinariesFromEnv() (Binaries, error) {
	b := Binaries{Gateway: os.Getenv(EnvGateway), Otelcol: os.Getenv(EnvOtelcol), Worker: os.Getenv(EnvWorker), Loadgen: os.Getenv(EnvLoadgen)}
	var errs []error
	for _, e := range []struct{ env, path, target string }{
		{EnvGateway, b.Gateway, "make gateway"},
		{EnvOtelcol, b.Otelcol, "make otelcol"},
		{EnvWorker, b.Worker, "make build-worker"},
		{EnvLoadgen, b.Loadgen, "make loadgen"},
	} {
		if e.path == "" {
			errs = append(errs, fmt.Errorf("%s is not set (the path of the binary `%s` builds; `make e2e` sets it)", e.env, e.target))
			continue
		}
		if _, err := os.Stat(e.path); err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w (build it with `%s`)", e.env, e.path, err, e.target))
		}
	}
	return b, errors.Join(errs...)
}

// Options shape the pipeline.
type Options struct {
	Name, Namespace string
	GatewayReplicas int
	WorkerReplicas  int
	// MaxWorkers is how many workers ScaleWorkers may grow to.
	MaxWorkers int
	// Router is the gateways' spec.gateway.router.
	Router             v1alpha1.GatewayRouter
	ConversionInterval time.Duration
	// CRDDir holds the generated CRDs (config/crd/bases).
	CRDDir string
	// Dir receives configurations, logs and state directories.
	Dir      string
	Binaries Binaries
	// Log receives one line per step.
	Log io.Writer
	// RemoteWrite, when set, is where every worker writes instead of the
	// harness's own receiver (for example a real Prometheus).
	RemoteWrite string
	// Secrets are created in the namespace before the pipeline, for the
	// references Customize adds.
	Secrets []*corev1.Secret
	// Customize, when set, changes the DeltaPipeline before it is applied.
	Customize func(*v1alpha1.DeltaPipeline)
}

// Option changes Options.
type Option func(*Options)

func WithGateways(n int) Option { return func(o *Options) { o.GatewayReplicas = n } }
func WithWorkers(n int) Option  { return func(o *Options) { o.WorkerReplicas = n } }

// WithMaxWorkers lets ScaleWorkers grow the worker tier to n.
func WithMaxWorkers(n int) Option { return func(o *Options) { o.MaxWorkers = n } }

// WithRouter runs the gateways with router r.
func WithRouter(r v1alpha1.GatewayRouter) Option { return func(o *Options) { o.Router = r } }
func WithConversionInterval(d time.Duration) Option {
	return func(o *Options) { o.ConversionInterval = d }
}
func WithCRDDir(dir string) Option   { return func(o *Options) { o.CRDDir = dir } }
func WithDir(dir string) Option      { return func(o *Options) { o.Dir = dir } }
func WithBinaries(b Binaries) Option { return func(o *Options) { o.Binaries = b } }
func WithLog(w io.Writer) Option     { return func(o *Options) { o.Log = w } }

// WithSecrets creates Secrets before the pipeline.
func WithSecrets(s ...*corev1.Secret) Option {
	return func(o *Options) { o.Secrets = append(o.Secrets, s...) }
}

// WithPipeline changes the DeltaPipeline before it is applied.
func WithPipeline(customize func(*v1alpha1.DeltaPipeline)) Option {
	return func(o *Options) { o.Customize = customize }
}

// WithRemoteWrite sends every worker's remote write to url.
func WithRemoteWrite(url string) Option { return func(o *Options) { o.RemoteWrite = url } }

func defaultOptions() Options {
	return Options{
		Name:               "claude",
		Namespace:          "telemetry",
		GatewayReplicas:    2,
		WorkerReplicas:     3,
		Router:             v1alpha1.GatewayRouterDeltaPipeline,
		ConversionInterval: time.Second,
		Log:                io.Discard,
	}
}

// Gateway is one local gateway process.
type Gateway struct {
	*Process
	OTLPEndpoint string
	// OTLPHTTPEndpoint is the OTLP/HTTP host:port.
	OTLPHTTPEndpoint string
	MetricsURL       string
	HealthURL        string
}

// Worker is one local worker process.
type Worker struct {
	*Process
	Ordinal      int
	OTLPEndpoint string
	// OTLPHTTPEndpoint is the OTLP/HTTP host:port.
	OTLPHTTPEndpoint string
	TelemetryURL     string
	// PeerEndpoint is where other workers hand streams over to it.
	PeerEndpoint string
	StateDir     string
}

// ReadyURL is the worker's readiness endpoint.
func (w *Worker) ReadyURL() string { return w.TelemetryURL + "/readyz" }

// MetricsURL is the worker's self-metrics endpoint.
func (w *Worker) MetricsURL() string { return w.TelemetryURL + "/metrics" }

// Pipeline is a running local pipeline.
type Pipeline struct {
	Options
	ControlPlane *ControlPlane
	Object       *v1alpha1.DeltaPipeline
	Rendered     RenderedConfigs
	Receiver     *Receiver
	Gateways     []*Gateway
	Workers      []*Worker
	// membership relays the published worker membership to the gateways
	// and the workers (router deltapipeline only).
	membership *membershipRelay
	// statefulSet runs a worker process per ordinal of the StatefulSet's
	// spec.replicas (router deltapipeline only).
	statefulSet *statefulSetFollower
	// workersMu guards Workers while ScaleWorkers appends to it.
	workersMu sync.Mutex
	// GatewayFiles and WorkerFiles are the Secret volumes of the gateway
	// and worker pods, written locally; every process of a tier reads the
	// same files, as every pod reads the same Secret.
	GatewayFiles, WorkerFiles LocalMounts
}

// startTimeout bounds how long one process may take to become ready.
const startTimeout = 60 * time.Second

// Start brings the whole pipeline up: control plane and operator, the
// DeltaPipeline, the receiver, the workers, then the gateways. On error
// everything started so far is stopped again.
func Start(ctx context.Context, opts ...Option) (_ *Pipeline, err error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.Dir == "" || o.CRDDir == "" {
		return nil, errors.New("starting the pipeline: a run directory and the CRD directory are required")
	}
	p := &Pipeline{Options: o}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Stop(context.WithoutCancel(ctx)))
		}
	}()

	p.logf("starting the control plane (kube-apiserver, etcd) and the operator")
	managerLog, err := os.Create(filepath.Join(o.Dir, "manager.log"))
	if err != nil {
		return p, fmt.Errorf("creating the manager log: %w", err)
	}
	if p.ControlPlane, err = StartControlPlane(ctx, o.CRDDir, managerLog); err != nil {
		return p, err
	}
	p.Object = p.desiredPipeline()
	if o.Customize != nil {
		o.Customize(p.Object)
	}
	p.logf("applying DeltaPipeline %s/%s: %d gateways, %d workers, remote write, conversion interval %s",
		o.Namespace, o.Name, o.GatewayReplicas, o.WorkerReplicas, o.ConversionInterval)
	if p.Rendered, err = p.ControlPlane.ApplyPipeline(ctx, p.Object, o.Secrets...); err != nil {
		return p, err
	}
	key := func(name string) types.NamespacedName {
		return types.NamespacedName{Namespace: o.Namespace, Name: name}
	}
	if p.GatewayFiles, err = p.ControlPlane.podMounts(ctx, &appsv1.Deployment{}, key(naming.GatewayDeployment(p.Object)), filepath.Join(o.Dir, "gateway-files")); err != nil {
		return p, err
	}
	if p.WorkerFiles, err = p.ControlPlane.podMounts(ctx, &appsv1.StatefulSet{}, key(naming.WorkerStatefulSet(p.Object)), filepath.Join(o.Dir, "worker-files")); err != nil {
		return p, err
	}
	for name, content := range map[string]string{"rendered-gateway.yaml": p.Rendered.Gateway, "rendered-worker.yaml": p.Rendered.Worker} {
		if err := os.WriteFile(filepath.Join(o.Dir, name), []byte(content), 0o644); err != nil {
			return p, fmt.Errorf("saving the rendered configuration: %w", err)
		}
	}

	if p.Receiver, err = StartReceiver(max(o.WorkerReplicas, o.MaxWorkers)); err != nil {
		return p, err
	}
	handsOver := o.Router == v1alpha1.GatewayRouterDeltaPipeline
	for i := range o.WorkerReplicas {
		w, err := p.newWorker(i)
		if err != nil {
			return p, err
		}
		p.Workers = append(p.Workers, w)
		if err := w.Start(); err != nil {
			return p, err
		}
	}
	p.ControlPlane.setWorkerTelemetry(p.workerTelemetryURL)
	if handsOver {
		// The workers wait for the membership before they restore state.
		if p.membership, err = startMembershipRelay(ctx, p); err != nil {
			return p, err
		}
	}
	for _, w := range p.Workers {
		if err := p.awaitReady(ctx, w); err != nil {
			return p, err
		}
	}
	if handsOver {
		if p.statefulSet, err = followStatefulSet(ctx, p); err != nil {
			return p, err
		}
	}
	workerAddrs := make([]string, len(p.Workers))
	for i, w := range p.Workers {
		workerAddrs[i] = w.OTLPEndpoint
	}
	for i := range o.GatewayReplicas {
		g, err := p.newGateway(i, workerAddrs)
		if err != nil {
			return p, err
		}
		p.Gateways = append(p.Gateways, g)
		if err := g.Start(); err != nil {
			return p, err
		}
		waitCtx, cancel := context.WithTimeout(ctx, startTimeout)
		err = g.WaitHTTPOK(waitCtx, g.HealthURL)
		cancel()
		if err != nil {
			return p, err
		}
	}
	p.logf("pipeline up: gateways %v, workers %v, run directory %s", p.GatewayEndpoints(), workerAddrs, o.Dir)
	return p, nil
}

// desiredPipeline is the DeltaPipeline a user would apply for this shape.
func (p *Pipeline) desiredPipeline() *v1alpha1.DeltaPipeline {
	return &v1alpha1.DeltaPipeline{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		Spec: v1alpha1.DeltaPipelineSpec{
			Gateway: v1alpha1.GatewaySpec{Replicas: ptr.To(int32(p.GatewayReplicas)), Router: p.Router},
			Worker: v1alpha1.WorkerSpec{
				Replicas:   ptr.To(int32(p.WorkerReplicas)),
				Conversion: v1alpha1.ConversionSpec{Interval: &metav1.Duration{Duration: p.ConversionInterval}},
			},
			Exporters: v1alpha1.ExportersSpec{
				PrometheusRemoteWrite: &v1alpha1.RemoteWriteSpec{Endpoint: "http://prometheus.monitoring.svc:9090/api/v1/write"},
			},
		},
	}
}

func (p *Pipeline) newWorker(ordinal int) (*Worker, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	name := "worker-" + strconv.Itoa(ordinal)
	w := &Worker{
		Ordinal:          ordinal,
		OTLPEndpoint:     loopback(ports[0]),
		OTLPHTTPEndpoint: loopback(ports[1]),
		TelemetryURL:     "http://" + loopback(ports[2]),
		PeerEndpoint:     loopback(ports[3]),
		StateDir:         filepath.Join(p.Dir, name, "state"),
	}
	if err := os.MkdirAll(w.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s's state directory: %w", name, err)
	}
	addrs := WorkerAddresses{
		OTLPGRPC:       loopback(ports[0]),
		OTLPHTTP:       loopback(ports[1]),
		Telemetry:      loopback(ports[2]),
		RemoteWrite:    p.remoteWriteEndpoint(ordinal),
		StateDirectory: w.StateDir,
	}
	if p.Router == v1alpha1.GatewayRouterDeltaPipeline {
		addrs.Peer, addrs.Member, addrs.MembershipFile = w.PeerEndpoint, naming.WorkerPod(p.Object, ordinal), p.membershipPath()
	}
	config, err := LocalWorkerConfig(p.WorkerFiles.Rewrite(p.Rendered.Worker), addrs)
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(p.Dir, name, "worker.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s's configuration: %w", name, err)
	}
	w.Process = &Process{
		Name:    name,
		Path:    p.Binaries.Worker,
		Args:    []string{"--config", configPath},
		LogPath: filepath.Join(p.Dir, name, "worker.log"),
	}
	return w, nil
}

func (p *Pipeline) remoteWriteEndpoint(ordinal int) string {
	if p.RemoteWrite != "" {
		return p.RemoteWrite
	}
	return p.Receiver.Endpoint(ordinal)
}

func (p *Pipeline) newGateway(index int, workers []string) (*Gateway, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	name := "gateway-" + strconv.Itoa(index)
	if err := os.MkdirAll(filepath.Join(p.Dir, name), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s's directory: %w", name, err)
	}
	addrs := GatewayAddresses{
		OTLPGRPC: loopback(ports[0]),
		OTLPHTTP: loopback(ports[1]),
		Health:   loopback(ports[2]),
		Metrics:  loopback(ports[3]),
		Workers:  workers,
	}
	binary := p.Binaries.Otelcol
	if p.membership != nil {
		addrs.MembershipFile = p.membership.path
		binary = p.Binaries.Gateway
	}
	config, err := LocalGatewayConfig(p.GatewayFiles.Rewrite(p.Rendered.Gateway), addrs)
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(p.Dir, name, "collector.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s's configuration: %w", name, err)
	}
	return &Gateway{
		Process: &Process{
			Name:    name,
			Path:    binary,
			Args:    []string{"--config", "file:" + configPath},
			LogPath: filepath.Join(p.Dir, name, "collector.log"),
		},
		OTLPEndpoint:     loopback(ports[0]),
		OTLPHTTPEndpoint: loopback(ports[1]),
		HealthURL:        "http://" + loopback(ports[2]) + "/",
		MetricsURL:       "http://" + loopback(ports[3]) + "/metrics",
	}, nil
}

func (p *Pipeline) startWorker(ctx context.Context, w *Worker) error {
	if err := w.Start(); err != nil {
		return err
	}
	return p.awaitReady(ctx, w)
}

func (p *Pipeline) awaitReady(ctx context.Context, w *Worker) error {
	waitCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return w.WaitHTTPOK(waitCtx, w.ReadyURL())
}

// workerTelemetryURL is the telemetry URL of the running worker of ordinal.
func (p *Pipeline) workerTelemetryURL(ordinal int) (string, bool) {
	p.workersMu.Lock()
	defer p.workersMu.Unlock()
	if ordinal < 0 || ordinal >= len(p.Workers) {
		return "", false
	}
	return p.Workers[ordinal].TelemetryURL, true
}

// GatewayEndpoints are the gateways' OTLP/gRPC addresses.
func (p *Pipeline) GatewayEndpoints() []string {
	out := make([]string, len(p.Gateways))
	for i, g := range p.Gateways {
		out[i] = g.OTLPEndpoint
	}
	return out
}

// workerGrace is how long a worker may take to stop after SIGTERM; the
// operator gives a pod the same.
const workerGrace = 60 * time.Second

// KillWorker ends worker i with SIGKILL.
func (p *Pipeline) KillWorker(i int) error {
	p.logf("SIGKILL %s (pid %d)", p.Workers[i].Name, p.Workers[i].Pid())
	return p.Workers[i].Kill()
}

// StopWorker ends worker i with SIGTERM and waits for its clean exit.
func (p *Pipeline) StopWorker(i int) error {
	p.logf("SIGTERM %s (pid %d)", p.Workers[i].Name, p.Workers[i].Pid())
	return p.Workers[i].Stop(workerGrace)
}

// StartWorker starts worker i again with the same configuration and state
// directory and waits until it is ready (its state restored).
func (p *Pipeline) StartWorker(ctx context.Context, i int) error {
	start := time.Now()
	if err := p.startWorker(ctx, p.Workers[i]); err != nil {
		return err
	}
	p.logf("%s ready again after %s (pid %d)", p.Workers[i].Name, time.Since(start).Round(time.Millisecond), p.Workers[i].Pid())
	return nil
}

// Stop stops everything in the order a drain needs: gateways first (they
// flush their queues to the workers), then workers (final emit and
// checkpoint), then the receiver and the control plane.
func (p *Pipeline) Stop(ctx context.Context) error {
	var errs []error
	if p.statefulSet != nil {
		p.statefulSet.stop()
	}
	for _, g := range p.Gateways {
		if err := g.Stop(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for _, w := range p.Workers {
		if err := w.Stop(workerGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if p.membership != nil {
		p.membership.stop()
	}
	if p.Receiver != nil {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		errs = append(errs, p.Receiver.Close(stopCtx))
		cancel()
	}
	if p.ControlPlane != nil {
		errs = append(errs, p.ControlPlane.Stop())
	}
	return errors.Join(errs...)
}

func (p *Pipeline) logf(format string, args ...any) {
	fmt.Fprintf(p.Log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts reserves n distinct loopback ports by binding them all at once,
// then releases them for the processes to bind.
func freePorts(n int) ([]int, error) {
	var (
		listeners []net.Listener
		ports     []int
	)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
