#!/bin/bash
# loop-stalls.sh - how long each node's event loop runs without returning to epoll (issue 15,
# item 11): one node must never stall its peers, clients and mount for long. A 3-node cluster is
# loaded with KEYS keys (1,000,000) by bench_kv while strace times every epoll_wait of the leader
# and of one follower; then that follower is stopped, more is written (so that it must catch up
# by snapshot), and it is restarted under strace. For each phase it prints the longest gaps
# between an epoll_wait's return and the next call (the loop turn's work), the 99.9th percentile
# and the count of turns over 1 ms.
#   KEYS=N (1000000), VAL=BYTES (64), TOP=N (5), LOOP_STALLS_KEEP=1 keeps the traces.
set -u
cd "$(dirname "$0")/../.." || exit 1
for p in fs/raftfs tests/bench/bench_kv; do
	[ -x "$p" ] || { echo "loop-stalls.sh: $p is not built (make check-build)" >&2; exit 1; }
done
command -v strace >/dev/null || { echo "loop-stalls.sh: needs strace" >&2; exit 1; }
KEYS=${KEYS:-1000000}
VAL=${VAL:-64}
TOP=${TOP:-5}
CLUSTER_NET=${CLUSTER_NET:-127.7.$((100 + $$ % 100))}
. tests/lib/cluster.sh
TRACERS=()
ls_cleanup() {
	local rc=$?
	for p in "${TRACERS[@]}"; do kill "$p" 2>/dev/null; done
	(exit "$rc")
	cluster_cleanup
}
trap ls_cleanup EXIT
trap 'exit 1' INT TERM

# trace I NAME: strace the epoll_waits of node I into $CLUSTER_DIR/NAME.trace
trace() {
	strace -p "${NODE_PID[$1]}" -e trace=epoll_wait -ttt -T -o "$CLUSTER_DIR/$2.trace" \
		2>/dev/null &
	TRACERS+=($!)
	sleep 0.5
}
stop_traces() {
	for p in "${TRACERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	TRACERS=()
}
# report NAME: the loop turns of one trace
report() {
	local gaps=$CLUSTER_DIR/$1.gaps n over p999 longest
	awk '/epoll_wait\(/ && / <[0-9.]+>$/ {
		t = $1; d = $NF; gsub(/[<>]/, "", d)
		if (have) printf "%.3f\n", (t - ret) * 1000
		ret = t + d; have = 1
	}' "$CLUSTER_DIR/$1.trace" | sort -n >"$gaps"
	n=$(wc -l <"$gaps")
	if [ "$n" -eq 0 ]; then echo "$1: no trace"; return; fi
	over=$(awk '$1 > 1' "$gaps" | wc -l)
	p999=$(sed -n "$((n * 999 / 1000 > 0 ? n * 999 / 1000 : 1))p" "$gaps")
	longest=$(tail -n "$TOP" "$gaps" | sort -rn | tr '\n' ' ')
	echo "$1: $n turns, $over over 1 ms, p99.9 $p999 ms, longest: $longest(ms)"
}

cluster_init 3
for i in 1 2 3; do node_start "$i" --snapshot-bytes=64M; done
leader=$(wait_leader)
f=$((leader % 3 + 1))
echo "loop-stalls: leader $leader, follower $f, $KEYS keys of $VAL bytes, directory $CLUSTER_DIR"
trace "$leader" load-leader
trace "$f" load-follower
tests/bench/bench_kv --cluster="$CLUSTER_LIST" --op=put --clients=64 --conns=4 \
	--total="$KEYS" --val-size="$VAL" --key-prefix=k || fail "the load failed"
stop_traces
report load-leader
report load-follower

node_stop "$f"
tests/bench/bench_kv --cluster="$CLUSTER_LIST" --op=put --clients=64 --conns=4 \
	--total=$((KEYS / 2)) --val-size="$VAL" --key-prefix=more >/dev/null || fail "second load"
node_start "$f" --snapshot-bytes=64M
sleep 0.2
trace "$f" catchup-follower
trace "$leader" catchup-leader
for _ in $(seq 1 600); do
	ctl_node "$f" get more$((KEYS / 2 - 1)) >/dev/null 2>&1 && break
	sleep 0.5
done
sleep 1
stop_traces
grep -h "snapshot" "$CLUSTER_DIR/log$f" | tail -n 3
report catchup-follower
report catchup-leader
if [ "${LOOP_STALLS_KEEP:-0}" = 1 ]; then
	trap - EXIT
	for i in 1 2 3; do node_kill9 "$i"; done
	echo "traces kept in $CLUSTER_DIR"
fi
