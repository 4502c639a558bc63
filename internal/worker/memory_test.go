package worker

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestGCPercentForKeepsHeadroomFixed(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		live     uint64
		headroom uint64
		want     int
	}{
		{"nothing live yet", 0, 64 * mib, 400},
		{"small heap is capped", 8 * mib, 64 * mib, 400},
		{"100k streams", 32 * mib, 64 * mib, 200},
		{"equal to headroom", 64 * mib, 64 * mib, 100},
		{"a million streams", 320 * mib, 64 * mib, 20},
		{"huge heap is floored", 4096 * mib, 64 * mib, 10},
		{"rounds up", 300 * mib, 64 * mib, 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercentFor(tt.live, tt.headroom, 10, 400); got != tt.want {
				t.Errorf("gcPercentFor(%d, %d) = %d, want %d", tt.live, tt.headroom, got, tt.want)
			}
		})
	}
}

func TestWorthChanging(t *testing.T) {
	tests := []struct {
		current, next int
		want          bool
	}{
		{100, 100, false},
		{100, 105, false},
		{100, 110, true},
		{100, 50, true},
		{20, 21, false},
		{-1, 20, true},
	}
	for _, tt := range tests {
		if got := worthChanging(tt.current, tt.next); got != tt.want {
			t.Errorf("worthChanging(%d, %d) = %v, want %v", tt.current, tt.next, got, tt.want)
		}
	}
}

func TestMemoryLimitFor(t *testing.T) {
	if got := memoryLimitFor(0, 90); got != 0 {
		t.Errorf("no cgroup limit gave %d", got)
	}
	if got := memoryLimitFor(1000<<20, 0); got != 0 {
		t.Errorf("percent 0 gave %d", got)
	}
	if got, want := memoryLimitFor(1000<<20, 90), int64(1000<<20)/100*90; got != want {
		t.Errorf("90%% of 1000 MiB = %d, want %d", got, want)
	}
}

func writeCgroupFile(t *testing.T, root, name, content string) {
	t.Helper()
	path := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    uint64
		wantErr string
	}{
		{name: "no cgroup files", want: 0},
		{name: "v2 without limit", files: map[string]string{"memory.max": "max\n"}, want: 0},
		{name: "v2 limit", files: map[string]string{"memory.max": "536870912\n"}, want: 512 << 20},
		{name: "v1 limit", files: map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"}, want: 1 << 30},
		{name: "v1 without limit", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, want: 0},
		{name: "v2 wins over v1", files: map[string]string{"memory.max": "1048576", "memory/memory.limit_in_bytes": "2097152"}, want: 1 << 20},
		{name: "garbage", files: map[string]string{"memory.max": "lots"}, wantErr: `memory.max: "lots" is not a number of bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				writeCgroupFile(t, root, name, content)
			}
			got, err := cgroupMemoryLimit(root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("limit = %d, want %d", got, tt.want)
			}
		})
	}
}

// runPolicy runs p until it has looked at the heap a few times and returns
// the GOGC and memory limit it left, restoring the runtime's settings.
func runPolicy(t *testing.T, p MemoryPolicy) (gcPercent int, limit int64) {
	t.Helper()
	savedPercent := debug.SetGCPercent(100)
	savedLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(savedPercent)
		debug.SetMemoryLimit(savedLimit)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	p.Run(ctx)
	gcPercent = debug.SetGCPercent(100)
	limit = debug.SetMemoryLimit(-1)
	return gcPercent, limit
}

func testPolicy(t *testing.T, env map[string]string) MemoryPolicy {
	root := t.TempDir()
	writeCgroupFile(t, root, "memory.max", "1073741824")
	p := DefaultMemoryPolicy(func(k string) string { return env[k] }, nil)
	p.CgroupRoot = root
	p.Every = 5 * time.Millisecond
	// A headroom far beyond any test heap pins the result at the cap.
	p.GCHeadroom = 1 << 40
	return p
}

func TestMemoryPolicySetsGCPercentAndLimit(t *testing.T) {
	gcPercent, limit := runPolicy(t, testPolicy(t, nil))
	if gcPercent != 400 {
		t.Errorf("GOGC = %d, want the cap 400", gcPercent)
	}
	if want := int64(1<<30) / 100 * 90; limit != want {
		t.Errorf("memory limit = %d, want %d (90%% of the cgroup's)", limit, want)
	}
}

func TestMemoryPolicyLeavesGOGCAndGOMEMLIMITFromTheEnvironment(t *testing.T) {
	gcPercent, limit := runPolicy(t, testPolicy(t, map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}))
	if gcPercent != 100 {
		t.Errorf("GOGC = %d, want the runtime's untouched", gcPercent)
	}
	if limit <= 1<<62 {
		t.Errorf("memory limit = %d, want none set", limit)
	}
}

func TestMemoryPolicyHeadroomZeroKeepsGOGC(t *testing.T) {
	p := testPolicy(t, nil)
	p.GCHeadroom = 0
	gcPercent, _ := runPolicy(t, p)
	if gcPercent != 100 {
		t.Errorf("GOGC = %d, want the runtime's untouched", gcPercent)
	}
}
