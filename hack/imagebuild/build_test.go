package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// imageFile is one file of an image's flattened filesystem.
type imageFile struct {
	header  tar.Header
	content []byte
}

// TestBuiltImageHoldsWhatTheBinaryNeeds builds every image from a real
// executable, writes and reads back its archive, and checks the files the
// binary needs at run time and the start settings of its spec.
func TestBuiltImageHoldsWhatTheBinaryNeeds(t *testing.T) {
	binaryFile, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binary, err := os.ReadFile(binaryFile)
	if err != nil {
		t.Fatal(err)
	}
	caBundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

	for _, spec := range imageSpecs("v1.2.3") {
		t.Run(spec.Name, func(t *testing.T) {
			img, err := buildImage(spec, binaryFile, caBundle)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			archive := filepath.Join(dir, spec.Name+".tar")
			ref := "example.test/" + spec.Name + ":v1.2.3"
			if err := writeArchive(img, ref, archive); err != nil {
				t.Fatal(err)
			}
			read, annotations, err := readArchive(archive, filepath.Join(dir, "unpacked"))
			if err != nil {
				t.Fatal(err)
			}
			if annotations[containerdImageNameAnnotation] != ref || annotations[ociRefNameAnnotation] != ref {
				t.Errorf("archive annotations %v, want %s named %s", annotations, containerdImageNameAnnotation, ref)
			}
			written, _ := img.Digest()
			if got, _ := read.Digest(); got != written {
				t.Errorf("archive holds digest %s, the built image is %s", got, written)
			}

			config, err := read.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if config.OS != "linux" || config.Config.User != spec.User || !reflect.DeepEqual(config.Config.Entrypoint, spec.Entrypoint) ||
				config.Config.WorkingDir != spec.WorkingDir || !reflect.DeepEqual(config.Config.Labels, spec.Labels) {
				t.Errorf("image configuration %+v, want the spec %+v", config.Config, spec)
			}

			files := flatten(t, read)
			if got := files[strings.TrimPrefix(spec.BinaryPath, "/")]; !bytes.Equal(got.content, binary) || got.header.Mode&0o111 == 0 {
				t.Errorf("%s: %d bytes mode %o, want the %d-byte binary, executable", spec.BinaryPath, len(got.content), got.header.Mode, len(binary))
			}
			if got := files["etc/ssl/certs/ca-certificates.crt"]; !bytes.Equal(got.content, caBundle) {
				t.Errorf("CA bundle %q, want %q", got.content, caBundle)
			}
			if !strings.Contains(string(files["etc/passwd"].content), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", files["etc/passwd"].content)
			}
			if !strings.Contains(string(files["etc/group"].content), "nonroot:x:65532:") {
				t.Errorf("/etc/group has no nonroot group 65532:\n%s", files["etc/group"].content)
			}
			if home := files["home/nonroot"].header; home.Uid != nonrootID || home.Typeflag != tar.TypeDir {
				t.Errorf("/home/nonroot owned by %d (type %c), want a directory of %d", home.Uid, home.Typeflag, nonrootID)
			}
			if tmp := files["tmp"].header; tmp.Mode&0o1777 != 0o1777 {
				t.Errorf("/tmp mode %o, want 1777", tmp.Mode)
			}

			again, err := buildImage(spec, binaryFile, caBundle)
			if err != nil {
				t.Fatal(err)
			}
			if digest, _ := again.Digest(); digest != written {
				t.Errorf("the same inputs gave %s, then %s; the build must be reproducible", written, digest)
			}
		})
	}
}

func TestBuildRefusesMissingInputs(t *testing.T) {
	spec, err := findImageSpec(imageSpecs("v1"), "worker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildImage(spec, filepath.Join(t.TempDir(), "absent"), []byte("x")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "worker binary") {
		t.Errorf("missing binary: %v, want an error naming the worker binary", err)
	}
	self, _ := os.Executable()
	if _, err := buildImage(spec, self, nil); err == nil || !strings.Contains(err.Error(), "CA bundle") {
		t.Errorf("empty CA bundle: %v, want an error naming the CA bundle", err)
	}
	if _, err := findImageSpec(imageSpecs("v1"), "sidecar"); err == nil || !strings.Contains(err.Error(), "gateway loadgen manager pause prometheus receiver worker") {
		t.Errorf("unknown image: %v, want the list of images", err)
	}
	if err := run([]string{"--image", "worker"}); err == nil || !strings.Contains(err.Error(), "is required") {
		t.Errorf("run without flags: %v, want a required-flag error", err)
	}
}

// flatten reads the image's filesystem as the runtime sees it.
func flatten(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]imageFile{}
	tr := tar.NewReader(rc)
	for {
		header, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading the image's filesystem: %v", err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", header.Name, err)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(header.Name, "/"), "/")] = imageFile{header: *header, content: content}
	}
}
