package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations naming the image in the archive's index: the OCI one, and the
// one `ctr images import` names the imported image by.
const (
	ociRefNameAnnotation          = "org.opencontainers.image.ref.name"
	containerdImageNameAnnotation = "io.containerd.image.name"
)

// writeArchive writes img, named ref, as an OCI image layout packed into the
// tar file out (what `ctr images import` and `skopeo copy oci-archive:` read).
func writeArchive(img v1.Image, ref, out string) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-layout-")
	if err != nil {
		return fmt.Errorf("creating a directory for the OCI layout of %s: %w", ref, err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the OCI layout of %s: %w", ref, err)
	}
	annotations := map[string]string{ociRefNameAnnotation: ref, containerdImageNameAnnotation: ref}
	config, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the configuration of %s: %w", ref, err)
	}
	// The importer unpacks the image for the platform its index entry names.
	platform := layout.WithPlatform(v1.Platform{OS: config.OS, Architecture: config.Architecture})
	if err := p.AppendImage(img, layout.WithAnnotations(annotations), platform); err != nil {
		return fmt.Errorf("writing %s into its OCI layout: %w", ref, err)
	}
	if err := tarDirectory(dir, out); err != nil {
		return fmt.Errorf("packing the OCI layout of %s into %s: %w", ref, out, err)
	}
	return nil
}

// tarDirectory packs the files under dir, by their path relative to it,
// into the tar file out, written beside it and renamed when complete.
func tarDirectory(dir, out string) (err error) {
	partial := out + ".partial"
	f, err := os.Create(partial)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(partial)
		}
	}()
	tw := tar.NewWriter(f)
	walkErr := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		header, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		header.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			header.Name += "/"
		}
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(file)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if walkErr != nil {
		return walkErr
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(partial, out)
}

// readArchive unpacks an archive writeArchive wrote into dir and returns its
// one image and the annotations naming it.
func readArchive(archive, dir string) (v1.Image, map[string]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		header, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", archive, err)
		}
		name := filepath.FromSlash(strings.TrimSuffix(header.Name, "/"))
		if !filepath.IsLocal(name) {
			return nil, nil, fmt.Errorf("reading %s: entry %q leaves the archive", archive, header.Name)
		}
		target := filepath.Join(dir, name)
		if header.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return nil, nil, err
		}
		out, err := os.Create(target)
		if err != nil {
			return nil, nil, err
		}
		_, copyErr := io.Copy(out, tr)
		if closeErr := out.Close(); copyErr != nil || closeErr != nil {
			return nil, nil, fmt.Errorf("unpacking %s: %w", header.Name, errors.Join(copyErr, closeErr))
		}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the OCI layout of %s: %w", archive, err)
	}
	index, err := p.ImageIndex()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the index of %s: %w", archive, err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the index of %s: %w", archive, err)
	}
	if len(manifest.Manifests) != 1 {
		return nil, nil, fmt.Errorf("%s holds %d images, want 1", archive, len(manifest.Manifests))
	}
	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the image of %s: %w", archive, err)
	}
	return img, manifest.Manifests[0].Annotations, nil
}
