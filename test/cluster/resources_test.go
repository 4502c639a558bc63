package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/deltapipeline/deltapipeline/api/v1alpha1"
	"github.com/deltapipeline/deltapipeline/internal/naming"
)

// podsSizedAsRendered checks that every pod of a pipeline runs in the
// Burstable QoS class the kubelet assigned it and that its container has the
// resources the pipeline's status reports for its tier. It returns how many
// pods of each component it saw, for the FIGURES line.
func podsSizedAsRendered(p *v1alpha1.DeltaPipeline, pods []corev1.Pod) (map[string]int, error) {
	byComponent := map[string]*corev1.ResourceRequirements{
		naming.ComponentGateway: p.Status.Gateway.Resources,
		naming.ComponentWorker:  p.Status.Workers.Resources,
	}
	seen := map[string]int{}
	var errs []error
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		component := pod.Labels[naming.LabelComponent]
		want, ok := byComponent[component]
		if !ok {
			errs = append(errs, fmt.Errorf("pod %s has component %q, not a tier of the pipeline", pod.Name, component))
			continue
		}
		if want == nil {
			errs = append(errs, fmt.Errorf("status of %s reports no resources for the %s tier", p.Name, component))
			continue
		}
		if pod.Status.QOSClass != corev1.PodQOSBurstable {
			errs = append(errs, fmt.Errorf("%s pod %s runs in QoS class %q, want %s", component, pod.Name, pod.Status.QOSClass, corev1.PodQOSBurstable))
		}
		if got := pod.Spec.Containers[0].Resources; !equality.Semantic.DeepEqual(got, *want) {
			errs = append(errs, fmt.Errorf("%s pod %s has resources %s, the status reports %s", component, pod.Name, resourcesSummary(&got), resourcesSummary(want)))
		}
		seen[component]++
	}
	return seen, errors.Join(errs...)
}

// resourcesSummary reads as "requests cpu=100m memory=128Mi, limits
// memory=512Mi".
func resourcesSummary(r *corev1.ResourceRequirements) string {
	if r == nil {
		return "none"
	}
	list := func(l corev1.ResourceList) string {
		names := make([]string, 0, len(l))
		for name := range l {
			names = append(names, string(name))
		}
		slices.Sort(names)
		parts := make([]string, 0, len(names))
		for _, name := range names {
			q := l[corev1.ResourceName(name)]
			parts = append(parts, name+"="+q.String())
		}
		return strings.Join(parts, " ")
	}
	return "requests " + list(r.Requests) + ", limits " + list(r.Limits)
}

// memoryCgroupRoot is where the kubelet (cgroupfs driver, cgroup v1) puts the
// pods' memory cgroups: kubepods/<qos class>/pod<uid>/<container id>.
const memoryCgroupRoot = "/sys/fs/cgroup/memory/kubepods"

// containerMemory is what the kernel accounts to one container.
type containerMemory struct {
	// Processes is the number of processes in the container's cgroup.
	Processes int
	// PeakRSS is the sum of the processes' VmHWM (peak resident set).
	PeakRSS int64
	// Limit is the cgroup's memory.limit_in_bytes, which the kubelet set
	// from the container's memory limit.
	Limit int64
	// PeakUsage is the cgroup's memory.max_usage_in_bytes (page cache
	// included).
	PeakUsage int64
	// OOMKills is oom_kill of memory.oom_control, -1 where the kernel does
	// not report it.
	OOMKills int64
}

// readContainerMemory finds the memory cgroup of a container by its ID from
// the pod status (containerd://<id>) and reads its processes' peak RSS from
// /proc. The suite shares the node's PID namespace (only the network
// namespace is the cluster's), so the container's processes are visible.
func readContainerMemory(containerID string) (containerMemory, error) {
	_, id, ok := strings.Cut(containerID, "://")
	if !ok || id == "" {
		return containerMemory{}, fmt.Errorf("container ID %q is not runtime://id", containerID)
	}
	dir, err := findCgroupDir(memoryCgroupRoot, id)
	if err != nil {
		return containerMemory{}, err
	}
	m, err := readCgroupMemory(dir)
	if err != nil {
		return m, fmt.Errorf("container %s: %w", id, err)
	}
	return m, nil
}

// readCgroupMemory reads the memory figures of the cgroup v1 memory
// directory dir and its processes.
func readCgroupMemory(dir string) (containerMemory, error) {
	m := containerMemory{OOMKills: -1}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return m, fmt.Errorf("reading the processes of %s: %w", dir, err)
	}
	for _, field := range strings.Fields(string(procs)) {
		hwm, err := peakRSS(field)
		if err != nil {
			return m, err
		}
		m.PeakRSS += hwm
		m.Processes++
	}
	if m.Processes == 0 {
		return m, fmt.Errorf("no process in the cgroup %s", dir)
	}
	if m.Limit, err = readCgroupInt(dir, "memory.limit_in_bytes"); err != nil {
		return m, err
	}
	if m.PeakUsage, err = readCgroupInt(dir, "memory.max_usage_in_bytes"); err != nil {
		return m, err
	}
	control, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return m, fmt.Errorf("reading memory.oom_control of %s: %w", dir, err)
	}
	for line := range strings.Lines(string(control)) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			if m.OOMKills, err = strconv.ParseInt(value, 10, 64); err != nil {
				return m, fmt.Errorf("memory.oom_control of %s: oom_kill %q: %w", dir, value, err)
			}
		}
	}
	return m, nil
}

// findCgroupDir is the directory named id under root.
func findCgroupDir(root, id string) (string, error) {
	var found string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// The cgroup of a pod that just stopped goes away while
			// the tree is walked.
			if path != root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && d.Name() == id {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("looking for the cgroup of container %s under %s: %w", id, root, err)
	}
	if found == "" {
		return "", fmt.Errorf("no cgroup of container %s under %s", id, root)
	}
	return found, nil
}

// peakRSS is VmHWM of /proc/<pid>/status, in bytes.
func peakRSS(pid string) (int64, error) {
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return 0, fmt.Errorf("reading the status of process %s: %w", pid, err)
	}
	scanner := bufio.NewScanner(bytes.NewReader(status))
	for scanner.Scan() {
		value, ok := strings.CutPrefix(scanner.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kib, ok := strings.CutSuffix(strings.TrimSpace(value), " kB")
		if !ok {
			return 0, fmt.Errorf("process %s: VmHWM %q is not in kB", pid, value)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(kib), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %s: VmHWM %q: %w", pid, value, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("process %s reports no VmHWM", pid)
}

func readCgroupInt(dir, file string) (int64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", file, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s of %s: %w", file, dir, err)
	}
	return n, nil
}

// mebibytes formats bytes as MiB with one decimal.
func mebibytes(bytes int64) string {
	return strconv.FormatFloat(float64(bytes)/(1<<20), 'f', 1, 64)
}
