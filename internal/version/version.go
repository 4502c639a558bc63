// Package version holds the build's version, stamped at link time with
//
//	-ldflags "-X github.com/deltapipeline/deltapipeline/internal/version.Version=v0.1.0"
//
// The operator uses it to pick the worker image of its own version; the
// worker reports it in its User-Agent and logs.
package version

// Version is the release this binary was built from; "dev" for local builds.
var Version = "dev"
