package main

import (
	"fmt"
	"sort"
)

// imageSpec is what one image holds besides its base files: one static
// binary, how it starts and the metadata the Dockerfile gives it.
type imageSpec struct {
	// Name is how `make images` and --image name the image.
	Name string
	// Dockerfile is the Dockerfile describing the same image, empty when the
	// image has none (the cluster suite's own images).
	Dockerfile string
	// BinaryPath is where the binary lands in the image.
	BinaryPath string
	Entrypoint []string
	User       string
	WorkingDir string
	// Labels hold the org.opencontainers.image.* annotations, the version
	// already stamped in.
	Labels map[string]string
}

// nonrootID is distroless's `nonroot` user and group, the identity every
// pod the operator renders runs as.
const nonrootID = 65532

const sourceURL = "https://github.com/deltapipeline/deltapipeline"

// imageSpecs lists the images `make images` builds, for one version.
func imageSpecs(version string) []imageSpec {
	user := fmt.Sprintf("%d:%d", nonrootID, nonrootID)
	return []imageSpec{
		{
			Name:       "manager",
			Dockerfile: "Dockerfile",
			BinaryPath: "/manager",
			Entrypoint: []string{"/manager"},
			User:       user,
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-operator",
				"Operator for DeltaPipeline: delta to cumulative OpenTelemetry metrics", version),
		},
		{
			Name:       "worker",
			Dockerfile: "Dockerfile.worker",
			BinaryPath: "/worker",
			Entrypoint: []string{"/worker"},
			User:       user,
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-worker",
				"DeltaPipeline worker: converts delta OpenTelemetry metrics to cumulative series", version),
		},
		{
			Name:       "gateway",
			Dockerfile: "Dockerfile.gateway",
			BinaryPath: "/gateway",
			Entrypoint: []string{"/gateway"},
			User:       user,
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-gateway",
				"DeltaPipeline gateway: OpenTelemetry Collector that routes each stream to its worker", version),
		},
		{
			// The pod sandbox of the cluster suite's node (hack/cluster/pause),
			// running as the upstream pause image does, as nobody.
			Name:       "pause",
			BinaryPath: "/pause",
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-cluster-pause",
				"Pod sandbox process of the cluster suite's single-node cluster", version),
		},
		{
			// The cluster suite's remote write receiver: Prometheus built
			// from hack/prometheus, started with the suite's flags.
			Name:       "prometheus",
			BinaryPath: "/bin/prometheus",
			Entrypoint: []string{"/bin/prometheus"},
			User:       user,
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-cluster-prometheus",
				"Prometheus, the remote write receiver of the cluster suite", version),
		},
		{
			// The Claude Code load generator (cmd/loadgen), run as a pod by
			// the cluster suite to reach a pipeline's published endpoints.
			Name:       "loadgen",
			BinaryPath: "/loadgen",
			Entrypoint: []string{"/loadgen"},
			User:       user,
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-loadgen",
				"Claude Code load generator of the DeltaPipeline test suites", version),
		},
		{
			// The end-to-end suite's remote write receiver as a pod
			// (hack/cluster/receiver), when no Prometheus is built.
			Name:       "receiver",
			BinaryPath: "/receiver",
			Entrypoint: []string{"/receiver"},
			User:       user,
			WorkingDir: "/",
			Labels: imageLabels("deltapipeline-cluster-receiver",
				"Remote write receiver of the DeltaPipeline test suites", version),
		},
	}
}

func imageLabels(title, description, version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       title,
		"org.opencontainers.image.description": description,
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.version":     version,
	}
}

// findImageSpec returns the spec called name, or an error listing the
// names there are.
func findImageSpec(specs []imageSpec, name string) (imageSpec, error) {
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return imageSpec{}, fmt.Errorf("no image called %q; images: %v", name, names)
}
