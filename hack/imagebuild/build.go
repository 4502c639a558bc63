package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// caBundlePath is where Go's crypto/x509 (and distroless) look for the
// system roots on Linux; the worker needs them for TLS to its backends.
const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// The account files of distroless/static:nonroot, so that the non-root user
// has a name and a home, as in the images the Dockerfiles build.
const (
	passwdFile = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	groupFile = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"tty:x:5:\n" +
		"staff:x:50:\n" +
		"nonroot:x:65532:\n"
)

// imageEnv is the environment distroless/static sets.
var imageEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=" + caBundlePath,
}

// fileEntry is one entry of a layer.
type fileEntry struct {
	path    string
	mode    int64
	uid     int
	dir     bool
	content []byte
}

// baseEntries are the files the runtime stage's base image gives the binary:
// the account files, the CA bundle, a world-writable /tmp and the non-root
// user's home.
func baseEntries(caBundle []byte) []fileEntry {
	return []fileEntry{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/passwd", mode: 0o644, content: []byte(passwdFile)},
		{path: "etc/group", mode: 0o644, content: []byte(groupFile)},
		{path: "etc/ssl", mode: 0o755, dir: true},
		{path: "etc/ssl/certs", mode: 0o755, dir: true},
		{path: path.Clean(caBundlePath)[1:], mode: 0o644, content: caBundle},
		{path: "home", mode: 0o755, dir: true},
		{path: "home/nonroot", mode: 0o700, uid: nonrootID, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
	}
}

// buildImage assembles the image of spec: a base layer and a layer holding
// the binary read from binaryFile, with the spec's start settings and labels.
// Every timestamp is the Unix epoch, so the same inputs give the same digest.
func buildImage(spec imageSpec, binaryFile string, caBundle []byte) (v1.Image, error) {
	binary, err := os.ReadFile(binaryFile)
	if err != nil {
		return nil, fmt.Errorf("reading the %s binary: %w", spec.Name, err)
	}
	if len(caBundle) == 0 {
		return nil, fmt.Errorf("building the %s image: the CA bundle is empty", spec.Name)
	}
	base, err := layerOf(baseEntries(caBundle))
	if err != nil {
		return nil, fmt.Errorf("building the base layer of the %s image: %w", spec.Name, err)
	}
	program, err := layerOf([]fileEntry{{path: spec.BinaryPath[1:], mode: 0o755, content: binary}})
	if err != nil {
		return nil, fmt.Errorf("building the binary layer of the %s image: %w", spec.Name, err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, program)
	if err != nil {
		return nil, fmt.Errorf("adding the layers of the %s image: %w", spec.Name, err)
	}
	configFile, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the configuration of the %s image: %w", spec.Name, err)
	}
	configFile = configFile.DeepCopy()
	configFile.OS = "linux"
	configFile.Architecture = runtime.GOARCH
	configFile.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	configFile.Config.Entrypoint = spec.Entrypoint
	configFile.Config.User = spec.User
	configFile.Config.WorkingDir = spec.WorkingDir
	configFile.Config.Env = imageEnv
	configFile.Config.Labels = spec.Labels
	img, err = mutate.ConfigFile(img, configFile)
	if err != nil {
		return nil, fmt.Errorf("setting the configuration of the %s image: %w", spec.Name, err)
	}
	return img, nil
}

// layerOf writes entries, parents before children, into one OCI layer.
func layerOf(entries []fileEntry) (v1.Layer, error) {
	sorted := append([]fileEntry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	for _, e := range sorted {
		header := &tar.Header{
			Name:    e.path,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			header.Typeflag = tar.TypeDir
			header.Name += "/"
		} else {
			header.Typeflag = tar.TypeReg
			header.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(header); err != nil {
			return nil, fmt.Errorf("writing %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.content); err != nil {
			return nil, fmt.Errorf("writing %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the layer: %w", err)
	}
	content := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
