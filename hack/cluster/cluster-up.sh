#!/usr/bin/env bash
# Starts a single-node Kubernetes cluster inside its own network namespace:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, CoreDNS,
# containerd (runc, bridge CNI), kubelet and kube-proxy, all as processes of
# this machine, then imports the given OCI image archives into containerd.
# It never adds an interface, route or firewall rule to the machine's own
# network namespace. Stop it with cluster-down.sh, which removes every
# process, mount, network namespace and cgroup it made.
#
# Usage: cluster-up.sh IMAGE_ARCHIVE...
# (see lib.sh for the settings; `make cluster-up` passes them)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

# PAUSE_IMAGE is the pod sandbox image; one of the archives must hold it.
PAUSE_IMAGE="${PAUSE_IMAGE:?PAUSE_IMAGE: the sandbox image reference}"

install_packages() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v conntrack >/dev/null || missing+=(conntrack)
	command -v openssl >/dev/null || missing+=(openssl)
	[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
	if ((${#missing[@]} == 0)); then
		return
	fi
	log "installing ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# start NAME BINARY ARGS... runs BINARY inside the cluster's network
# namespace, logging to LOG_DIR/NAME.log, and records its PID.
start() {
	local name="$1"
	shift
	nsenter --net="/run/netns/$CLUSTER_NETNS" -- "$@" >"$LOG_DIR/$name.log" 2>&1 &
	local pid=$!
	echo "$pid $(process_start_time "$pid")" >"$PID_DIR/$name.pid"
	echo "$name" >>"$PID_DIR/order"
}

# wait_for WHAT SECONDS COMMAND... retries COMMAND until it succeeds.
wait_for() {
	local what="$1" seconds="$2"
	shift 2
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "$what not ready after ${seconds}s; last attempt:"
			"$@" >&2 || true
			return 1
		fi
		check_processes
		sleep 0.5
	done
}

# check_processes fails, naming the process and showing its log, as soon as
# a started process has exited.
check_processes() {
	local name
	while read -r name; do
		if ! pid_alive "$PID_DIR/$name.pid"; then
			log "$name exited; the end of $LOG_DIR/$name.log:"
			tail -n 30 "$LOG_DIR/$name.log" >&2 || true
			exit 1
		fi
	done <"$PID_DIR/order"
}

kubectl_admin() { in_netns "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# sign NAME SUBJECT EXTENSIONS writes NAME.key and NAME.crt signed by the CA.
sign() {
	local name="$1" subject="$2" extensions="$3"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI_DIR/$name.key" -out "$PKI_DIR/$name.csr" -subj "$subject" 2>/dev/null
	printf '%s\n' "$extensions" >"$PKI_DIR/$name.ext"
	openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
		-CAcreateserial -days 7 -extfile "$PKI_DIR/$name.ext" -out "$PKI_DIR/$name.crt" 2>/dev/null
}

write_pki() {
	mkdir -p "$PKI_DIR"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
		-keyout "$PKI_DIR/ca.key" -out "$PKI_DIR/ca.crt" -subj "/CN=deltapipeline-cluster-ca" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
		"subjectAltName=IP:$KUBERNETES_SERVICE_IP,IP:$NODE_ADDRESS,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost" \
		"extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment")"
	sign kubelet "/CN=$NODE_NAME" "$(printf '%s\n' \
		"subjectAltName=IP:$NODE_ADDRESS,DNS:$NODE_NAME" "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment")"
	# One client identity, cluster-admin through system:masters, for every
	# component and the suite: this cluster tests the operator, not RBAC of
	# the control plane (the operator's own RBAC is exercised in full).
	sign admin "/O=system:masters/CN=cluster-admin" "$(printf '%s\n' \
		"extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment")"
	openssl genrsa -out "$PKI_DIR/service-account.key" 2048 2>/dev/null
	openssl rsa -in "$PKI_DIR/service-account.key" -pubout -out "$PKI_DIR/service-account.pub" 2>/dev/null
	"$KUBECTL" config --kubeconfig "$ADMIN_KUBECONFIG" set-cluster cluster --server "https://$NODE_ADDRESS:6443" \
		--certificate-authority "$PKI_DIR/ca.crt" --embed-certs >/dev/null
	"$KUBECTL" config --kubeconfig "$ADMIN_KUBECONFIG" set-credentials admin \
		--client-certificate "$PKI_DIR/admin.crt" --client-key "$PKI_DIR/admin.key" --embed-certs >/dev/null
	"$KUBECTL" config --kubeconfig "$ADMIN_KUBECONFIG" set-context cluster --cluster cluster --user admin >/dev/null
	"$KUBECTL" config --kubeconfig "$ADMIN_KUBECONFIG" use-context cluster >/dev/null
}

create_netns() {
	ip netns add "$CLUSTER_NETNS"
	# Both ends of the pair are created inside the namespace; the peer stays
	# down, so the node interface has an address and a route but leads
	# nowhere.
	ip -n "$CLUSTER_NETNS" link add "$NODE_INTERFACE" type veth peer name "$NODE_PEER_INTERFACE"
	ip -n "$CLUSTER_NETNS" link set lo up
	ip -n "$CLUSTER_NETNS" addr add "$NODE_ADDRESS/24" dev "$NODE_INTERFACE"
	ip -n "$CLUSTER_NETNS" link set "$NODE_INTERFACE" up
	# Service IPs are rewritten by kube-proxy after routing: they need a route.
	ip -n "$CLUSTER_NETNS" route add default dev "$NODE_INTERFACE"
}

write_containerd_config() {
	mkdir -p "$CLUSTER_DIR/containerd" "$CLUSTER_DIR/cni/net.d" "$CLUSTER_DIR/cni/ipam"
	cat >"$CLUSTER_DIR/containerd/config.toml" <<EOF
version = 2
root = "$CLUSTER_DIR/containerd/root"
state = "$CLUSTER_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCKET"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CLUSTER_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine refuses a negative oom_score_adj; without this every
  # sandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CLUSTER_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
EOF
	cat >"$CLUSTER_DIR/cni/net.d/10-pods.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_node_configs() {
	mkdir -p "$CLUSTER_DIR/kubelet" "$CLUSTER_DIR/pod-logs"
	cat >"$CLUSTER_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 hierarchies only (a cgroup2-only mount is
# impossible here); 1.37 still runs on them when asked.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
address: $NODE_ADDRESS
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $PKI_DIR/kubelet.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: AlwaysAllow}
clusterDNS: [$NODE_ADDRESS]
clusterDomain: $CLUSTER_DOMAIN
# No host resolver: pods resolve through CoreDNS only.
resolvConf: ""
failSwapOn: false
podLogsDir: $CLUSTER_DIR/pod-logs
# The images are imported, never pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
staticPodPath: ""
maxPods: 60
EOF
	cat >"$CLUSTER_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $ADMIN_KUBECONFIG
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Pods reach Services whose endpoints sit on the same bridge: masquerade so
# the replies come back through the node and are un-NATed (no br_netfilter,
# which would change bridges of the whole machine).
iptables:
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
	cat >"$CLUSTER_DIR/Corefile" <<EOF
.:53 {
    bind $NODE_ADDRESS
    errors
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
    # No cache: it would keep the NXDOMAIN of a StatefulSet pod name asked
    # for before the pod was ready.
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $ADMIN_KUBECONFIG
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    loadbalance
}
EOF
}

start_control_plane() {
	start etcd "$ENVTEST_DIR/etcd" --data-dir "$CLUSTER_DIR/etcd" --name cluster \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster cluster=http://127.0.0.1:2380 --unsafe-no-fsync
	start kube-apiserver "$ENVTEST_DIR/kube-apiserver" \
		--etcd-servers http://127.0.0.1:2379 \
		--advertise-address "$NODE_ADDRESS" --bind-address 0.0.0.0 --secure-port 6443 \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--cert-dir "$CLUSTER_DIR/apiserver" \
		--tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
		--client-ca-file "$PKI_DIR/ca.crt" \
		--kubelet-client-certificate "$PKI_DIR/admin.crt" --kubelet-client-key "$PKI_DIR/admin.key" \
		--kubelet-preferred-address-types InternalIP \
		--service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
		--service-account-key-file "$PKI_DIR/service-account.pub" \
		--service-account-signing-key-file "$PKI_DIR/service-account.key" \
		--authorization-mode Node,RBAC \
		--enable-priority-and-fairness=false --profiling=false
	wait_for kube-apiserver 90 kubectl_admin get --raw /readyz

	local kubeconfig_flags=(--kubeconfig "$ADMIN_KUBECONFIG" --authentication-kubeconfig "$ADMIN_KUBECONFIG" --authorization-kubeconfig "$ADMIN_KUBECONFIG")
	start kube-controller-manager "$NODE_K8S_DIR/kube-controller-manager" "${kubeconfig_flags[@]}" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--service-account-private-key-file "$PKI_DIR/service-account.key" \
		--root-ca-file "$PKI_DIR/ca.crt" --use-service-account-credentials \
		--cluster-cidr "$POD_CIDR" --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
	start kube-scheduler "$NODE_K8S_DIR/kube-scheduler" "${kubeconfig_flags[@]}" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false
	start coredns "$COREDNS" -conf "$CLUSTER_DIR/Corefile"
}

start_node() {
	start containerd containerd --config "$CLUSTER_DIR/containerd/config.toml"
	wait_for containerd 30 ctr --address "$CONTAINERD_SOCKET" version
	local archive
	for archive in "$@"; do
		ctr --address "$CONTAINERD_SOCKET" -n k8s.io images import "$archive" >>"$LOG_DIR/images.log"
	done
	start kubelet "$NODE_K8S_DIR/kubelet" --config "$CLUSTER_DIR/kubelet/config.yaml" \
		--kubeconfig "$ADMIN_KUBECONFIG" --root-dir "$CLUSTER_DIR/kubelet" --cert-dir "$CLUSTER_DIR/kubelet/pki" \
		--node-ip "$NODE_ADDRESS" --hostname-override "$NODE_NAME"
	start kube-proxy "$NODE_K8S_DIR/kube-proxy" --config "$CLUSTER_DIR/kube-proxy.yaml"
}

main() {
	if [[ -e "/run/netns/$CLUSTER_NETNS" || -d "$CLUSTER_DIR" ]]; then
		echo "cluster: $CLUSTER_NETNS or $CLUSTER_DIR exists: a cluster is up or was not torn down; run cluster-down.sh first" >&2
		exit 1
	fi
	local began=$SECONDS
	install_packages
	mkdir -p "$CLUSTER_DIR" "$PID_DIR" "$LOG_DIR"
	touch "$START_MARKER" "$PID_DIR/order"
	write_pki
	create_netns
	write_containerd_config
	write_node_configs
	start_control_plane
	start_node "$@"
	wait_for "node $NODE_NAME" 120 kubectl_admin get node "$NODE_NAME"
	kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null
	wait_for coredns 60 in_netns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8181 && printf "GET /ready HTTP/1.0\r\n\r\n" >&3 && grep -q "200 OK" <&3'
	wait_for "default ServiceAccount" 60 kubectl_admin get serviceaccount default -n default
	log "up in $((SECONDS - began))s: node $NODE_NAME Ready; KUBECONFIG=$ADMIN_KUBECONFIG; run commands with nsenter --net=/run/netns/$CLUSTER_NETNS"
}

main "$@"
