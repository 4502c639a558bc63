package main

import (
	"flag"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/manifests"
)

func parse(t *testing.T, args ...string) (flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseFlags(fs, args)
}

func TestDefaultsMatchAnUnconfiguredOperator(t *testing.T) {
	f, err := parse(t)
	if err != nil {
		t.Fatalf("parsing no flags: %v", err)
	}
	if f.workerImage != manifests.DefaultWorkerImage() {
		t.Errorf("worker image %q, want %q", f.workerImage, manifests.DefaultWorkerImage())
	}
	if f.gatewayImage != manifests.DefaultGatewayImage() {
		t.Errorf("gateway image %q, want %q", f.gatewayImage, manifests.DefaultGatewayImage())
	}
	if f.upstreamGatewayImage != v1alpha1.UpstreamGatewayImage {
		t.Errorf("upstream gateway image %q, want %q", f.upstreamGatewayImage, v1alpha1.UpstreamGatewayImage)
	}
	if f.metricsAddr != "0" || !f.metricsSecure || f.probeAddr != ":8081" || f.leaderElect {
		t.Errorf("defaults metrics=%q secure=%v probe=%q leaderElect=%v, want 0 true :8081 false", f.metricsAddr, f.metricsSecure, f.probeAddr, f.leaderElect)
	}
	if f.watchNamespaces != nil || cacheOptions(f.watchNamespaces).DefaultNamespaces != nil {
		t.Errorf("without --watch-namespaces the manager must watch every namespace, got %v", f.watchNamespaces)
	}
	if f.leaderElectionID != defaultLeaderElectionID {
		t.Errorf("leader election id %q, want %q", f.leaderElectionID, defaultLeaderElectionID)
	}
}

// The Helm chart passes exactly these arguments; renaming a flag breaks every install.
func TestAcceptsTheChartArguments(t *testing.T) {
	f, err := parse(t,
		"--leader-elect",
		"--health-probe-bind-address=:9081",
		"--metrics-bind-address=:9443",
		"--metrics-secure=false",
		"--worker-image=registry.example.com/worker:v9",
		"--gateway-image=registry.example.com/collector:0.161.0",
		"--zap-log-level=debug",
		"--zap-stacktrace-level=panic",
		"--watch-namespaces=team-a,team-b",
	)
	if err != nil {
		t.Fatalf("parsing the chart's arguments: %v", err)
	}
	if !f.leaderElect || f.probeAddr != ":9081" || f.metricsAddr != ":9443" || f.metricsSecure {
		t.Errorf("parsed %+v", f)
	}
	if f.workerImage != "registry.example.com/worker:v9" || f.gatewayImage != "registry.example.com/collector:0.161.0" {
		t.Errorf("images %q %q", f.workerImage, f.gatewayImage)
	}
	if f.zap.Level == nil {
		t.Error("--zap-log-level was not bound")
	}
}

func TestRefusesUnusableSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--worker-image="}, "--worker-image must not be empty"},
		{[]string{"--gateway-image="}, "--gateway-image must not be empty"},
		{[]string{"--leader-elect", "--leader-election-id="}, "--leader-election-id must not be empty"},
		{[]string{"--zap-log-level=loud"}, "zap-log-level"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--watch-namespaces="}, `namespace "" is not a namespace name`},
		{[]string{"--watch-namespaces=team-a,,team-b"}, `namespace "" is not a namespace name`},
		{[]string{"--watch-namespaces=Team_A"}, `namespace "Team_A" is not a namespace name`},
		{[]string{"--watch-namespaces=team-a,team-a"}, `namespace "team-a" is listed twice`},
	} {
		_, err := parse(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestWatchNamespacesLimitTheCache(t *testing.T) {
	f, err := parse(t, "--watch-namespaces=team-a, team-b")
	if err != nil {
		t.Fatalf("parsing --watch-namespaces: %v", err)
	}
	if want := []string{"team-a", "team-b"}; !slices.Equal(f.watchNamespaces, want) {
		t.Fatalf("watch namespaces %v, want %v", f.watchNamespaces, want)
	}
	got := slices.Sorted(maps.Keys(cacheOptions(f.watchNamespaces).DefaultNamespaces))
	if !slices.Equal(got, f.watchNamespaces) {
		t.Errorf("cache namespaces %v, want %v", got, f.watchNamespaces)
	}
}

func TestSecureMetricsRequireAuthorization(t *testing.T) {
	secure := metricsOptions(flags{metricsAddr: ":8443", metricsSecure: true})
	if !secure.SecureServing || secure.FilterProvider == nil {
		t.Errorf("secure metrics: SecureServing=%v filter set=%v, want both", secure.SecureServing, secure.FilterProvider != nil)
	}
	if len(secure.TLSOpts) == 0 {
		t.Error("HTTP/2 is not turned off by default")
	}
	plain := metricsOptions(flags{metricsAddr: ":8080", metricsSecure: false, enableHTTP2: true})
	if plain.SecureServing || plain.FilterProvider != nil || len(plain.TLSOpts) != 0 {
		t.Errorf("plain metrics: %+v", plain)
	}
}
