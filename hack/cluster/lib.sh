# Settings and functions shared by cluster-up.sh, cluster-down.sh and run.sh.
# Every setting can be overridden from the environment; the Makefile passes
# the binary locations.
#
# The whole cluster lives in one network namespace, CLUSTER_NETNS, whose only
# interface besides loopback is a veth whose peer is down, so nothing it runs
# can reach, or be reached from, the machine's network. Pod network
# namespaces hang off a bridge inside it. Processes run in the machine's
# mount and PID namespaces; their files, mounts and sockets stay under
# CLUSTER_DIR.

CLUSTER_NETNS="${CLUSTER_NETNS:-deltapipeline-cluster}"
# Short: containerd's socket path must fit in a unix socket address.
CLUSTER_DIR="${CLUSTER_DIR:-/tmp/deltapipeline-cluster}"
CLUSTER_LOG_DIR="${CLUSTER_LOG_DIR:-$CLUSTER_DIR-logs}"
NODE_NAME="${NODE_NAME:-node0}"
NODE_INTERFACE=node0
NODE_PEER_INTERFACE=node0-peer
NODE_ADDRESS="${NODE_ADDRESS:-10.250.0.2}"
POD_CIDR="${POD_CIDR:-10.244.0.0/24}"
SERVICE_CIDR="${SERVICE_CIDR:-10.96.0.0/24}"
KUBERNETES_SERVICE_IP="${KUBERNETES_SERVICE_IP:-10.96.0.1}"
CLUSTER_DOMAIN=cluster.local

# Binaries: kube-apiserver, etcd and kubectl from `make envtest`; kubelet,
# kube-proxy, kube-scheduler, kube-controller-manager and CoreDNS from
# `make cluster-binaries`.
ENVTEST_DIR="${ENVTEST_DIR:?ENVTEST_DIR: directory of kube-apiserver, etcd and kubectl}"
NODE_K8S_DIR="${NODE_K8S_DIR:?NODE_K8S_DIR: directory of kubelet, kube-proxy, kube-scheduler and kube-controller-manager}"
COREDNS="${COREDNS:?COREDNS: the CoreDNS binary}"
KUBECTL="$ENVTEST_DIR/kubectl"

PKI_DIR="$CLUSTER_DIR/pki"
ADMIN_KUBECONFIG="$CLUSTER_DIR/admin.kubeconfig"
CONTAINERD_SOCKET="$CLUSTER_DIR/containerd.sock"
PID_DIR="$CLUSTER_DIR/pids"
LOG_DIR="$CLUSTER_DIR/logs"
# Marks when this cluster started: pod network namespaces newer than it are
# the cluster's own.
START_MARKER="$CLUSTER_DIR/started"

log() { printf 'cluster: %s\n' "$*" >&2; }

in_netns() { nsenter --net="/run/netns/$CLUSTER_NETNS" -- "$@"; }

# process_start_time PID prints the start time of the process (field 22 of
# /proc/PID/stat), which tells it apart from a later process given the same
# PID.
process_start_time() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }"
	awk '{ print $20 }' <<<"$stat"
}

# pid_alive PIDFILE succeeds while the process the file recorded still runs.
pid_alive() {
	local pidfile="$1" pid started
	[[ -f "$pidfile" ]] || return 1
	read -r pid started <"$pidfile" || return 1
	[[ -n "$pid" && "$(process_start_time "$pid")" == "$started" ]]
}
