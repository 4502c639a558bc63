package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// MemoryPolicy sizes the Go garbage collector for a long-lived process
// whose live heap is mostly per-stream state.
//
// Go's default (GOGC=100) lets the heap grow to twice the live heap before
// collecting. The worker's garbage comes from decoding requests, so how much
// of it piles up between collections depends on the ingest rate, not on how
// many streams are held; doubling a heap of a million streams only to make
// room for a few requests' garbage wastes hundreds of megabytes. The policy
// instead allows a fixed amount of garbage, GCHeadroom, on top of the live
// heap: a small worker collects less often than with the default, a large
// one holds far less memory.
//
// It also sets the runtime's soft memory limit to LimitPercent of the
// container's cgroup memory limit when there is one, so the collector works
// harder before the kernel's OOM killer would act.
type MemoryPolicy struct {
	// GCHeadroom is the garbage allowed above the live heap; 0 leaves GOGC
	// as the runtime has it.
	GCHeadroom uint64
	// MinGCPercent and MaxGCPercent bound the GOGC the policy sets.
	MinGCPercent, MaxGCPercent int
	// LimitPercent of the cgroup memory limit becomes GOMEMLIMIT; 0 leaves
	// the limit alone.
	LimitPercent int
	// Every is how often the live heap is looked at.
	Every time.Duration
	// Getenv reads the environment: GOGC or GOMEMLIMIT set there win over
	// the policy.
	Getenv func(string) string
	// CgroupRoot is where the cgroup file systems are mounted.
	CgroupRoot string
	Logger     *slog.Logger
}

// DefaultGCHeadroom holds the garbage of a few dozen decoded requests of a
// thousand points between collections, whatever the stream count; it was
// chosen with hack/bench to keep a million streams under 400 bytes each
// (docs/benchmarks.md has the trade against throughput).
const DefaultGCHeadroom = 32 << 20

// DefaultMemoryPolicy is what cmd/worker runs unless told otherwise.
func DefaultMemoryPolicy(getenv func(string) string, logger *slog.Logger) MemoryPolicy {
	return MemoryPolicy{
		GCHeadroom:   DefaultGCHeadroom,
		MinGCPercent: 10,
		MaxGCPercent: 400,
		LimitPercent: 90,
		Every:        time.Second,
		Getenv:       getenv,
		CgroupRoot:   "/sys/fs/cgroup",
		Logger:       logger,
	}
}

// gcPercentFor is the GOGC that lets the heap grow by headroom over live,
// within [minPercent, maxPercent].
func gcPercentFor(live, headroom uint64, minPercent, maxPercent int) int {
	if live == 0 {
		return maxPercent
	}
	p := math.Ceil(100 * float64(headroom) / float64(live))
	return int(min(max(p, float64(minPercent)), float64(maxPercent)))
}

// worthChanging reports whether a new GOGC differs enough from the current
// one to set it; tiny changes would only make the pacer restart its
// estimates.
func worthChanging(current, next int) bool {
	if current <= 0 {
		return true
	}
	diff := math.Abs(float64(next-current)) / float64(current)
	return diff >= 0.1
}

// memoryLimitFor is the soft limit for a cgroup limit, or 0 for none.
func memoryLimitFor(cgroupLimit uint64, percent int) int64 {
	if cgroupLimit == 0 || percent <= 0 {
		return 0
	}
	return int64(cgroupLimit / 100 * uint64(percent))
}

// unlimitedCgroup is the value cgroup v1 reports for "no limit" (the
// largest page-aligned int64); anything at or above it means none.
const unlimitedCgroup = math.MaxInt64 &^ (1<<12 - 1)

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2,
// then v1); 0 means there is none.
func cgroupMemoryLimit(root string) (uint64, error) {
	for _, name := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		raw, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading the cgroup memory limit: %w", err)
		}
		text := strings.TrimSpace(string(raw))
		if text == "max" {
			return 0, nil
		}
		limit, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading the cgroup memory limit from %s: %q is not a number of bytes", filepath.Join(root, name), text)
		}
		if limit >= unlimitedCgroup {
			return 0, nil
		}
		return limit, nil
	}
	return 0, nil
}

// Run applies the policy until ctx ends.
func (p MemoryPolicy) Run(ctx context.Context) {
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p.applyLimit(logger)
	if p.GCHeadroom == 0 {
		return
	}
	if v := p.Getenv("GOGC"); v != "" {
		logger.Info("GOGC is set; the garbage collector keeps it", "GOGC", v)
		return
	}
	logger.Info("sizing the garbage collector's headroom", "headroomBytes", p.GCHeadroom)
	ticker := time.NewTicker(p.Every)
	defer ticker.Stop()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := 100
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			next := gcPercentFor(sample[0].Value.Uint64(), p.GCHeadroom, p.MinGCPercent, p.MaxGCPercent)
			if worthChanging(current, next) {
				debug.SetGCPercent(next)
				current = next
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (p MemoryPolicy) applyLimit(logger *slog.Logger) {
	if p.LimitPercent <= 0 {
		return
	}
	if v := p.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("GOMEMLIMIT is set; the runtime keeps it", "GOMEMLIMIT", v)
		return
	}
	cgroupLimit, err := cgroupMemoryLimit(p.CgroupRoot)
	if err != nil {
		logger.Warn("no soft memory limit", "error", err)
		return
	}
	if limit := memoryLimitFor(cgroupLimit, p.LimitPercent); limit > 0 {
		debug.SetMemoryLimit(limit)
		logger.Info("soft memory limit set from the container's memory limit",
			"limitBytes", limit, "containerLimitBytes", cgroupLimit)
	}
}
