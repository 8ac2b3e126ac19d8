#!/bin/bash
# settings.test.sh - --max-value-bytes is the cluster's, not each node's: the first leader's value
# is applied by every replica, and a node started with another value refuses to join (exit 1,
# naming both) rather than apply the same entries differently; with the cluster's value it
# serves. A node whose snapshot holds the cluster's settings refuses at start.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/cluster.sh
trap cluster_cleanup EXIT

MIB=$((1024 * 1024))
cluster_init 3
head -c $((3 * MIB / 2)) /dev/zero | tr '\0' 's' >"$CLUSTER_DIR/1.5m"
OPTS=(--snapshot-bytes=256k)

# exits_with I RC WANT: node I exits within 20 s with status RC and WANT in its log
exits_with() {
	local i=$1 want_rc=$2 want=$3 rc
	for _ in $(seq 1 200); do
		kill -0 "${NODE_PID[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "${NODE_PID[$i]}" 2>/dev/null && fail "node $i still runs: it should have refused"
	wait "${NODE_PID[$i]}"
	rc=$?
	NODE_PID[$i]=""
	[ "$rc" -eq "$want_rc" ] || fail "node $i exited $rc, expected $want_rc"
	grep -q -- "$want" "$CLUSTER_DIR/log$i" || fail "node $i's log lacks '$want'"
	grep -- "$want" "$CLUSTER_DIR/log$i" | tail -n 1 | sed 's/^/  /'
}

step "nodes 1 and 2 at --max-value-bytes=2M make the cluster's settings"
node_start 1 "${OPTS[@]}" --max-value-bytes=2M
node_start 2 "${OPTS[@]}" --max-value-bytes=2M
wait_leader >/dev/null || exit 1
ctl put first ok || fail "put"

step "node 3 at 1M refuses to join, naming both values"
node_start 3 "${OPTS[@]}" --max-value-bytes=1M
exits_with 3 1 "the cluster's --max-value-bytes is 2097152, this node's is 1048576"

step "a 1.5 MiB value (over node 3's 1M) is the cluster's to take"
ctl put big - <"$CLUSTER_DIR/1.5m" || fail "a 1.5 MiB value was refused at 2M"

step "node 3 started with the cluster's value joins and reads it"
: >"$CLUSTER_DIR/log3"
node_start 3 "${OPTS[@]}" --max-value-bytes=2M
for _ in $(seq 1 100); do
	ctl_node 3 get big 2>/dev/null | cmp -s - "$CLUSTER_DIR/1.5m" && break
	sleep 0.2
done
ctl_node 3 get big | cmp -s - "$CLUSTER_DIR/1.5m" || fail "node 3 does not read the value"

step "restarted with 4M over its snapshot, node 2 refuses to start"
for _ in $(seq 1 100); do
	ls "$CLUSTER_DIR/data2"/snapshot-* >/dev/null 2>&1 && break
	ctl put "fill$RANDOM" - <"$CLUSTER_DIR/1.5m" >/dev/null 2>&1
	sleep 0.2
done
ls "$CLUSTER_DIR/data2"/snapshot-* >/dev/null 2>&1 || fail "node 2 took no snapshot"
node_stop 2
: >"$CLUSTER_DIR/log2"
node_start 2 "${OPTS[@]}" --max-value-bytes=4M
exits_with 2 1 "cannot start: refusing to join the cluster: the cluster's --max-value-bytes is 2097152, this node's is 4194304"
node_start 2 "${OPTS[@]}" --max-value-bytes=2M
ctl_node 2 get first | grep -qx ok || fail "node 2 does not serve after the restart"

for i in 1 2 3; do node_stop "$i"; done
echo "settings test passed"
