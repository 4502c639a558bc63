#!/usr/bin/env bash
# Tears down what cluster-up.sh started, whatever state it reached: the pod
# processes, containerd's shims, every component, the mounts under
# CLUSTER_DIR, the pod network namespaces, the kubelet's cgroups and the
# cluster's network namespace. Then it checks that nothing is left, prints
# what is, and fails if anything is. Logs are kept in CLUSTER_LOG_DIR.
#
# Usage: cluster-down.sh
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

# stop NAME sends SIGTERM to a recorded process, then SIGKILL after a grace.
stop() {
	local pidfile="$PID_DIR/$1.pid" pid started
	pid_alive "$pidfile" || return 0
	read -r pid started <"$pidfile"
	kill -TERM "$pid" 2>/dev/null
	local waited=0
	while pid_alive "$pidfile" && ((waited < 100)); do
		sleep 0.1
		waited=$((waited + 1))
	done
	pid_alive "$pidfile" && kill -KILL "$pid" 2>/dev/null
	while pid_alive "$pidfile"; do sleep 0.1; done
}

# pod_cgroup_dirs lists the kubelet's pod cgroups, deepest first.
pod_cgroup_dirs() {
	local root
	for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
		[[ -d "$root" ]] && find "$root" -depth -type d
	done 2>/dev/null | awk '!seen[$0]++'
}

# kill_pod_processes kills every process in the pod cgroups (containers and
# sandboxes), until none is left.
kill_pod_processes() {
	local round pids
	for round in $(seq 1 50); do
		pids="$(pod_cgroup_dirs | while read -r dir; do cat "$dir/cgroup.procs" 2>/dev/null; done | sort -u)"
		[[ -z "$pids" ]] && return 0
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		sleep 0.2
	done
}

# shim_pids lists containerd shims serving this cluster's containerd: each
# is started with -address CONTAINERD_SOCKET.
shim_pids() {
	local proc cmdline
	for proc in /proc/[0-9]*; do
		cmdline="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")" || continue
		if [[ "$cmdline" == *containerd-shim*"-address $CONTAINERD_SOCKET "* ]]; then
			echo "${proc#/proc/}"
		fi
	done
}

# ancestors lists this script's process and every process above it (the
# make or shell that started it may name CLUSTER_DIR too).
ancestors() {
	local pid=$BASHPID
	while [[ -n "$pid" && "$pid" != 0 ]]; do
		echo "$pid"
		pid="$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
	done
}

# leftover_processes lists every process whose command line names
# CLUSTER_DIR (all components and shims do), other than this script and
# its callers.
leftover_processes() {
	local proc cmdline mine
	mine=" $(ancestors | tr '\n' ' ') $$ "
	for proc in /proc/[0-9]*; do
		[[ "$mine" == *" ${proc#/proc/} "* ]] && continue
		cmdline="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")" || continue
		if [[ "$cmdline" == *"$CLUSTER_DIR/"* ]]; then
			echo "${proc#/proc/} $cmdline"
		fi
	done
}

# cluster_mounts lists mount points under CLUSTER_DIR, deepest first.
cluster_mounts() {
	awk -v dir="$CLUSTER_DIR/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# pod_netns lists the network namespaces the bridge CNI made for this
# cluster's pods: cni-* created after the cluster started.
pod_netns() {
	[[ -f "$START_MARKER" ]] || return 0
	find /run/netns -maxdepth 1 -name 'cni-*' -newer "$START_MARKER" 2>/dev/null
}

main() {
	local began=$SECONDS
	if [[ -f "$PID_DIR/order" ]]; then
		# The node first, so nothing restarts the pods being removed.
		stop kubelet
		stop kube-proxy
		kill_pod_processes
		local shim
		for shim in $(shim_pids); do kill -KILL "$shim" 2>/dev/null; done
		stop containerd
		local name
		for name in coredns kube-scheduler kube-controller-manager kube-apiserver etcd; do
			stop "$name"
		done
	fi

	local mountpoint
	for mountpoint in $(cluster_mounts); do
		umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null
	done
	local netns
	for netns in $(pod_netns); do
		ip netns delete "$(basename "$netns")" 2>/dev/null || { umount -l "$netns" 2>/dev/null; rm -f "$netns"; }
	done
	local dir
	for dir in $(pod_cgroup_dirs); do rmdir "$dir" 2>/dev/null; done
	if [[ -e "/run/netns/$CLUSTER_NETNS" ]]; then
		ip netns delete "$CLUSTER_NETNS"
	fi
	# The kubelet links each container log into /var/log/containers; drop
	# the links into this cluster's pod logs.
	find /var/log/containers -maxdepth 1 -type l -lname "$CLUSTER_DIR/*" -delete 2>/dev/null

	if [[ -d "$LOG_DIR" ]]; then
		rm -rf "$CLUSTER_LOG_DIR"
		cp -r "$LOG_DIR" "$CLUSTER_LOG_DIR"
		[[ -d "$CLUSTER_DIR/pod-logs" ]] && cp -rL "$CLUSTER_DIR/pod-logs" "$CLUSTER_LOG_DIR/pods" 2>/dev/null
	fi

	local left=()
	local processes mounts
	processes="$(leftover_processes)"
	[[ -n "$processes" ]] && left+=("processes:" "$processes")
	mounts="$(cluster_mounts)"
	[[ -n "$mounts" ]] && left+=("mounts:" "$mounts")
	[[ -n "$(pod_netns)" ]] && left+=("pod network namespaces:" "$(pod_netns)")
	[[ -e "/run/netns/$CLUSTER_NETNS" ]] && left+=("network namespace:" "$CLUSTER_NETNS")
	[[ -n "$(pod_cgroup_dirs)" ]] && left+=("cgroups:" "$(pod_cgroup_dirs)")
	if ((${#left[@]} > 0)); then
		log "teardown left behind:"
		printf '  %s\n' "${left[@]}" >&2
		exit 1
	fi
	rm -rf "$CLUSTER_DIR"
	log "down in $((SECONDS - began))s: no process, mount, network namespace or cgroup left; logs in $CLUSTER_LOG_DIR"
}

main
