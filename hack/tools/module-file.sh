#!/usr/bin/env bash
# Prints the path of a file inside a Go module downloaded from the module
# proxy, e.g. an upstream CRD the tests install. Runs outside this module so
# the download never touches go.mod or go.sum.
#
# Usage: module-file.sh <module>@<version> <path inside the module>
set -euo pipefail

module_version="${1:?usage: $0 <module>@<version> <path>}"
path_in_module="${2:?usage: $0 <module>@<version> <path>}"
go_bin="${GO:-go}"

module_dir="$(cd / && GOWORK=off GOFLAGS=-mod=mod "$go_bin" mod download -json "$module_version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$module_dir" ]]; then
	echo "downloading $module_version from the module proxy failed" >&2
	exit 1
fi
if [[ ! -f "$module_dir/$path_in_module" ]]; then
	echo "$module_version has no file $path_in_module" >&2
	exit 1
fi
echo "$module_dir/$path_in_module"
