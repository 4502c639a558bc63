#!/usr/bin/env bash
# Fails when regenerating (the command given as arguments, e.g.
# `make generate manifests dashboards`) changes any generated file: the CRDs
# and RBAC role in config/, their copies in the Helm chart, the chart's
# dashboards and alert rules, their promtool tests, and zz_generated Go files.
# It compares against the working tree rather than the last commit, so it
# checks "generated files match their sources" on a dirty tree as well as
# on a fresh clone in CI.
set -euo pipefail

cd "$(dirname "$0")/../.."
generated_paths=(config/crd config/rbac charts/deltapipeline-operator/crds charts/deltapipeline-operator/files charts/deltapipeline-operator/dashboards test/alerts)

snapshot_dir="$(mktemp -d)"
trap 'rm -rf "$snapshot_dir"' EXIT

snapshot() {
	local dest="$1"
	mkdir -p "$dest"
	for path in "${generated_paths[@]}"; do
		if [[ -e "$path" ]]; then
			mkdir -p "$dest/$(dirname "$path")"
			cp -R "$path" "$dest/$path"
		fi
	done
	# zz_generated files can sit in any package.
	find . -path ./bin -prune -o -path ./.git -prune -o -name 'zz_generated*.go' -print |
		while read -r file; do
			mkdir -p "$dest/$(dirname "$file")"
			cp "$file" "$dest/$file"
		done
}

snapshot "$snapshot_dir/before"
"$@"
snapshot "$snapshot_dir/after"

if ! diff -ruN "$snapshot_dir/before" "$snapshot_dir/after"; then
	echo >&2
	echo "generated files are out of date: run 'make generate manifests dashboards' and commit the result" >&2
	exit 1
fi
echo "generated files are up to date"
