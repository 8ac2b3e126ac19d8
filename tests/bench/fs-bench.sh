#!/bin/bash
# fs-bench.sh - small-file operations through the FUSE mounts of a 3-node cluster (issue 5),
# beside the same workloads on a local directory of the same filesystem and through the clerk
# (the raftfsctl path), all in one run: create+write+close of 256-byte files, >> appends and
# cat, with 1 and 16 threads (tests/bench/bench_fs), then a shell loop of `echo v > f` through a
# mount against the same count of `raftfsctl put`. Prints figures, asserts nothing about time.
#
# Usage: tests/bench/fs-bench.sh      (from a built tree: make check-build)
# Environment: OPS1 (ops of the 1-thread runs, 2000), OPS16 (ops per thread of the 16-thread
# runs, 500), LOOP (iterations of the shell loops, 300), CLUSTER_NET (127.0.0: nodes on
# 127.0.0.1-3).
# Every process started here is stopped and every mount released on any exit (EXIT trap of
# tests/lib/cluster.sh); every step that touches a mount runs under timeout.
set -u
cd "$(dirname "$0")/../.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "fs-bench.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
for p in fs/raftfs kv/raftfsctl tests/bench/bench_fs; do
	[ -x "$p" ] || { echo "fs-bench.sh: $p is not built (make check-build)" >&2; exit 1; }
done
OPS1=${OPS1:-2000}
OPS16=${OPS16:-500}
LOOP=${LOOP:-300}
BENCH=tests/bench/bench_fs

. tests/lib/cluster.sh
# Unmount first while the nodes still run (a clean unmount also stops a node, and a killed
# node's mount would answer ENOTCONN to cluster_cleanup's realpath), then cluster_cleanup kills
# whatever of ours is left and releases what is still mounted.
bench_cleanup() {
	local rc=$? d
	if [ -n "${STEP_PID:-}" ]; then # the measurement under way (timeout passes TERM on)
		kill -TERM "$STEP_PID" 2>/dev/null
		wait "$STEP_PID" 2>/dev/null
	fi
	for d in "${CLUSTER_MOUNTS[@]}"; do
		grep -qs " $d fuse" /proc/self/mounts && timeout 10 fusermount3 -u "$d" 2>/dev/null
	done
	(exit "$rc")
	cluster_cleanup
}
trap bench_cleanup EXIT
trap 'exit 1' INT TERM # the EXIT trap then cleans up

T=120 # seconds any one measurement may take
t() { timeout -k 5 "$T" "$@"; }
# step CMD...: t CMD in the background, waited for, so that INT/TERM reach our trap at once
# (bash defers a trap while a foreground child runs); bench_cleanup stops it.
STEP_PID=""
step() {
	local rc
	timeout -k 5 "$T" "$@" &
	STEP_PID=$!
	wait "$STEP_PID"
	rc=$?
	STEP_PID=""
	return "$rc"
}

cluster_init 3
M=()
for i in 1 2 3; do
	M[$i]="$CLUSTER_DIR/mnt$i"
	mkdir -p "${M[$i]}"
	cluster_mount_add "${M[$i]}"
	node_start "$i" -o auto_unmount --timeout=10 "${M[$i]}"
done
for i in 1 2 3; do
	wait_mount "${M[$i]}" || fail "node $i did not mount ${M[$i]}"
done
wait_leader >/dev/null
# Leave the first elections and connections behind before measuring.
t sh -c "echo warm > ${M[1]}/warmup && cat ${M[2]}/warmup ${M[3]}/warmup" >/dev/null ||
	fail "warm-up through the mounts"

LOCAL=$(mktemp -d "$CLUSTER_DIR/local.XXXXXX") # the filesystem of the nodes' data directories
MOUNTS="${M[1]},${M[2]},${M[3]}"

echo "== machine"
echo "nproc: $(nproc)   kernel: $(uname -r)   cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "data directories and local directory: $CLUSTER_DIR"
df -T "$CLUSTER_DIR" | awk 'NR == 2 { print "filesystem: " $1 " " $2 " mounted on " $7 }'
if [ -x tests/bench/bench_wal ]; then
	mkdir -p "$CLUSTER_DIR/wal"
	timeout 30 tests/bench/bench_wal --dir="$CLUSTER_DIR/wal" --seconds=0.5 2>/dev/null |
		grep -m1 fdatasync
fi
echo "cluster: $CLUSTER_LIST (tick 20 ms, mounts -o auto_unmount --timeout=10)"
echo "leader: node $(cluster_leader); clients connect from RAFTFS_BIND=$RAFTFS_BIND"
echo

RESULTS="$CLUSTER_DIR/results"
: >"$RESULTS"
run() { # run LABEL THREADS OPS_PER_THREAD WORKLOAD TARGET-OPTION
	local label=$1 threads=$2 ops=$3 w=$4 target=$5
	step "$BENCH" "$target" --threads="$threads" --ops="$ops" --workload="$w" \
		--label="$label" >>"$RESULTS" ||
		echo "$label $w $threads: bench_fs failed (rc $?)" >&2
}
echo "== bench_fs (per-op latency in ms; one line per run)"
for threads in 1 16; do
	if [ "$threads" -eq 1 ]; then ops=$OPS1; else ops=$OPS16; fi
	for w in create append cat; do
		run raftfs-mounts "$threads" "$ops" "$w" --dirs="$MOUNTS"
		run local-ext4 "$threads" "$ops" "$w" --dirs="$LOCAL"
		run clerk "$threads" "$ops" "$w" --clerk="$CLUSTER_LIST"
	done
done
printf "%-14s %-8s %7s %7s %9s %8s %8s %8s %6s\n" LABEL WORKLOAD THREADS OPS OPS/S P50_MS \
	P99_MS MAX_MS ERRORS
cat "$RESULTS"
echo

echo "== shell loops, $LOOP iterations each"
loop_rate() { # loop_rate NAME COMMAND...: runs COMMAND (a bash loop) and prints ops/s
	local name=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	if ! step "$@"; then
		echo "$name: failed" >&2
		return
	fi
	t1=$(date +%s.%N)
	awk -v n="$LOOP" -v a="$t0" -v b="$t1" -v name="$name" \
		'BEGIN { printf "%-44s %8.0f ops/s  %7.3f ms/op\n", name, n / (b - a), (b - a) * 1000 / n }'
}
loop_rate "echo v > f (bash builtin) via mount 1" bash -c \
	"for k in \$(seq 1 $LOOP); do echo v > '${M[1]}/loop-echo-'\$k || exit 1; done"
loop_rate "echo v > f (bash builtin) on local dir" bash -c \
	"for k in \$(seq 1 $LOOP); do echo v > '$LOCAL/loop-echo-'\$k || exit 1; done"
loop_rate "raftfsctl put k v" bash -c \
	"for k in \$(seq 1 $LOOP); do '$RAFTFSCTL' --cluster='$CLUSTER_LIST' put loop-ctl-\$k v >/dev/null || exit 1; done"
loop_rate "/bin/echo v > f (a process each) via mount 1" bash -c \
	"for k in \$(seq 1 $LOOP); do /bin/echo v > '${M[1]}/loop-bin-'\$k || exit 1; done"
[ "$(t cat "${M[2]}/loop-echo-$LOOP")" = v ] || fail "the last echo is not seen on mount 2"
[ "$(ctl get "loop-ctl-$LOOP")" = v ] || fail "the last put is not seen"
