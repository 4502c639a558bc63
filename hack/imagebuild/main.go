// Command imagebuild writes the OCI images of the manager, the worker and the
// cluster suite's gateway without Docker or a registry: the static binary the
// Makefile built, on the files distroless/static:nonroot gives it (account
// files, CA bundle, /tmp), started as the Dockerfiles start it. The result is
// an OCI image layout packed into a tar file that `ctr images import` loads.
//
//	imagebuild --image worker --binary bin/worker --version v0.1.0 \
//	    --ref ghcr.io/deltapipeline/deltapipeline-worker:v0.1.0 --out worker.tar
//
// TestSpecsMatchTheDockerfiles keeps each spec equal to its Dockerfile.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	name := flags.String("image", "", "image to build: manager, worker, gateway, pause, prometheus, loadgen or receiver")
	binary := flags.String("binary", "", "static binary the image runs")
	version := flags.String("version", "", "version stamped into the image's labels")
	ref := flags.String("ref", "", "image reference the archive names the image by, e.g. ghcr.io/deltapipeline/deltapipeline-worker:v0.1.0")
	caBundle := flags.String("ca-bundle", caBundlePath, "PEM bundle of the CA certificates the image trusts")
	out := flags.String("out", "", "tar file to write the OCI image layout to")
	if err := flags.Parse(args); err != nil {
		return err
	}
	for flagName, value := range map[string]string{"image": *name, "binary": *binary, "version": *version, "ref": *ref, "out": *out} {
		if value == "" {
			return fmt.Errorf("--%s is required", flagName)
		}
	}
	spec, err := findImageSpec(imageSpecs(*version), *name)
	if err != nil {
		return err
	}
	bundle, err := os.ReadFile(*caBundle)
	if err != nil {
		return fmt.Errorf("reading the CA bundle (install ca-certificates or pass --ca-bundle): %w", err)
	}
	img, err := buildImage(spec, *binary, bundle)
	if err != nil {
		return err
	}
	if err := writeArchive(img, *ref, *out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing the digest of %s: %w", *ref, err)
	}
	fmt.Printf("%s %s -> %s\n", *ref, digest, *out)
	return nil
}
