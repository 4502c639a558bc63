#!/usr/bin/env bash
# Fails when a hack/envtest module does not require the version the Makefile
# asks for, so that the binaries in bin/k8s/<version>-linux-amd64 are always
# the version their directory name claims.
#
# Usage: check-module-version.sh <go.mod> <module path> <version>
set -euo pipefail

gomod="$1" module="$2" want="$3"
have="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$gomod")"
if [[ "$have" != "$want" ]]; then
	echo "$gomod requires $module ${have:-nothing}, but the Makefile asks for $want;" >&2
	echo "update the module (hack/envtest/gen-kube-apiserver-gomod.sh for kube-apiserver) or the Makefile version" >&2
	exit 1
fi
