package manifests

import (
	"math"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/deltapipeline/deltapipeline/internal/pipelinetest"
)

func TestWorkerResourcesPolicy(t *testing.T) {
	cases := []struct {
		name         string
		opts         []pipelinetest.Option
		wantRequests corev1.ResourceList
		wantLimits   corev1.ResourceList
	}{
		{
			name: "defaults for the default 1 000 000 streams",
			// 64 MiB + 1e6 × 400 B = 445.5 MiB → 446Mi; 320 MiB + 1e6 × 1100 B = 1369.1 MiB → 1370Mi;
			// 1e6 / 60 s / 300 000 per core = 56m, below the 100m floor.
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "446Mi"),
			wantLimits:   pipelinetest.Resources("memory", "1370Mi"),
		},
		{
			name:         "a small pipeline",
			opts:         []pipelinetest.Option{pipelinetest.WithMaxStreams(10_000)},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "68Mi"),
			wantLimits:   pipelinetest.Resources("memory", "331Mi"),
		},
		{
			name: "many streams raise the CPU request above the floor",
			opts: []pipelinetest.Option{pipelinetest.WithMaxStreams(3_600_000)},
			// 3.6e6 / 60 s = 60 000 points/s = 0.2 cores.
			wantRequests: pipelinetest.Resources("cpu", "200m", "memory", "1438Mi"),
			wantLimits:   pipelinetest.Resources("memory", "4097Mi"),
		},
		{
			name: "huge maxStreams scale without overflow",
			opts: []pipelinetest.Option{pipelinetest.WithMaxStreams(math.MaxInt32)},
			// 2 147 483 647 streams: int64 arithmetic, 35 791 394 points/s = 119.3 cores.
			wantRequests: pipelinetest.Resources("cpu", "119305m", "memory", "819264Mi"),
			wantLimits:   pipelinetest.Resources("memory", "2253120Mi"),
		},
		{
			name:         "a CPU limit alone keeps every default request",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("cpu", "2")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "446Mi"),
			wantLimits:   pipelinetest.Resources("cpu", "2", "memory", "1370Mi"),
		},
		{
			name:         "a memory request alone keeps the default limit",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("memory", "1Gi")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "1Gi"),
			wantLimits:   pipelinetest.Resources("memory", "1370Mi"),
		},
		{
			name:         "a memory limit below the default request lowers the request to it",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "256Mi")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "256Mi"),
			wantLimits:   pipelinetest.Resources("memory", "256Mi"),
		},
		{
			name:         "a CPU limit below the default request lowers the request to it",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("cpu", "50m")})},
			wantRequests: pipelinetest.Resources("cpu", "50m", "memory", "446Mi"),
			wantLimits:   pipelinetest.Resources("cpu", "50m", "memory", "1370Mi"),
		},
		{
			name:         "a memory request above the default limit raises the limit to it",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("memory", "2Gi")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "2Gi"),
			wantLimits:   pipelinetest.Resources("memory", "2Gi"),
		},
		{
			name:         "a zero limit removes the default limit",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "0")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "446Mi"),
		},
		{
			name: "zero everywhere removes every default",
			opts: []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{
				Requests: pipelinetest.Resources("cpu", "0", "memory", "0"), Limits: pipelinetest.Resources("memory", "0"),
			})},
		},
		{
			name: "user requests and limits all win",
			opts: []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{
				Requests: pipelinetest.Resources("cpu", "500m", "memory", "512Mi"), Limits: pipelinetest.Resources("cpu", "1", "memory", "1Gi"),
			})},
			wantRequests: pipelinetest.Resources("cpu", "500m", "memory", "512Mi"),
			wantLimits:   pipelinetest.Resources("cpu", "1", "memory", "1Gi"),
		},
		{
			name:         "other resources pass through",
			opts:         []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("ephemeral-storage", "1Gi")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "446Mi", "ephemeral-storage", "1Gi"),
			wantLimits:   pipelinetest.Resources("memory", "1370Mi"),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := WorkerResources(pipelinetest.Stored("claude", "telemetry", c.opts...))
			if !equality.Semantic.DeepEqual(got.Requests, c.wantRequests) {
				t.Errorf("requests = %v, want %v", got.Requests, c.wantRequests)
			}
			if !equality.Semantic.DeepEqual(got.Limits, c.wantLimits) {
				t.Errorf("limits = %v, want %v", got.Limits, c.wantLimits)
			}
			assertRequestsWithinLimits(t, got)
		})
	}
}

func TestGatewayResourcesPolicy(t *testing.T) {
	cases := []struct {
		name         string
		opts         []pipelinetest.Option
		wantRequests corev1.ResourceList
		wantLimits   corev1.ResourceList
	}{
		{
			name:         "defaults, whatever the worker tier",
			opts:         []pipelinetest.Option{pipelinetest.WithMaxStreams(math.MaxInt32)},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "128Mi"),
			wantLimits:   pipelinetest.Resources("memory", "512Mi"),
		},
		{
			name:         "autoscaling keeps the default CPU request it measures against",
			opts:         []pipelinetest.Option{pipelinetest.WithAutoscaling(2, 6)},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "128Mi"),
			wantLimits:   pipelinetest.Resources("memory", "512Mi"),
		},
		{
			name:         "a user CPU request wins over the default",
			opts:         []pipelinetest.Option{pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("cpu", "250m")})},
			wantRequests: pipelinetest.Resources("cpu", "250m", "memory", "128Mi"),
			wantLimits:   pipelinetest.Resources("memory", "512Mi"),
		},
		{
			name:         "a memory limit below the default request lowers the request",
			opts:         []pipelinetest.Option{pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "100Mi")})},
			wantRequests: pipelinetest.Resources("cpu", "100m", "memory", "100Mi"),
			wantLimits:   pipelinetest.Resources("memory", "100Mi"),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := GatewayResources(pipelinetest.Stored("claude", "telemetry", c.opts...))
			if !equality.Semantic.DeepEqual(got.Requests, c.wantRequests) {
				t.Errorf("requests = %v, want %v", got.Requests, c.wantRequests)
			}
			if !equality.Semantic.DeepEqual(got.Limits, c.wantLimits) {
				t.Errorf("limits = %v, want %v", got.Limits, c.wantLimits)
			}
			assertRequestsWithinLimits(t, got)
		})
	}
}

// assertRequestsWithinLimits is the API server's own rule for containers.
func assertRequestsWithinLimits(t *testing.T, r corev1.ResourceRequirements) {
	t.Helper()
	for name, request := range r.Requests {
		if limit, ok := r.Limits[name]; ok && request.Cmp(limit) > 0 {
			t.Errorf("%s request %s above its limit %s: the API server would refuse the pod", name, request.String(), limit.String())
		}
	}
}

func TestWorkerMemoryFit(t *testing.T) {
	cases := []struct {
		name         string
		opts         []pipelinetest.Option
		wantFits     bool
		wantLimited  bool
		wantCapacity int64
	}{
		{name: "the default limit holds the default maxStreams", wantFits: true, wantLimited: true, wantCapacity: 1_000_913},
		{name: "the default limit follows a huge maxStreams", opts: []pipelinetest.Option{pipelinetest.WithMaxStreams(math.MaxInt32)}, wantFits: true, wantLimited: true, wantCapacity: math.MaxInt32 + 1},
		{
			name:        "a user limit too small for maxStreams",
			opts:        []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "1Gi")})},
			wantLimited: true, wantCapacity: 671_088,
		},
		{
			name:        "a user limit below the base memory holds no stream",
			opts:        []pipelinetest.Option{pipelinetest.WithMaxStreams(1), pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "64Mi")})},
			wantLimited: true, wantCapacity: 0,
		},
		{
			name:     "a user limit that fits",
			opts:     []pipelinetest.Option{pipelinetest.WithMaxStreams(100_000), pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "1Gi")})},
			wantFits: true, wantLimited: true, wantCapacity: 671_088,
		},
		{
			name:     "no limit: nothing to overcommit",
			opts:     []pipelinetest.Option{pipelinetest.WithWorkerResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "0")})},
			wantFits: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := WorkerMemoryFitFor(pipelinetest.Stored("claude", "telemetry", c.opts...))
			if f.Fits() != c.wantFits || f.Limited != c.wantLimited || f.Capacity != c.wantCapacity {
				t.Errorf("fit = %+v (fits %v), want fits %v, limited %v, capacity %d", f, f.Fits(), c.wantFits, c.wantLimited, c.wantCapacity)
			}
		})
	}
}

func TestGatewayMemoryLimiterFollowsTheEffectiveMemory(t *testing.T) {
	cases := []struct {
		name string
		opts []pipelinetest.Option
		want map[string]any
	}{
		{name: "the default limit", want: map[string]any{"check_interval": "1s", "limit_mib": int64(409), "spike_limit_mib": int64(102)}},
		{
			name: "a user limit",
			opts: []pipelinetest.Option{pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "2Gi")})},
			want: map[string]any{"check_interval": "1s", "limit_mib": int64(1638), "spike_limit_mib": int64(409)},
		},
		{
			name: "no limit: the request",
			opts: []pipelinetest.Option{pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Limits: pipelinetest.Resources("memory", "0")})},
			want: map[string]any{"check_interval": "1s", "limit_mib": int64(102), "spike_limit_mib": int64(25)},
		},
		{
			name: "neither limit nor request: the node's memory",
			opts: []pipelinetest.Option{pipelinetest.WithGatewayResources(corev1.ResourceRequirements{Requests: pipelinetest.Resources("memory", "0"), Limits: pipelinetest.Resources("memory", "0")})},
			want: map[string]any{"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := GatewayMemoryLimiter(pipelinetest.Stored("claude", "telemetry", c.opts...))
			if !equality.Semantic.DeepEqual(got, c.want) {
				t.Errorf("memory_limiter = %v, want %v", got, c.want)
			}
		})
	}
}
