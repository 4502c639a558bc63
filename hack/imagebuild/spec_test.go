package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// dockerfileImage is what the runtime stage of a Dockerfile says about the
// image it builds.
type dockerfileImage struct {
	base       string
	user       string
	entrypoint []string
	workingDir string
	labels     map[string]string
	// copies maps each file copied from the builder stage to where it lands.
	copies map[string]string
}

// TestSpecsMatchTheDockerfiles holds each builder spec to the runtime stage
// of its Dockerfile: the same entrypoint, user, working directory, labels
// (with the version stamped) and binary path, so `make images` and
// `make docker-build` describe one image.
func TestSpecsMatchTheDockerfiles(t *testing.T) {
	const version = "v9.8.7"
	withDockerfile := 0
	for _, spec := range imageSpecs(version) {
		if spec.Dockerfile == "" {
			continue
		}
		withDockerfile++
		t.Run(spec.Name, func(t *testing.T) {
			d := parseRuntimeStage(t, filepath.Join("..", "..", spec.Dockerfile), version)
			if d.base != "gcr.io/distroless/static:nonroot" {
				t.Errorf("%s runs on %s; the builder's base files copy gcr.io/distroless/static:nonroot", spec.Dockerfile, d.base)
			}
			if d.user != spec.User {
				t.Errorf("USER: %s has %q, the builder %q", spec.Dockerfile, d.user, spec.User)
			}
			if !reflect.DeepEqual(d.entrypoint, spec.Entrypoint) {
				t.Errorf("ENTRYPOINT: %s has %q, the builder %q", spec.Dockerfile, d.entrypoint, spec.Entrypoint)
			}
			if d.workingDir != spec.WorkingDir {
				t.Errorf("WORKDIR: %s has %q, the builder %q", spec.Dockerfile, d.workingDir, spec.WorkingDir)
			}
			if !reflect.DeepEqual(d.labels, spec.Labels) {
				t.Errorf("LABEL: %s has %v, the builder %v", spec.Dockerfile, d.labels, spec.Labels)
			}
			want := map[string]string{"/out/" + strings.TrimPrefix(spec.BinaryPath, "/"): spec.BinaryPath}
			if !reflect.DeepEqual(d.copies, want) {
				t.Errorf("COPY --from=builder: %s copies %v, the builder puts the binary at %s (%v)", spec.Dockerfile, d.copies, spec.BinaryPath, want)
			}
		})
	}
	if withDockerfile != 3 {
		t.Errorf("%d specs name a Dockerfile, want the manager's, the worker's and the gateway's", withDockerfile)
	}
}

// parseRuntimeStage reads the instructions of a Dockerfile's last stage,
// substituting ${VERSION} with version.
func parseRuntimeStage(t *testing.T, path, version string) dockerfileImage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content := strings.ReplaceAll(string(raw), "\\\n", " ")
	var stage []string
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			stage = nil
		}
		stage = append(stage, line)
	}
	if len(stage) == 0 {
		t.Fatalf("%s has no FROM", path)
	}
	d := dockerfileImage{labels: map[string]string{}, copies: map[string]string{}}
	labelPair := regexp.MustCompile(`([A-Za-z0-9._-]+)="([^"]*)"`)
	for _, line := range stage {
		keyword, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(strings.ReplaceAll(rest, "${VERSION}", version))
		switch keyword {
		case "FROM":
			d.base = strings.Fields(rest)[0]
		case "USER":
			d.user = rest
		case "WORKDIR":
			d.workingDir = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("%s: ENTRYPOINT %s is not the exec (JSON) form: %v", path, rest, err)
			}
		case "LABEL":
			for _, m := range labelPair.FindAllStringSubmatch(rest, -1) {
				d.labels[m[1]] = m[2]
			}
		case "COPY":
			fields := strings.Fields(rest)
			if len(fields) != 3 || fields[0] != "--from=builder" {
				t.Fatalf("%s: COPY %s; the builder only knows one binary copied from the builder stage", path, rest)
			}
			d.copies[fields[1]] = fields[2]
		case "ARG":
		default:
			t.Fatalf("%s: runtime-stage instruction %s is not compared with the builder; teach TestSpecsMatchTheDockerfiles about it", path, keyword)
		}
	}
	return d
}
