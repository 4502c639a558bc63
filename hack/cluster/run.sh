#!/usr/bin/env bash
# Brings the cluster up, runs COMMAND inside its network namespace with
# KUBECONFIG set, and always tears the cluster down afterwards: when the
# command fails, when the cluster does not come up, and on SIGINT/SIGTERM.
# Exits with the command's status, or non-zero when teardown left anything.
#
# Usage: CLUSTER_IMAGES="a.tar b.tar" run.sh COMMAND [ARGS...]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

# A cluster left by an interrupted earlier run is removed first.
if [[ -e "/run/netns/$CLUSTER_NETNS" || -d "$CLUSTER_DIR" ]]; then
	log "removing the cluster an earlier run left"
	"$here/cluster-down.sh" || exit 1
fi

teardown() {
	local status=$?
	trap - EXIT INT TERM
	"$here/cluster-down.sh" || status=1
	exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck disable=SC2086
"$here/cluster-up.sh" ${CLUSTER_IMAGES:-} || exit 1
began=$SECONDS
KUBECONFIG="$ADMIN_KUBECONFIG" in_netns "$@"
status=$?
log "command exited with status $status after $((SECONDS - began))s"
exit "$status"
