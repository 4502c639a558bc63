package convert

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestEngineDoesNotDependOnTheConfigurationFile keeps the engine free of the
// worker's configuration file package: the worker translates the file into
// Config's plain values, so the file's schema can change without touching
// the conversion rules.
func TestEngineDoesNotDependOnTheConfigurationFile(t *testing.T) {
	const module = "github.com/deltapipeline/deltapipeline/"
	const forbidden = module + "internal/workerconfig"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var visit func(path string, via []string)
	visit = func(path string, via []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		pkg, err := build.ImportDir(filepath.Join(root, strings.TrimPrefix(path, module)), 0)
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			chain := append(via[:len(via):len(via)], imp)
			if imp == forbidden {
				t.Errorf("internal/convert imports %s through %s", forbidden, strings.Join(chain, " -> "))
			}
			if strings.HasPrefix(imp, module) {
				visit(imp, chain)
			}
		}
	}
	visit(module+"internal/convert", []string{module + "internal/convert"})
}
