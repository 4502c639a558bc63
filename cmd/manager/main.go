// Command manager runs the DeltaPipeline operator: it watches DeltaPipeline
// resources and keeps each pipeline's gateway and worker tiers in the cluster
// as the pipeline describes them.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/controllers"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
	"github.com/deltapipeline/deltapipeline/internal/version"
)

// defaultLeaderElectionID names the Lease the replicas of one installation
// compete for.
const defaultLeaderElectionID = "deltapipeline-operator.telemetry.deltapipeline.io"

// eventSource is the reporting controller named on the Events the operator emits.
const eventSource = "deltapipeline-operator"

type flags struct {
	metricsAddr          string
	metricsSecure        bool
	enableHTTP2          bool
	probeAddr            string
	leaderElect          bool
	leaderElectionID     string
	leaderElectionNS     string
	workerImage          string
	gatewayImage         string
	upstreamGatewayImage string
	watchNamespaces      []string
	zap                  zap.Options
}

func parseFlags(fs *flag.FlagSet, args []string) (flags, error) {
	defaults := manifests.DefaultOptions()
	var f flags
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", "0",
		"Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP with --metrics-secure=false); 0 turns it off.")
	fs.BoolVar(&f.metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS and require a token allowed to get /metrics (TokenReview + SubjectAccessReview).")
	fs.BoolVar(&f.enableHTTP2, "enable-http2", false,
		"Allow HTTP/2 on the metrics server; off by default to avoid the HTTP/2 rapid reset and stream cancellation attacks.")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	fs.BoolVar(&f.leaderElect, "leader-elect", false,
		"Elect a leader so that only one manager replica reconciles at a time.")
	fs.StringVar(&f.leaderElectionID, "leader-election-id", defaultLeaderElectionID, "Name of the Lease used for leader election.")
	fs.StringVar(&f.leaderElectionNS, "leader-election-namespace", "",
		"Namespace of the leader election Lease; defaults to the namespace the manager runs in.")
	fs.StringVar(&f.workerImage, "worker-image", defaults.WorkerImage,
		"Worker image for pipelines that do not set spec.worker.image.")
	fs.StringVar(&f.gatewayImage, "gateway-image", defaults.GatewayImage,
		"Gateway image (DeltaPipeline's collector distribution) for pipelines with router deltapipeline that do not set spec.gateway.image.")
	fs.StringVar(&f.upstreamGatewayImage, "upstream-gateway-image", defaults.UpstreamGatewayImage,
		"Upstream OpenTelemetry Collector contrib image for pipelines with router loadBalancing that do not set spec.gateway.image.")
	fs.Func("watch-namespaces",
		"Comma-separated namespaces whose DeltaPipelines the manager reconciles, e.g. team-a,team-b; unset, every namespace. "+
			"Limited to namespaces, the manager needs its RBAC rules as Roles in these namespaces only.",
		func(value string) error {
			namespaces, err := parseWatchNamespaces(value)
			f.watchNamespaces = namespaces
			return err
		})
	f.zap = zap.Options{Development: false}
	f.zap.BindFlags(fs)
	// --kubeconfig, read by ctrl.GetConfig; without it the manager uses
	// $KUBECONFIG or its in-cluster ServiceAccount.
	ctrlconfig.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flags{}, err
	}
	return f, validateFlags(f)
}

// validateFlags refuses settings that would start a manager that cannot work.
func validateFlags(f flags) error {
	var errs []error
	if f.workerImage == "" {
		errs = append(errs, errors.New("--worker-image must not be empty"))
	}
	if f.gatewayImage == "" {
		errs = append(errs, errors.New("--gateway-image must not be empty"))
	}
	if f.leaderElect && f.leaderElectionID == "" {
		errs = append(errs, errors.New("--leader-election-id must not be empty with --leader-elect"))
	}
	return errors.Join(errs...)
}

// parseWatchNamespaces reads --watch-namespaces: namespace names separated
// by commas, each a valid namespace name, none twice.
func parseWatchNamespaces(value string) ([]string, error) {
	var namespaces []string
	seen := map[string]bool{}
	for _, name := range strings.Split(value, ",") {
		name = strings.TrimSpace(name)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q is not a namespace name: %s", name, strings.Join(errs, "; "))
		}
		if seen[name] {
			return nil, fmt.Errorf("namespace %q is listed twice", name)
		}
		seen[name] = true
		namespaces = append(namespaces, name)
	}
	return namespaces, nil
}

// cacheOptions restricts the manager's informers, and so every watch and
// list it makes, to the watched namespaces; none means the whole cluster.
func cacheOptions(namespaces []string) cache.Options {
	if len(namespaces) == 0 {
		return cache.Options{}
	}
	byNamespace := make(map[string]cache.Config, len(namespaces))
	for _, name := range namespaces {
		byNamespace[name] = cache.Config{}
	}
	return cache.Options{DefaultNamespaces: byNamespace}
}

func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering the built-in kinds: %w", err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering %s: %w", v1alpha1.GroupVersion, err)
	}
	return scheme, nil
}

// metricsOptions serves metrics over HTTPS behind Kubernetes authentication
// and authorization unless --metrics-secure=false.
func metricsOptions(f flags) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: f.metricsAddr, SecureServing: f.metricsSecure}
	if !f.enableHTTP2 {
		opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	if f.metricsSecure {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}

func run(ctx context.Context, args []string) error {
	f, err := parseFlags(flag.NewFlagSet("manager", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	logger := ctrl.Log.WithName("setup")
	logger.Info("starting the DeltaPipeline operator", "version", version.Version,
		"workerImage", f.workerImage, "gatewayImage", f.gatewayImage, "leaderElection", f.leaderElect,
		"watchNamespaces", watchedNamespacesForLog(f.watchNamespaces))

	scheme, err := newScheme()
	if err != nil {
		return err
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOptions(f.watchNamespaces),
		Metrics:                 metricsOptions(f),
		HealthProbeBindAddress:  f.probeAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        f.leaderElectionID,
		LeaderElectionNamespace: f.leaderElectionNS,
		// A stopping leader gives the Lease up, so during a rollout the new
		// pod takes over at once instead of after the Lease expires. Safe
		// because the manager exits as soon as its context ends.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	reconciler := &controllers.DeltaPipelineReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(eventSource),
		Options:   manifests.Options{WorkerImage: f.workerImage, GatewayImage: f.gatewayImage, UpstreamGatewayImage: f.upstreamGatewayImage},
	}
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the DeltaPipeline controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}

	logger.Info("starting the manager")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}

func watchedNamespacesForLog(namespaces []string) string {
	if len(namespaces) == 0 {
		return "all"
	}
	return strings.Join(namespaces, ",")
}

func main() {
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		os.Exit(1)
	}
}
