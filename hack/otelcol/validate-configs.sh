#!/usr/bin/env bash
# Validates every gateway configuration the operator's golden tests render
# (internal/manifests/testdata/*.gateway.yaml) with the collector that runs
# it: DeltaPipeline's gateway distribution (cmd/gateway) for configurations
# of its router, the upstream collector built from hack/otelcol for those of
# the load_balancing exporter. It also checks that the operator's upstream
# gateway image is the collector release that did the validating: a key a
# collector rejects, or a default image of another release, fails here
# rather than in a cluster.
#
# Usage: validate-configs.sh OTELCOL_BINARY GATEWAY_BINARY
set -euo pipefail

otelcol="${1:?usage: $0 OTELCOL_BINARY GATEWAY_BINARY}"
gateway="${2:?usage: $0 OTELCOL_BINARY GATEWAY_BINARY}"
cd "$(dirname "$0")/../.."

types_file=api/v1alpha1/deltapipeline_types.go
golden_dir=internal/manifests/testdata

collector_version="$("$otelcol" --version | awk '{print $NF}')"
default_image="$(sed -n 's/^const UpstreamGatewayImage = "\(.*\)"$/\1/p' "$types_file")"
if [[ -z "$default_image" ]]; then
	echo "validate-gateway-configs: no 'const UpstreamGatewayImage = \"...\"' in $types_file" >&2
	exit 1
fi
if [[ "${default_image##*:}" != "$collector_version" ]]; then
	echo "validate-gateway-configs: the upstream gateway image $default_image ($types_file) is not the validated collector release $collector_version (hack/otelcol)" >&2
	exit 1
fi

shopt -s nullglob
configs=("$golden_dir"/*.gateway.yaml)
if ((${#configs[@]} == 0)); then
	echo "validate-gateway-configs: no gateway configurations in $golden_dir/*.gateway.yaml; run 'go test ./internal/manifests -update'" >&2
	exit 1
fi

# A configuration reads some values from files of its pod at start
# (${file:/etc/deltapipeline/worker-token/token}): validate a copy whose
# file references point at placeholders under a scratch directory, so the
# rest of the configuration is checked exactly as rendered.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=0
for config in "${configs[@]}"; do
	collector="$otelcol"
	if grep -q '^  deltapipeline_router:$' "$config"; then
		collector="$gateway"
	fi
	staged="$scratch/$(basename "$config")"
	sed "s|\${file:/|\${file:$scratch/files/|g" "$config" >"$staged"
	while IFS= read -r file; do
		mkdir -p "$(dirname "$scratch/files/$file")"
		printf 'placeholder' >"$scratch/files/$file"
	done < <(grep -o '\${file:/[^}]*}' "$config" | sed 's|^\${file:/||; s|}$||' | sort -u)
	if output="$("$collector" validate --config="file:$staged" 2>&1)"; then
		echo "valid   $config ($(basename "$collector"))"
	else
		echo "INVALID $config" >&2
		echo "$output" | sed 's/^/        /' >&2
		failed=$((failed + 1))
	fi
done
if ((failed > 0)); then
	echo "validate-gateway-configs: $failed of ${#configs[@]} gateway configurations rejected" >&2
	exit 1
fi
echo "validate-gateway-configs: ${#configs[@]} gateway configurations valid for the gateway distribution or otelcol $collector_version; the upstream gateway image is $default_image"
