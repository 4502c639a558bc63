package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	releaseName      = "deltapipeline-operator"
	releaseNamespace = "deltapipeline-system"
)

type renderSettings struct {
	namespace   string
	valuesFiles []string
	includeCRDs bool
}

type renderOption func(*renderSettings)

func withValuesFile(path string) renderOption {
	return func(s *renderSettings) { s.valuesFiles = append(s.valuesFiles, path) }
}

func withNamespace(namespace string) renderOption {
	return func(s *renderSettings) { s.namespace = namespace }
}

func withCRDs() renderOption {
	return func(s *renderSettings) { s.includeCRDs = true }
}

// renderChart runs `helm template` and returns the manifests as YAML.
func renderChart(t *testing.T, opts ...renderOption) []byte {
	t.Helper()
	settings := renderSettings{namespace: releaseNamespace}
	for _, opt := range opts {
		opt(&settings)
	}
	args := []string{"template", releaseName, chartDir, "--namespace", settings.namespace, "--kube-version", kubeVersion}
	if settings.includeCRDs {
		args = append(args, "--include-crds")
	}
	for _, file := range settings.valuesFiles {
		args = append(args, "--values", file)
	}
	return runCommand(t, nil, helmBinary, args...)
}

// decodeObjects splits multi-document YAML into objects, skipping empty
// documents. Integers stay int64, as the API machinery decodes them.
func decodeObjects(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	var objects []*unstructured.Unstructured
	for {
		document, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objects
		}
		if err != nil {
			t.Fatalf("splitting rendered manifests: %v", err)
		}
		asJSON, err := yaml.YAMLToJSON(document)
		if err != nil {
			t.Fatalf("decoding a rendered document: %v\n%s", err, document)
		}
		if trimmed := bytes.TrimSpace(asJSON); bytes.Equal(trimmed, []byte("null")) || bytes.Equal(trimmed, []byte("{}")) {
			continue
		}
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(asJSON); err != nil {
			t.Fatalf("decoding a rendered object: %v\n%s", err, document)
		}
		objects = append(objects, object)
	}
}

// findObject returns the only object of the kind and name, failing the test otherwise.
func findObject(t *testing.T, objects []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, object := range objects {
		if object.GetKind() == kind && object.GetName() == name {
			found = append(found, object)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q in the manifests, found %d among %s", kind, name, len(found), describeObjects(objects))
	}
	return found[0]
}

func objectsOfKind(objects []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var found []*unstructured.Unstructured
	for _, object := range objects {
		if object.GetKind() == kind {
			found = append(found, object)
		}
	}
	return found
}

func describeObjects(objects []*unstructured.Unstructured) string {
	names := make([]string, 0, len(objects))
	for _, object := range objects {
		names = append(names, object.GetKind()+"/"+object.GetName())
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// kubectl runs the pinned kubectl against the envtest API server.
func kubectl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	return runCommand(t, stdin, kubectlBinary, append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
}

func runCommand(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := tryCommand(stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryCommand runs a command and returns its stdout, or an error carrying the
// command line and its stderr.
func tryCommand(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}
