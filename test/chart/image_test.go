package chart

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// versionSymbol is the variable the Dockerfiles stamp with -X; the manager
// derives its default worker image from it.
const versionSymbol = "github.com/deltapipeline/deltapipeline/internal/version.Version"

// TestManagerBinaryIsBuiltLikeTheImage compares the build settings Go
// records in bin/manager, and its ELF sections, with the build command of
// Dockerfile, so the manager the other tests run is the program the image
// holds: static, trimmed paths, stripped as the image's linker flags ask.
// (Go does not record -ldflags of a -trimpath build; the version stamp is
// checked by the manager test, which reads it from the manager's log.)
func TestManagerBinaryIsBuiltLikeTheImage(t *testing.T) {
	build := dockerfileBuild(t, filepath.Join(repoRoot, "Dockerfile"), "./cmd/manager")
	info, err := buildinfo.ReadFile(managerBinary)
	if err != nil {
		t.Fatalf("reading the build information of %s: %v", managerBinary, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if got := settings["CGO_ENABLED"]; got != build.cgoEnabled {
		t.Errorf("bin/manager built with CGO_ENABLED=%q, Dockerfile uses %q", got, build.cgoEnabled)
	}
	if got := settings["-trimpath"] == "true"; got != build.trimpath {
		t.Errorf("bin/manager built with -trimpath=%v, Dockerfile with %v", got, build.trimpath)
	}

	binary, err := elf.Open(managerBinary)
	if err != nil {
		t.Fatalf("opening %s as ELF: %v", managerBinary, err)
	}
	defer binary.Close()
	for _, program := range binary.Progs {
		if program.Type == elf.PT_INTERP {
			t.Errorf("bin/manager is dynamically linked (has an ELF interpreter); distroless/static has no loader")
		}
	}
	linkerFlags := strings.Fields(build.ldflags)
	// -s drops the symbol table and -w the DWARF debug information.
	strippedSections := map[string]string{"-s": ".symtab", "-w": ".debug_info"}
	for flag, section := range strippedSections {
		stripped := binary.Section(section) == nil
		if wanted := slices.Contains(linkerFlags, flag); stripped != wanted {
			t.Errorf("bin/manager without %s: %v; the Dockerfile's -ldflags %q with %s: %v", section, stripped, build.ldflags, flag, wanted)
		}
	}
}

func TestImagesRunAsNonRootFromDistroless(t *testing.T) {
	for _, dockerfile := range []string{"Dockerfile", "Dockerfile.worker"} {
		t.Run(dockerfile, func(t *testing.T) {
			content := readFile(t, filepath.Join(repoRoot, dockerfile))
			stages := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(content, -1)
			if len(stages) < 2 {
				t.Fatalf("%s has %d stages, want a builder and a runtime stage", dockerfile, len(stages))
			}
			if final := stages[len(stages)-1][1]; final != "gcr.io/distroless/static:nonroot" {
				t.Errorf("%s runs on %s, want gcr.io/distroless/static:nonroot", dockerfile, final)
			}
			users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(content, -1)
			if len(users) == 0 || users[len(users)-1][1] != "65532:65532" {
				t.Errorf("%s USER %v, want 65532:65532", dockerfile, users)
			}
			build := dockerfileBuild(t, filepath.Join(repoRoot, dockerfile), "")
			if build.cgoEnabled != "0" || !build.trimpath {
				t.Errorf("%s builds with CGO_ENABLED=%q trimpath=%v, want a static, trimmed build", dockerfile, build.cgoEnabled, build.trimpath)
			}
			if !strings.Contains(build.ldflags, "-X "+versionSymbol+"=${VERSION}") {
				t.Errorf("%s ldflags %q do not stamp %s with VERSION", dockerfile, build.ldflags, versionSymbol)
			}
		})
	}
}

type goBuild struct {
	cgoEnabled string
	trimpath   bool
	ldflags    string
}

// dockerfileBuild reads the `go build` RUN instruction of a Dockerfile,
// joining continuation lines; pkg, when set, must be what it builds.
func dockerfileBuild(t *testing.T, path, pkg string) goBuild {
	t.Helper()
	content := strings.ReplaceAll(readFile(t, path), "\\\n", " ")
	var command string
	for _, line := range strings.Split(content, "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			command = line
		}
	}
	if command == "" {
		t.Fatalf("%s has no RUN ... go build", path)
	}
	if pkg != "" && !strings.HasSuffix(strings.TrimSpace(command), " "+pkg) {
		t.Fatalf("%s builds %q, want %s", path, command, pkg)
	}
	var build goBuild
	if m := regexp.MustCompile(`CGO_ENABLED=(\S+)`).FindStringSubmatch(command); m != nil {
		build.cgoEnabled = m[1]
	}
	build.trimpath = regexp.MustCompile(`\s-trimpath(\s|$)`).MatchString(command)
	if m := regexp.MustCompile(`-ldflags\s+"([^"]*)"`).FindStringSubmatch(command); m != nil {
		build.ldflags = m[1]
	}
	return build
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return string(content)
}
