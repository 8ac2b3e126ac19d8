#!/bin/bash
# ab-builds.sh - two (or more) builds of raftfs measured back to back, alternating, so that a
# change to the hot path is judged against the same machine in the same minutes: for each round
# and each build, a fresh 3-node cluster on loopback (no mounts, default options but a 20 ms
# tick) and the same tests/bench/bench_kv runs. Prints one line per run; asserts nothing.
#
# Usage: tests/bench/ab-builds.sh BINARY_A BINARY_B ...   (fs/raftfs of each build)
# Environment:
#   AB_ROUNDS   rounds (2)
#   AB_SPECS    runs per cluster, OP:CLIENTS:CONNS:TOTAL[:SETUP] each, space-separated
#               ("put:1:1:4000 put:16:16:20000 put:1000:100:100000"). SETUP=fill makes the
#               run start after 180,000 appends from 1000 clients, so that every node takes a
#               snapshot inside the measured window (the snapshot-stall case). An OP of
#               fs-put, fs-append or fs-get-l runs through the nodes' mounts (bench_kv
#               --mounts, CONNS ignored): the clusters are then started with a mount per node.
#   AB_PORT_BASE  nodes on ports BASE+1..3 (45300)
# The nodes' logs of a run are kept only when it fails; "snapshot child ... after N ms" lines
# are summarised per node when there are any.
set -u
cd "$(dirname "$0")/../.." || exit 1
[ $# -ge 1 ] || {
	echo "usage: tests/bench/ab-builds.sh BINARY_A [BINARY_B ...]" >&2
	exit 2
}
for b in "$@"; do
	[ -x "$b" ] || {
		echo "ab-builds.sh: $b is not an executable" >&2
		exit 2
	}
done
[ -x tests/bench/bench_kv ] || {
	echo "ab-builds.sh: tests/bench/bench_kv is not built (make -j2 check-build)" >&2
	exit 2
}
ROUNDS=${AB_ROUNDS:-2}
SPECS=${AB_SPECS:-put:1:1:4000 put:16:16:20000 put:1000:100:100000}
PORT_BASE=${AB_PORT_BASE:-45300}
MOUNTS=0
case " $SPECS" in *" fs-"*) MOUNTS=1 ;; esac

. tests/lib/cluster.sh
trap cluster_cleanup EXIT
trap 'exit 1' INT TERM

one_build() { # one_build BINARY: a fresh cluster, every spec, then the cluster stopped
	local bin=$1 spec op c k n setup line pids target
	RAFTFS=$bin
	cluster_init 3 "$PORT_BASE"
	CLUSTER_MOUNTS=()
	for i in 1 2 3; do
		if [ "$MOUNTS" = 1 ]; then mount_node "$i"; else node_start "$i"; fi
	done
	if [ "$MOUNTS" = 1 ]; then for i in 1 2 3; do wait_mounted "$i"; done; fi
	wait_leader >/dev/null
	pids="${NODE_PID[1]},${NODE_PID[2]},${NODE_PID[3]}"
	for spec in $SPECS; do
		IFS=: read -r op c k n setup <<<"$spec"
		if [ "${setup:-}" = fill ]; then
			timeout 300 tests/bench/bench_kv --cluster="$CLUSTER_LIST" --op=append \
				--clients=1000 --conns=100 --total=180000 --key-prefix=fill- >/dev/null ||
				fail "the fill before $spec failed"
		fi
		case $op in
		fs-*) target=(--mounts="${M[1]},${M[2]},${M[3]}" --op="${op#fs-}") ;;
		*) target=(--cluster="$CLUSTER_LIST" --op="$op" --conns="$k") ;;
		esac
		line=$(timeout 900 tests/bench/bench_kv "${target[@]}" --clients="$c" --total="$n" \
			--pids="$pids" --key-prefix="$op$c-") || fail "bench_kv $spec failed with $bin"
		echo "  $bin $(echo "$line" | sed 's/ key=[0-9]* val=[0-9]*//')"
	done
	for i in 1 2 3; do
		line=$(grep -o 'image written after [0-9]* ms' "$CLUSTER_DIR/log$i" | awk '{ print $4 }' |
			tr '\n' ' ')
		[ -z "$line" ] || echo "    node $i snapshot children (ms): $line"
		node_kill9 "$i"
	done
	for d in "${CLUSTER_MOUNTS[@]}"; do
		mount_release "$d"
		mount_unguard "$d"
	done
	rm -rf "$CLUSTER_DIR"
	CLUSTER_DIR=""
}

for r in $(seq 1 "$ROUNDS"); do
	echo "== round $r"
	for b in "$@"; do
		one_build "$b"
	done
done
