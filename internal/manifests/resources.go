package manifests

import (
	"math"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
)

// Sizing figures behind the default container resources. Each comes from a
// measurement in docs/benchmarks.md ("Sizing the pods"); change them only
// together with that section and docs/api.md's table.
const (
	// WorkerMemoryRequestBytesPerStream is what a held stream costs the
	// worker in resident memory when the streams are delta sums, the bulk
	// of Claude Code's and most SDKs' metrics: 377 B of RSS per stream at
	// a million streams (hack/bench), rounded up.
	WorkerMemoryRequestBytesPerStream = 400
	// WorkerMemoryLimitBytesPerStream covers the costlier streams a worker
	// may be filled with: an explicit-bucket histogram of 16 buckets holds
	// 714 B of live heap (BenchmarkMemoryPerHistogramStream), and resident
	// memory is 1.5 times the live heap (377 B of RSS per sum stream against
	// its 253 B of heap): 1 071 B, rounded up.
	WorkerMemoryLimitBytesPerStream = 1100
	// WorkerBaseMemoryRequest is a worker's resident memory with no streams
	// at a moderate ingest rate: its idle RSS (17 MiB) plus the garbage
	// collector's fixed headroom (32 MiB), rounded up.
	WorkerBaseMemoryRequest = 64 << 20
	// WorkerBaseMemoryLimit is what a worker holds besides its streams while
	// it takes points as fast as it can: 333 MiB of peak RSS with 100 000
	// streams in hack/bench, less those streams' 36 MiB, rounded up.
	WorkerBaseMemoryLimit = 320 << 20
	// WorkerPointsPerCoreSecond is the worker's ingest throughput per core:
	// hack/bench's 657 633 points/s on 2 cores shared with the load
	// generator, rounded down.
	WorkerPointsPerCoreSecond = 300_000
	// ClientExportInterval is how often a client writes each of its streams:
	// the OpenTelemetry SDKs' and Claude Code's default.
	ClientExportInterval = time.Minute
	// MinWorkerCPURequestMilli keeps a small pipeline's worker schedulable with
	// room for start-up (replaying the journal) and emits.
	MinWorkerCPURequestMilli = 100

	// GatewayMemoryRequest and GatewayMemoryLimit frame the collector's
	// measured footprint: 54 MiB of idle RSS, 83 MiB taking 5 000 points/s,
	// 467 MiB at its peak with a per-worker queue full and the
	// memory_limiter (80 % of the limit) refusing data.
	GatewayMemoryRequest = 128 << 20
	GatewayMemoryLimit   = 512 << 20
	// GatewayCPURequestMilli is what the gateway HPA measures utilisation
	// against.
	GatewayCPURequestMilli = 100
)

// defaultMaxStreams is the CRD's default of spec.worker.conversion.maxStreams,
// for objects built before the API server defaulted them.
const defaultMaxStreams = 1_000_000

// MaxStreams is the number of streams one worker holds at most.
func MaxStreams(p *v1alpha1.DeltaPipeline) int64 {
	return int64(ptr.Deref(p.Spec.Worker.Conversion.MaxStreams, defaultMaxStreams))
}

// WorkerDefaultResources is the worker container's resources when the user
// sets none, from spec.worker.conversion.maxStreams:
//
//	requests.memory = 64 MiB  + maxStreams × 400 B
//	limits.memory   = 320 MiB + maxStreams × 1100 B
//	requests.cpu    = max(100m, maxStreams / 60 s / 300 000 points/s per core)
//
// The request is what a worker full of sum streams uses; the limit leaves room
// for a worker full of histograms taking points at full speed, so a worker
// reaches maxStreams before the kernel's OOM killer would act. There is no CPU
// limit: a throttled worker answers late and the gateways retry.
func WorkerDefaultResources(p *v1alpha1.DeltaPipeline) corev1.ResourceRequirements {
	streams := MaxStreams(p)
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    milliCPU(workerCPUMilli(streams)),
			corev1.ResourceMemory: mebibytesAtLeast(WorkerBaseMemoryRequest + streams*WorkerMemoryRequestBytesPerStream),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: mebibytesAtLeast(workerMemoryFor(streams)),
		},
	}
}

// workerMemoryFor is the memory limit a worker holding streams needs.
func workerMemoryFor(streams int64) int64 {
	return WorkerBaseMemoryLimit + streams*WorkerMemoryLimitBytesPerStream
}

// workerCPUMilli is the CPU, in millicores, that takes one point of every
// stream per client export interval.
func workerCPUMilli(streams int64) int64 {
	pointsPerSecond := float64(streams) / ClientExportInterval.Seconds()
	milli := int64(math.Ceil(1000 * pointsPerSecond / WorkerPointsPerCoreSecond))
	return max(milli, MinWorkerCPURequestMilli)
}

// GatewayDefaultResources is the gateway container's resources when the user
// sets none: a fixed 100m CPU and 128 MiB memory request with a 512 MiB
// memory limit. A gateway holds no per-stream state; what grows is the
// per-worker queues, which the memory_limiter bounds (GatewayMemoryLimiter).
func GatewayDefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    milliCPU(GatewayCPURequestMilli),
			corev1.ResourceMemory: mebibytesAtLeast(GatewayMemoryRequest),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: mebibytesAtLeast(GatewayMemoryLimit),
		},
	}
}

// WorkerResources is what the worker container runs with.
func WorkerResources(p *v1alpha1.DeltaPipeline) corev1.ResourceRequirements {
	return EffectiveResources(WorkerDefaultResources(p), p.Spec.Worker.Resources)
}

// GatewayResources is what the gateway container runs with.
func GatewayResources(p *v1alpha1.DeltaPipeline) corev1.ResourceRequirements {
	return EffectiveResources(GatewayDefaultResources(), p.Spec.Gateway.Resources)
}

// EffectiveResources merges the user's resources over the defaults, field by
// field: every request and limit the user sets wins, the others keep their
// default, and a user value of zero removes the field (a zero limit is how
// a default limit is turned off). A default never contradicts a user value:
// see requestWithinLimit and limitAboveRequest.
func EffectiveResources(defaults, user corev1.ResourceRequirements) corev1.ResourceRequirements {
	requests := mergeResourceList(defaults.Requests, user.Requests)
	limits := mergeResourceList(defaults.Limits, user.Limits)
	for name, request := range requests {
		limit, limited := limits[name]
		if !limited {
			continue
		}
		_, userRequest := user.Requests[name]
		_, userLimit := user.Limits[name]
		switch {
		case !userRequest && userLimit:
			requests[name] = requestWithinLimit(request, limit)
		case userRequest && !userLimit:
			limits[name] = limitAboveRequest(limit, request)
		}
	}
	out := corev1.ResourceRequirements{Claims: slices.Clone(user.Claims)}
	if len(requests) > 0 {
		out.Requests = requests
	}
	if len(limits) > 0 {
		out.Limits = limits
	}
	return out
}

// mergeResourceList is defaults overlaid with user, without the names the
// user set to zero.
func mergeResourceList(defaults, user corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range defaults {
		out[name] = q.DeepCopy()
	}
	for name, q := range user {
		if q.IsZero() {
			delete(out, name)
			continue
		}
		out[name] = q.DeepCopy()
	}
	return out
}

// requestWithinLimit lowers a default request to a user's smaller limit:
// Kubernetes refuses a request above its limit, and the user's limit says
// how much the container may have.
func requestWithinLimit(defaultRequest, userLimit resource.Quantity) resource.Quantity {
	if defaultRequest.Cmp(userLimit) > 0 {
		return userLimit.DeepCopy()
	}
	return defaultRequest
}

// limitAboveRequest raises a default limit to a user's larger request: the
// user asked for that much, a default must not refuse it.
func limitAboveRequest(defaultLimit, userRequest resource.Quantity) resource.Quantity {
	if defaultLimit.Cmp(userRequest) < 0 {
		return userRequest.DeepCopy()
	}
	return defaultLimit
}

// WorkerMemoryFit tells whether a worker holding maxStreams streams stays
// within its effective memory limit.
type WorkerMemoryFit struct {
	// Limited is false when the worker has no memory limit.
	Limited bool
	// Limit is the effective memory limit, in bytes.
	Limit int64
	// Needed is the memory limit maxStreams streams need, in bytes.
	Needed int64
	// Capacity is the number of streams that fit in Limit.
	Capacity int64
	// MaxStreams is spec.worker.conversion.maxStreams.
	MaxStreams int64
}

// Fits reports whether maxStreams streams fit; a worker without a limit fits.
func (f WorkerMemoryFit) Fits() bool {
	return !f.Limited || f.Needed <= f.Limit
}

// WorkerMemoryFitFor compares the worker's effective memory limit with what
// maxStreams streams need by the sizing figures above.
func WorkerMemoryFitFor(p *v1alpha1.DeltaPipeline) WorkerMemoryFit {
	f := WorkerMemoryFit{MaxStreams: MaxStreams(p)}
	f.Needed = workerMemoryFor(f.MaxStreams)
	limit, ok := WorkerResources(p).Limits[corev1.ResourceMemory]
	if !ok {
		return f
	}
	f.Limited = true
	f.Limit = limit.Value()
	f.Capacity = max(0, (f.Limit-WorkerBaseMemoryLimit)/WorkerMemoryLimitBytesPerStream)
	return f
}

// Memory limiter percentages of the gateway's memory: data is refused from
// 80 % on, and the garbage collector is forced from 60 % (80 % less a 20 %
// spike allowance).
const (
	memoryLimiterPercent      = 80
	memoryLimiterSpikePercent = 20
)

// GatewayMemoryLimiter is the gateway's memory_limiter configuration. It is
// sized from the container's effective memory limit, or from its memory
// request when the user removed the limit (what the scheduler reserved is
// then all the gateway can count on); with neither, the collector's
// percentages apply to the memory it sees, which is the node's.
func GatewayMemoryLimiter(p *v1alpha1.DeltaPipeline) map[string]any {
	r := GatewayResources(p)
	budget, ok := r.Limits[corev1.ResourceMemory]
	if !ok {
		budget, ok = r.Requests[corev1.ResourceMemory]
	}
	if !ok {
		return map[string]any{
			"check_interval":         "1s",
			"limit_percentage":       memoryLimiterPercent,
			"spike_limit_percentage": memoryLimiterSpikePercent,
		}
	}
	mib := budget.Value() >> 20
	return map[string]any{
		"check_interval":  "1s",
		"limit_mib":       max(1, mib*memoryLimiterPercent/100),
		"spike_limit_mib": mib * memoryLimiterSpikePercent / 100,
	}
}

func milliCPU(milli int64) resource.Quantity {
	return *resource.NewMilliQuantity(milli, resource.DecimalSI)
}

// mebibytesAtLeast rounds bytes up to whole MiB, so quantities read as the
// API server prints them ("636Mi").
func mebibytesAtLeast(bytes int64) resource.Quantity {
	const mib = 1 << 20
	return *resource.NewQuantity((bytes+mib-1)/mib*mib, resource.BinarySI)
}
