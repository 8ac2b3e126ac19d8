#!/bin/bash
# mem-restart.sh - issue 7's memory and restart targets on a 3-node cluster loaded with
# 1,000,000 keys of 256-byte values through tests/bench/bench_kv:
#   - resident memory per node (VmRSS now, VmHWM peak) beside the raw bytes (keys + values):
#     nodes 1 and 2 over the load, node 3 over its catch-up;
#   - a follower that missed everything (down during the whole load) catching up: the time from
#     its start until it has applied the leader's commit index (it needs the snapshot: the log
#     it missed was compacted);
#   - restart to serving: one node stopped (SIGTERM) and started again, the time until it
#     answers a linearizable get itself; then the whole cluster stopped and started again, the
#     time until a get through any node answers.
# Prints figures and the targets (RSS <= 2x raw, restart <= 5 s, catch-up <= 30 s), each met
# or MISSED; asserts nothing (exit 0 when everything ran).
#
# Usage: tests/bench/mem-restart.sh   (from a built tree: make -j2 check-build)
# Environment: MEM_KEYS (1000000), MEM_VAL (256), MEM_CLIENTS (64, over 10 connections),
# MEM_PORT_BASE (45200: nodes on ports BASE+1..3 of 127.0.0.1-3).
# Every node started here is stopped by PID on any exit (tests/lib/cluster.sh's cleanup).
set -u
cd "$(dirname "$0")/../.." || exit 1
for p in fs/raftfs kv/raftfsctl tests/bench/bench_kv; do
	[ -x "$p" ] || {
		echo "mem-restart.sh: $p is not built (make -j2 check-build)" >&2
		exit 1
	}
done
KEYS=${MEM_KEYS:-1000000}
VAL=${MEM_VAL:-256}
CLIENTS=${MEM_CLIENTS:-64}
PORT_BASE=${MEM_PORT_BASE:-45200}
KEY_BYTES=8
BENCH_KV=tests/bench/bench_kv

. tests/lib/cluster.sh
mr_cleanup() {
	local rc=$?
	if [ -n "${STEP_PID:-}" ]; then
		kill -TERM "$STEP_PID" 2>/dev/null
		wait "$STEP_PID" 2>/dev/null
	fi
	(exit "$rc")
	cluster_cleanup
}
trap mr_cleanup EXIT
trap 'exit 1' INT TERM

STEP_PID=""
step() { # step SECONDS CMD...: in the background, waited for, so that INT/TERM reach the trap
	local rc t=$1
	shift
	timeout -k 5 "$t" "$@" &
	STEP_PID=$!
	wait "$STEP_PID"
	rc=$?
	STEP_PID=""
	return "$rc"
}

now() {
	date +%s.%N
}
since() { # seconds since $1, 2 decimals
	awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}
rss_mb() { # rss_mb PID FIELD (VmRSS or VmHWM)
	awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}
# The node's own row of `raftfsctl status`: ID ADDRESS ROLE TERM COMMIT APPLIED LEADER LOG SNAP
status_field() { # status_field NODE COLUMN
	ctl_node "$1" --timeout=2 status 2>/dev/null | awk -v id="$1" -v c="$2" '$1 == id { print $c }'
}
mr_start() { # mr_start I: the node with the default options, no mount
	local i=$1
	"$RAFTFS" --id="$i" --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data$i" -f \
		>>"$CLUSTER_DIR/log$i" 2>&1 &
	NODE_PID[$i]=$!
}
# serves_get I: node I answers a linearizable get of the first key with the full value
serves_get() {
	local v
	v=$(timeout 3 "$RAFTFSCTL" --cluster="$1=${NODE_ADDR[$1]}:${NODE_PORT[$1]}" --timeout=1 \
		get "$FIRST_KEY" 2>/dev/null) || return 1
	[ "${#v}" -eq "$VAL" ]
}

cluster_init 3 "$PORT_BASE"
FIRST_KEY=$(printf "%0${KEY_BYTES}d" 0)
for i in 1 2 3; do
	mr_start "$i"
done
wait_leader >/dev/null
# Node 3 misses everything: it stops before the load and starts again after it.
node_stop 3
wait_leader >/dev/null

echo "== machine"
echo "nproc: $(nproc)   memory: $(free -g | awk '/^Mem:/ { print $2 " GiB" }')   kernel: $(uname -r)"
df -T "$CLUSTER_DIR" | awk 'NR == 2 { print "data directories on: " $1 " " $2 " mounted on " $7 }'
echo "cluster: $CLUSTER_LIST (default options: --snapshot-bytes 64M, --snapshot-trailing 1024)"
echo

echo "== load: $KEYS keys of $VAL bytes, $CLIENTS clients (node 3 down)"
step 3600 "$BENCH_KV" --cluster="$CLUSTER_LIST" --op=put --conns=10 --clients="$CLIENTS" \
	--total="$KEYS" --val-size="$VAL" --key-size="$KEY_BYTES" \
	--pids="${NODE_PID[1]},${NODE_PID[2]}" | tee "$CLUSTER_DIR/load.txt" ||
	fail "the load failed"
grep -q ' errors=0 ' "$CLUSTER_DIR/load.txt" || fail "the load had errors"
RAW_MB=$(awk -v n="$KEYS" -v v="$VAL" -v k="$KEY_BYTES" 'BEGIN { printf "%.1f", n * (v + k) / 1048576 }')
echo "raw bytes (keys + values): $RAW_MB MiB"
HWM=()
for i in 1 2; do
	HWM[$i]=$(rss_mb "${NODE_PID[$i]}" VmHWM)
	echo "node $i: VmRSS $(rss_mb "${NODE_PID[$i]}" VmRSS) MiB, VmHWM ${HWM[$i]} MiB, data $(du -sm "$CLUSTER_DIR/data$i" | cut -f1) MiB"
done
echo

echo "== a follower that missed everything catches up (node 3)"
leader=$(wait_leader)
target=$(status_field "$leader" 5)
[ -n "$target" ] || fail "no commit index from node $leader"
t0=$(now)
mr_start 3
caught=""
for _ in $(seq 1 600); do
	applied=$(status_field 3 6)
	case $applied in
	'' | *[!0-9]*) applied=0 ;;
	esac
	if [ "$applied" -ge "$target" ]; then
		caught=$(since "$t0")
		break
	fi
	sleep 0.1
done
[ -n "$caught" ] || fail "node 3 did not reach index $target within 60 s"
echo "node 3 applied index $target in $caught s (snapshot index now $(status_field 3 9))"
HWM[3]=$(rss_mb "${NODE_PID[3]}" VmHWM)
echo "node 3: VmRSS $(rss_mb "${NODE_PID[3]}" VmRSS) MiB, VmHWM ${HWM[3]} MiB"
echo

echo "== restart to serving"
follower=1
[ "$leader" = 1 ] && follower=2
node_stop "$follower"
t0=$(now)
mr_start "$follower"
one=""
for _ in $(seq 1 600); do
	if serves_get "$follower"; then
		one=$(since "$t0")
		break
	fi
	sleep 0.05
done
[ -n "$one" ] || fail "node $follower did not serve within 30 s of its start"
echo "node $follower (a follower) restarted: serves a linearizable get after $one s"
echo "node $follower after its restart: VmRSS $(rss_mb "${NODE_PID[$follower]}" VmRSS) MiB, VmHWM $(rss_mb "${NODE_PID[$follower]}" VmHWM) MiB"
for i in 1 2 3; do
	node_stop "$i"
done
t0=$(now)
for i in 1 2 3; do
	mr_start "$i"
done
all=""
for _ in $(seq 1 600); do
	for i in 1 2 3; do
		if serves_get "$i"; then
			all=$(since "$t0")
			break 2
		fi
	done
	sleep 0.05
done
[ -n "$all" ] || fail "the restarted cluster did not serve within 30 s"
echo "whole cluster restarted: a linearizable get answers after $all s"
echo "after the restart: $(for i in 1 2 3; do printf 'node %s VmRSS %s MiB  ' "$i" "$(rss_mb "${NODE_PID[$i]}" VmRSS)"; done)"
echo

echo "== targets of issue 7"
for i in 1 2 3; do
	what="during the load"
	[ "$i" = 3 ] && what="catching up by snapshot"
	awk -v i="$i" -v w="$what" -v r="${HWM[$i]}" -v raw="$RAW_MB" 'BEGIN {
		printf "  node %s peak RSS %s %.1f MiB = %.2fx the raw %.1f MiB (<= 2x): %s\n",
			i, w, r, r / raw, raw, r <= 2 * raw ? "met" : "MISSED" }'
done
awk -v a="$one" -v b="$all" 'BEGIN {
	printf "  restart to serving <= 5 s: one node %.2f s: %s; whole cluster %.2f s: %s\n", a,
		a <= 5 ? "met" : "MISSED", b, b <= 5 ? "met" : "MISSED" }'
awk -v c="$caught" 'BEGIN {
	printf "  follower catch-up by snapshot <= 30 s: %.2f s: %s\n", c, c <= 30 ? "met" : "MISSED" }'
