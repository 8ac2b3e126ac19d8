# cluster.sh - shell helpers for process-level tests: start, kill and query raftfs nodes.
# Sourced by tests/*.test.sh. Every process started here is remembered by PID and stopped by
# cluster_cleanup, which the test installs as an EXIT trap; iptables rules added here carry a
# comment with this run's tag and are removed by the same cleanup.

RAFTFS=${RAFTFS:-fs/raftfs}
RAFTFSCTL=${RAFTFSCTL:-kv/raftfsctl}
# The tests' own clients connect from an address no node uses, so that the iptables rules made
# between node addresses partition only the nodes (127.0.0.1 is also the kernel's default source).
export RAFTFS_BIND=127.0.0.200
CLUSTER_TAG="raftfs-test-$$"
CLUSTER_DIR=""
CLUSTER_LIST=""
CLUSTER_N=0
# TLS: CLUSTER_TLS=1 before cluster_init makes a CA and certificates (scripts/make-certs.sh) in
# $CLUSTER_DIR/certs: nodeI for each node, and the clients "client" and "alice". node_start then
# gives every node its certificate and the CA as both trusted CAs, and the
# tests' clients (ctl, raftfsctl, nemesis_client, bench_kv) present "client" through
# RAFTFS_CACERT, RAFTFS_CERT and RAFTFS_KEY.
CLUSTER_TLS=${CLUSTER_TLS:-0}
# Options node_start gives every node (before its own).
CLUSTER_NODE_OPTS=()
# Nodes listen on $CLUSTER_NET.1 .. $CLUSTER_NET.N. A test that needs no packet filters may pick
# another loopback /24 so that a concurrent partition test (which filters 127.0.0.x) leaves it be.
CLUSTER_NET=${CLUSTER_NET:-127.0.0}
declare -a NODE_PID NODE_ADDR NODE_PORT
# Mountpoints of FUSE mounts made by this test: cluster_cleanup unmounts them.
declare -a CLUSTER_MOUNTS=()
# Steps of a test script: step prints the heading of one; t runs a command that may touch a
# mount under timeout (T seconds: a stuck mount must fail the step, not hang the test).
T=${T:-20}
step() { echo "--- $*"; }
t() { timeout -k 5 "$T" "$@"; }

fail() {
	echo "FAIL: $*" >&2
	for i in $(seq 1 "$CLUSTER_N"); do
		if [ -f "$CLUSTER_DIR/log$i" ]; then
			echo "--- last lines of node $i's log" >&2
			tail -n 15 "$CLUSTER_DIR/log$i" >&2
		fi
	done
	exit 1
}

# cluster_init N: N nodes on 127.0.0.1..N with a random base port (parallel runs do not clash).
cluster_init() { # cluster_init N [BASE]: node i listens on BASE+i (default: a random base)
	CLUSTER_N=$1
	CLUSTER_DIR=$(mktemp -d /tmp/raftfs-test.XXXXXX)
	local base=${2:-$((20000 + RANDOM % 20000))}
	CLUSTER_LIST=""
	for i in $(seq 1 "$CLUSTER_N"); do
		NODE_ADDR[$i]="$CLUSTER_NET.$i"
		NODE_PORT[$i]=$((base + i))
		CLUSTER_LIST="${CLUSTER_LIST:+$CLUSTER_LIST,}$i=$CLUSTER_NET.$i:${NODE_PORT[$i]}"
	done
	[ "$CLUSTER_TLS" = 1 ] && cluster_tls_certs "$CLUSTER_DIR/certs"
	return 0
}

# cluster_tls_certs DIR: certificates for every node and the clients "client" and "alice" in DIR
# (the CA there is reused), and the clients' environment pointing at DIR.
cluster_tls_certs() {
	local dir=$1 items=() i
	for i in $(seq 1 "$CLUSTER_N"); do
		items+=("$i=${NODE_ADDR[$i]}")
	done
	scripts/make-certs.sh "$dir" "${items[@]}" client=client client=alice >/dev/null ||
		fail "make-certs.sh failed"
	export RAFTFS_CACERT=$dir/ca.pem RAFTFS_CERT=$dir/client.pem RAFTFS_KEY=$dir/client.key
}

# The TLS options of node I (nothing without CLUSTER_TLS=1).
node_tls_opts() {
	local c=$CLUSTER_DIR/certs
	[ "$CLUSTER_TLS" = 1 ] || return 0
	echo "--cert-file=$c/node$1.pem --key-file=$c/node$1.key --peer-trusted-ca-file=$c/ca.pem" \
		"--trusted-ca-file=$c/ca.pem"
}

# node_start I [extra raftfs options... and a MOUNTPOINT, registered with cluster_mount_add]
node_start() {
	local i=$1
	shift
	# shellcheck disable=SC2046
	"$RAFTFS" --id="$i" --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data$i" -f \
		--tick-ms=20 $(node_tls_opts "$i") "${CLUSTER_NODE_OPTS[@]}" "$@" \
		>>"$CLUSTER_DIR/log$i" 2>&1 &
	NODE_PID[$i]=$!
}

node_kill9() {
	local i=$1
	if [ -n "${NODE_PID[$i]:-}" ]; then
		kill -9 "${NODE_PID[$i]}" 2>/dev/null
		wait "${NODE_PID[$i]}" 2>/dev/null
		NODE_PID[$i]=""
	fi
}

# node_stop I: SIGTERM, and the node must exit 0 within 10 s.
node_stop() {
	local i=$1 rc
	[ -n "${NODE_PID[$i]:-}" ] || return 0
	kill -TERM "${NODE_PID[$i]}" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "${NODE_PID[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
		node_kill9 "$i"
		fail "node $i did not exit within 10 s of SIGTERM"
	fi
	wait "${NODE_PID[$i]}"
	rc=$?
	NODE_PID[$i]=""
	[ "$rc" -eq 0 ] || fail "node $i exited $rc after SIGTERM"
}

ctl() {
	timeout 30 "$RAFTFSCTL" --cluster="$CLUSTER_LIST" "$@"
}

# ctl_node I ...: a clerk that knows only node I (to read from that node).
ctl_node() {
	local i=$1
	shift
	timeout 30 "$RAFTFSCTL" --cluster="$i=${NODE_ADDR[$i]}:${NODE_PORT[$i]}" "$@"
}

# Prints the id of the node that says it is leader, or nothing.
cluster_leader() {
	ctl status 2>/dev/null | awk '$3 == "leader" { print $1; exit }'
}

wait_leader() {
	for _ in $(seq 1 150); do
		local l
		l=$(cluster_leader)
		if [ -n "$l" ]; then
			echo "$l"
			return 0
		fi
		sleep 0.2
	done
	fail "no leader within 30 s"
}

# iptables: drop the packets of node A's connections to node B's cluster port and back (peers
# dial each other from their own addresses), tagged; nothing else on those addresses is touched.
partition_pair() {
	local a=$1 b=$2
	iptables -w -I INPUT -p tcp -s "127.0.0.$a" -d "127.0.0.$b" --dport "${NODE_PORT[$b]}" \
		-m comment --comment "$CLUSTER_TAG" -j DROP
	iptables -w -I INPUT -p tcp -s "127.0.0.$b" -d "127.0.0.$a" --dport "${NODE_PORT[$a]}" \
		-m comment --comment "$CLUSTER_TAG" -j DROP
}

# partition_oneway A B: node A can no longer send to node B (it drops A's connection to B's
# cluster port, the one A sends on: raft/transport.h), while B still reaches A; tagged.
partition_oneway() {
	local a=$1 b=$2
	iptables -w -I INPUT -p tcp -s "127.0.0.$a" -d "127.0.0.$b" --dport "${NODE_PORT[$b]}" \
		-m comment --comment "$CLUSTER_TAG" -j DROP
}

heal_all() {
	local rules
	rules=$(iptables -w -S INPUT 2>/dev/null | grep -- "--comment $CLUSTER_TAG" || true)
	while read -r rule; do
		[ -n "$rule" ] || continue
		# shellcheck disable=SC2086
		iptables -w ${rule/-A /-D } 2>/dev/null
	done <<<"$rules"
}

# cluster_mount_add DIR: a mountpoint cluster_cleanup must leave unmounted.
cluster_mount_add() {
	CLUSTER_MOUNTS+=("$1")
}

# mount_node I [raftfs options...]: node I with its mount on $CLUSTER_DIR/mntI, kept in M[I]
# (-o auto_unmount; more -o options may follow). Restarts are immediate, as a user's would be:
# the daemon itself waits for the auto_unmount helper of a previous node on the mountpoint.
declare -a M
mount_node() {
	local i=$1
	shift
	M[$i]="$CLUSTER_DIR/mnt$i"
	mkdir -p "${M[$i]}"
	cluster_mount_add "${M[$i]}"
	node_start "$i" -o auto_unmount "$@" "${M[$i]}"
}

# wait_mounted I: until node I's mount answers, and node I still runs (a dead node's mountpoint
# is a plain directory that looks mounted to nobody but answers too).
wait_mounted() {
	wait_mount "${M[$1]}" || fail "node $1 did not mount ${M[$1]}"
	kill -0 "${NODE_PID[$1]}" 2>/dev/null || fail "node $1 is not running"
}

# The FUSE connection number (/sys/fs/fuse/connections/N) of the mount on DIR, without touching
# the mount itself (a stat of a hung mount would hang).
fuse_conn_of() {
	awk -v d="$(realpath -s -m "$1")" '$5 == d && $0 ~ / - fuse/ { split($3, a, ":"); print a[2] }' \
		/proc/self/mountinfo | tail -n 1
}

# wait_mount DIR: until a FUSE mount on DIR answers (at most 20 s); 1 if it never does.
wait_mount() {
	for _ in $(seq 1 100); do
		grep -qs " $1 fuse" /proc/self/mounts && timeout 5 stat "$1/." >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# mount_abort DIR: aborts the FUSE connection of the mount on DIR (its waiting requests fail
# with ECONNABORTED), without touching the mount itself.
mount_abort() {
	local c
	c=$(fuse_conn_of "$1")
	if [ -n "$c" ] && [ -w "/sys/fs/fuse/connections/$c/abort" ]; then
		echo 1 >"/sys/fs/fuse/connections/$c/abort"
	fi
	return 0
}

# mount_release DIR: fusermount3 -u, then -u -z; a connection still there is aborted.
mount_release() {
	local d=$1 c
	grep -qs " $(realpath -s -m "$d") " /proc/self/mounts || return 0
	timeout 10 fusermount3 -u "$d" 2>/dev/null || timeout 10 fusermount3 -u -z "$d" 2>/dev/null
	c=$(fuse_conn_of "$d")
	if [ -n "$c" ] && [ -w "/sys/fs/fuse/connections/$c/abort" ]; then
		echo 1 >"/sys/fs/fuse/connections/$c/abort"
		timeout 10 fusermount3 -u -z "$d" 2>/dev/null
	fi
	return 0
}

# mount_unguard DIR: a mountpoint no node is mounted on any more becomes a plain directory again
# (raftfs keeps it immutable while it is bare: fs/mountpoint.h), so that it can be removed.
mount_unguard() {
	local d=$1
	grep -qs " $(realpath -s -m "$d") " /proc/self/mounts && return 0
	[ -d "$d" ] && "$RAFTFS" --unguard "$d" 2>/dev/null
	return 0
}

cluster_cleanup() {
	local rc=$?
	heal_all
	for i in $(seq 1 "$CLUSTER_N"); do
		node_kill9 "$i"
	done
	for d in "${CLUSTER_MOUNTS[@]}"; do
		mount_release "$d"
		mount_unguard "$d"
	done
	if [ "$rc" -eq 0 ] && [ -n "$CLUSTER_DIR" ]; then
		rm -rf "$CLUSTER_DIR"
	elif [ -n "$CLUSTER_DIR" ]; then
		echo "logs and data kept in $CLUSTER_DIR" >&2
	fi
	exit "$rc"
}
