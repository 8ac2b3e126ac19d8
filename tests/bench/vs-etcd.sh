#!/bin/bash
# vs-etcd.sh - raftfs beside etcd 3.4 on this machine, in one run, as ratios (issue 7).
#
# Builds the etcd side with ../shared/bench-etcd (build.sh installs Debian's etcd and builds its
# load generator), starts 3 etcd members with its cluster.sh (client ports 3237x) and 3 raftfs
# nodes on 127.0.0.1-3 (ports VS_ETCD_PORT_BASE+1..3), each node mounting the namespace. Both
# systems run with their default durability: every write is fdatasync'ed before it is
# acknowledged. Then, round after round, for each client count and workload it runs etcd's
# generator and tests/bench/bench_kv with the same clients, connections, value size (256 B) and
# operation count; which system goes first alternates from round to round. The workloads:
#
#   put        raftfs put (sequential keys)                     beside etcd put
#   append     raftfs append to the same keys                   beside etcd put (no append there)
#   get-l      raftfs linearizable get of one hot key           beside etcd get-l
#   mix        raftfs 90% get-l / 10% put                       (not in etcd's generator)
#   fs-put     open(O_TRUNC)+write+close through the 3 mounts   beside etcd put
#   fs-append  open(O_APPEND)+write+close through the 3 mounts  beside etcd put
#   fs-get-l   open+read+close of the hot key through the mounts  beside etcd get-l
#
# Clients 1, 16, 64 and 1000 over 1, 10, 10 and 100 connections (as bench-etcd's README does).
# The fs workloads run fewer operations (they are slower); the ratio compares throughputs. It
# then prints a table of the medians over the rounds with the ratios raftfs/etcd, beside the
# floors measured in the same run (bench_kv --floor in the filesystem of the data directories,
# at the start, between the rounds and at the end: fdatasync, loopback TCP round trip, and a
# write replicated by three threads with a log each, the least a 3-node put costs on this
# machine), the servers' CPU time per operation (/proc/PID/stat over the run; for etcd over its
# generator's whole process) and peak resident memory, then shell loops of `echo v > MNT/k$i`
# and `echo v > MNT/f` beside the same loops of `etcdctl put` (in rounds, alternating), and the
# issue's targets, each marked met or MISSED. It asserts nothing (exit 0 when everything ran).
#
# Usage: tests/bench/vs-etcd.sh        (as root, from a built tree: make -j2 check-build)
# Environment:
#   VS_ETCD_QUICK=1     one round, a tenth of the operations, 50 loop iterations (~1 minute)
#   VS_ETCD_ROUNDS      rounds (3; quick 1)
#   VS_ETCD_SCALE       operations in percent of the full counts (100; quick 10)
#   VS_ETCD_CLIENTS     client counts ("1 16 64 1000")
#   VS_ETCD_WORKLOADS   raftfs workloads ("put append get-l mix fs-put fs-append fs-get-l")
#   VS_ETCD_LOOP        shell loop iterations (200; quick 50)
#   VS_ETCD_LOOP_ROUNDS rounds of the shell loops, raftfs's and etcdctl's alternating (3; quick 1)
#   VS_ETCD_PORT_BASE   raftfs ports BASE+1..3 (45100: clear of 7001-7003 and etcd's 3237x/3238x)
#   VS_ETCD_GEN         an etcd generator already built by build.sh (skips the ~30 s build)
#   VS_ETCD_SHARED      the directory holding bench-etcd (../shared, beside the repository)
#   VS_ETCD_TLS=1       the TLS mode (tests/bench/vs-etcd-tls.sh): etcd with --cert-file,
#                       --peer-cert-file and client certificates beside raftfs with TLS and the
#                       same raftfs without, put and get-l over the network (issue 16)
# Raw lines, logs and the table stay in a directory under /tmp whose name is printed.
# Every process started here is stopped by PID and every mount released on any exit (the EXIT
# trap unmounts with fusermount3 -u, then -u -z, stops etcd through its cluster.sh, then
# tests/lib/cluster.sh's cleanup kills what is left of the nodes).
set -u
cd "$(dirname "$0")/../.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "vs-etcd.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
for p in fs/raftfs kv/raftfsctl tests/bench/bench_kv; do
	[ -x "$p" ] || {
		echo "vs-etcd.sh: $p is not built (make -j2 check-build)" >&2
		exit 1
	}
done
BENCH_ETCD=$(cd "${VS_ETCD_SHARED:-../shared}/bench-etcd" 2>/dev/null && pwd) || {
	echo "vs-etcd.sh: ${VS_ETCD_SHARED:-../shared}/bench-etcd is missing" >&2
	exit 1
}
if [ "${VS_ETCD_QUICK:-0}" = 1 ]; then
	ROUNDS=${VS_ETCD_ROUNDS:-1}
	SCALE=${VS_ETCD_SCALE:-10}
	LOOP=${VS_ETCD_LOOP:-50}
	LOOP_ROUNDS=${VS_ETCD_LOOP_ROUNDS:-1}
else
	ROUNDS=${VS_ETCD_ROUNDS:-3}
	SCALE=${VS_ETCD_SCALE:-100}
	LOOP=${VS_ETCD_LOOP:-200}
	LOOP_ROUNDS=${VS_ETCD_LOOP_ROUNDS:-3}
fi
CLIENT_COUNTS=${VS_ETCD_CLIENTS:-1 16 64 1000}
WORKLOADS=${VS_ETCD_WORKLOADS:-put append get-l mix fs-put fs-append fs-get-l}
PORT_BASE=${VS_ETCD_PORT_BASE:-45100}
TLS=${VS_ETCD_TLS:-0}
VAL=256
BENCH_KV=tests/bench/bench_kv
HZ=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/vs-etcd.XXXXXX)
RAW=$WORK/raw.txt
: >"$RAW"
ETCD_DIR=""

. tests/lib/cluster.sh
# Unmount first while the nodes still run (a clean unmount also stops a node), stop etcd by
# the PIDs its cluster.sh recorded, then cluster_cleanup kills whatever of ours is left.
vs_cleanup() {
	local rc=$? d
	if [ -n "${STEP_PID:-}" ]; then # the measurement under way (timeout passes TERM on)
		kill -TERM "$STEP_PID" 2>/dev/null
		wait "$STEP_PID" 2>/dev/null
	fi
	for d in "${CLUSTER_MOUNTS[@]}"; do
		if grep -qs " $d fuse" /proc/self/mounts; then
			timeout 10 fusermount3 -u "$d" 2>/dev/null ||
				timeout 10 fusermount3 -u -z "$d" 2>/dev/null
		fi
	done
	if [ -n "$ETCD_DIR" ]; then
		"$BENCH_ETCD/cluster.sh" stop "$ETCD_DIR" >/dev/null 2>&1
	fi
	echo "vs-etcd.sh: raw results and logs in $WORK" >&2
	(exit "$rc")
	cluster_cleanup
}
trap vs_cleanup EXIT
trap 'exit 1' INT TERM # the EXIT trap then cleans up

T=900 # seconds any one measurement may take
# step CMD...: CMD under timeout in the background, waited for, so that INT/TERM reach our trap
# at once (bash defers a trap while a foreground child runs); vs_cleanup stops it.
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

# --- what both modes measure with ---------------------------------------------------------------

# Base operation counts by workload kind and client count (SCALE percent of them are run).
total_for() { # total_for WORKLOAD CLIENTS
	local w=$1 c=$2 n k counts
	if [ "$c" -le 1 ]; then
		k=0
	elif [ "$c" -le 16 ]; then
		k=1
	elif [ "$c" -le 64 ]; then
		k=2
	else
		k=3
	fi
	case $w in
	put | append) counts=(2000 20000 40000 100000) ;;
	get-l | mix) counts=(5000 40000 80000 100000) ;;
	fs-put | fs-append) counts=(1000 5000 10000 20000) ;;
	*) counts=(2000 10000 20000 40000) ;;
	esac
	n=$((counts[k] * SCALE / 100))
	[ "$n" -ge $((2 * c)) ] || n=$((2 * c))
	echo "$n"
}
conns_for() { # 1 for 1 client, 10 up to 100 clients, then 100 (bench-etcd's README)
	local c=$1
	if [ "$c" -le 1 ]; then
		echo 1
	elif [ "$c" -lt 10 ]; then
		echo "$c"
	elif [ "$c" -le 100 ]; then
		echo 10
	else
		echo 100
	fi
}
# CPU ticks (utime + stime) of the processes, summed; fields 14, 15 of /proc/PID/stat.
pids_ticks() {
	local p s=0 t
	for p in "$@"; do
		t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || t=0
		s=$((s + ${t:-0}))
	done
	echo "$s"
}
pids_rss() { # VmHWM in MB, a/b/c
	local p out=""
	for p in "$@"; do
		out="$out${out:+/}$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$p/status" 2>/dev/null)"
	done
	echo "$out"
}

# generator_line SYS WORKLOAD CLIENTS: prints the generator's line from $WORK/out, or says on
# stderr that there is none (the generator failed: its stderr is in $WORK) and returns 1.
generator_line() {
	local line
	line=$(tail -n 1 "$WORK/out")
	case $line in
	op=*) echo "$line" ;;
	*)
		echo "  $1 $2, $3 clients: the generator failed (stderr in $WORK/*.err)" >&2
		return 1
		;;
	esac
}

floor_run() { # floor_run WHEN
	local line
	step "$BENCH_KV" --floor="$CLUSTER_DIR" >"$WORK/out" 2>>"$WORK/bench_kv.err"
	line=$(tail -n 1 "$WORK/out")
	echo "sys=floor when=$1 $line" >>"$RAW"
	echo "floors ($1): $line"
}

# --- the two clusters ---------------------------------------------------------------------------

if [ -n "${VS_ETCD_GEN:-}" ] && [ -x "$VS_ETCD_GEN" ]; then
	ETCD_GEN=$VS_ETCD_GEN
else
	ETCD_GEN=$WORK/bench-etcd
	echo "building the etcd load generator (../shared/bench-etcd/build.sh)"
	step "$BENCH_ETCD/build.sh" "$ETCD_GEN" >"$WORK/build.log" 2>&1 ||
		fail "bench-etcd/build.sh failed: $(tail -n 5 "$WORK/build.log")"
fi
command -v etcdctl >/dev/null || fail "etcdctl is missing after build.sh"

if [ "$TLS" = 1 ]; then
	. tests/bench/vs-etcd-tls.sh # its own clusters, measurements and table
	exit 0
fi

ETCD_DIR=$WORK/etcd
EPS=$("$BENCH_ETCD/cluster.sh" start "$ETCD_DIR" 3) || fail "etcd did not start"
ETCD_PIDS=$(tr '\n' ' ' <"$ETCD_DIR/pids")
ETCDCTL_API=3 timeout 30 etcdctl --endpoints="$EPS" endpoint health >/dev/null 2>&1 ||
	fail "etcd is not healthy: $(tail -n 3 "$ETCD_DIR/m1.log")"

# raftfs: tests/lib/cluster.sh's layout, on fixed ports away from etcd's, the default tick
cluster_init 3 "$PORT_BASE"
M=()
for i in 1 2 3; do
	M[$i]="$CLUSTER_DIR/mnt$i"
	mkdir -p "${M[$i]}"
	cluster_mount_add "${M[$i]}"
	"$RAFTFS" --id="$i" --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data$i" -f \
		-o auto_unmount --timeout=30 "${M[$i]}" >>"$CLUSTER_DIR/log$i" 2>&1 &
	NODE_PID[$i]=$!
done
for i in 1 2 3; do
	wait_mount "${M[$i]}" || fail "node $i did not mount ${M[$i]}"
done
wait_leader >/dev/null
RF_PIDS="${NODE_PID[1]},${NODE_PID[2]},${NODE_PID[3]}"
MOUNTS="${M[1]},${M[2]},${M[3]}"

# Leave the first elections and connections behind before measuring.
step sh -c "echo warm > ${M[1]}/warmup && cat ${M[2]}/warmup ${M[3]}/warmup" >/dev/null ||
	fail "warm-up through the mounts"
step "$BENCH_KV" --cluster="$CLUSTER_LIST" --clients=4 --total=400 --op=put \
	--key-prefix=warm >/dev/null || fail "warm-up of raftfs"
step "$ETCD_GEN" --endpoints="$EPS" --clients=4 --total=400 --op=put >/dev/null ||
	fail "warm-up of etcd"

# --- measurements -------------------------------------------------------------------------------

rf_run() { # rf_run ROUND WORKLOAD CLIENTS
	local r=$1 w=$2 c=$3 n conns line target
	n=$(total_for "$w" "$c")
	conns=$(conns_for "$c")
	case $w in
	fs-*) target=(--mounts="$MOUNTS" --op="${w#fs-}") ;;
	*) target=(--cluster="$CLUSTER_LIST" --conns="$conns" --op="$w") ;;
	esac
	step "$BENCH_KV" "${target[@]}" --clients="$c" --total="$n" --val-size="$VAL" \
		--pids="$RF_PIDS" >"$WORK/out" 2>>"$WORK/bench_kv.err"
	line=$(generator_line raftfs "$w" "$c") || return
	echo "sys=raftfs wl=$w round=$r $line" >>"$RAW"
	echo "  raftfs $line"
}

etcd_run() { # etcd_run ROUND OP CLIENTS
	local r=$1 op=$2 c=$3 n conns line t0 t1 cpu
	n=$(total_for "$op" "$c")
	conns=$(conns_for "$c")
	# shellcheck disable=SC2086
	t0=$(pids_ticks $ETCD_PIDS)
	step "$ETCD_GEN" --endpoints="$EPS" --conns="$conns" --clients="$c" --total="$n" \
		--op="$op" --val-size="$VAL" >"$WORK/out" 2>>"$WORK/bench-etcd.err"
	# shellcheck disable=SC2086
	t1=$(pids_ticks $ETCD_PIDS)
	line=$(generator_line etcd "$op" "$c") || return
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$HZ" \
		'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
	# shellcheck disable=SC2086
	line="$line cpu_us_per_op=$cpu rss_mb=$(pids_rss $ETCD_PIDS)"
	echo "sys=etcd wl=$op round=$r $line" >>"$RAW"
	echo "  etcd   $line"
}

need_etcd_put=0
need_etcd_get=0
for w in $WORKLOADS; do
	case $w in
	put | append | fs-put | fs-append) need_etcd_put=1 ;;
	get-l | fs-get-l) need_etcd_get=1 ;;
	esac
done
etcd_block() { # etcd_block ROUND CLIENTS
	[ "$need_etcd_put" -eq 0 ] || etcd_run "$1" put "$2"
	[ "$need_etcd_get" -eq 0 ] || etcd_run "$1" get-l "$2"
}
rf_block() { # rf_block ROUND CLIENTS
	local w
	for w in $WORKLOADS; do
		rf_run "$1" "$w" "$2"
	done
}

echo "== machine"
echo "nproc: $(nproc)   memory: $(free -g | awk '/^Mem:/ { print $2 " GiB" }')   kernel: $(uname -r)"
echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
df -T "$CLUSTER_DIR" | awk 'NR == 2 { print "data directories on: " $1 " " $2 " mounted on " $7 }'
echo "etcd: $(etcd --version 2>/dev/null | head -n 1), members $EPS, pids $ETCD_PIDS"
echo "raftfs: $CLUSTER_LIST, pids ${RF_PIDS//,/ }, mounts ${MOUNTS//,/ }"
echo "rounds $ROUNDS, operations at $SCALE%, clients: $CLIENT_COUNTS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "work directory: $WORK"
echo
floor_run start
for r in $(seq 1 "$ROUNDS"); do
	for c in $CLIENT_COUNTS; do
		echo "== round $r, $c clients"
		if [ $((r % 2)) -eq 1 ]; then
			etcd_block "$r" "$c"
			rf_block "$r" "$c"
		else
			rf_block "$r" "$c"
			etcd_block "$r" "$c"
		fi
	done
	[ "$r" -eq "$ROUNDS" ] || floor_run "round$r" # the disk drifts within a run
done
floor_run end

# --- shell loops --------------------------------------------------------------------------------

echo
echo "== shell loops, $LOOP iterations each, $LOOP_ROUNDS rounds (raftfs's and etcdctl's alternate)"
loop_run() { # loop_run NAME COMMAND...: runs COMMAND (a bash loop), records ops/s
	local name=$1 t0 t1 line
	shift
	t0=$(date +%s.%N)
	if ! step "$@"; then
		echo "  $name: failed" >&2
		return
	fi
	t1=$(date +%s.%N)
	line=$(awk -v n="$LOOP" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "ops_s=%.1f ms_op=%.3f", n / (b - a), (b - a) * 1000 / n }')
	echo "sys=loop name=$name $line" >>"$RAW"
	echo "  $name: $line"
}
# The mount of a follower (its requests go through the leader: the common case) and the
# leader's own; etcdctl is given every endpoint, as a user would. Keys are new in each round.
LOOP_LEADER=$(cluster_leader)
[ -n "$LOOP_LEADER" ] || fail "no leader for the shell loops"
LOOP_FOLLOWER=$((LOOP_LEADER % 3 + 1))
echo "  (node $LOOP_LEADER leads; follower mount: node $LOOP_FOLLOWER)"
raftfs_loops() { # raftfs_loops ROUND
	local who mnt sfx
	for who in follower leader; do
		mnt=${M[$LOOP_FOLLOWER]} sfx=""
		if [ "$who" = leader ]; then
			mnt=${M[$LOOP_LEADER]} sfx=-leader
		fi
		loop_run "echo-mount$sfx" bash -c \
			"for k in \$(seq 1 $LOOP); do echo v > '$mnt/loop-echo$sfx-r$1-'\$k || exit 1; done"
		# the same key every time: `echo v > f` rewriting one file
		loop_run "echo-mount-same$sfx" bash -c \
			"for k in \$(seq 1 $LOOP); do echo v > '$mnt/loop-same$sfx' || exit 1; done"
	done
	loop_run raftfsctl-put bash -c \
		"for k in \$(seq 1 $LOOP); do '$RAFTFSCTL' --cluster='$CLUSTER_LIST' put loop-ctl-r$1-\$k v >/dev/null || exit 1; done"
}
etcdctl_loops() { # etcdctl_loops ROUND
	loop_run etcdctl-put bash -c \
		"for k in \$(seq 1 $LOOP); do ETCDCTL_API=3 etcdctl --endpoints='$EPS' put loop-ctl-r$1-\$k v >/dev/null || exit 1; done"
	loop_run etcdctl-put-same bash -c \
		"for k in \$(seq 1 $LOOP); do ETCDCTL_API=3 etcdctl --endpoints='$EPS' put loop-same v >/dev/null || exit 1; done"
}
for r in $(seq 1 "$LOOP_ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then
		raftfs_loops "$r"
		etcdctl_loops "$r"
	else
		etcdctl_loops "$r"
		raftfs_loops "$r"
	fi
done
for i in 1 2 3; do
	[ "$(timeout 30 cat "${M[$i]}/loop-echo-r$LOOP_ROUNDS-$LOOP")" = v ] ||
		fail "the last echo is not seen on mount $i"
done

# --- the table ----------------------------------------------------------------------------------

echo
tests/bench/vs-etcd-table.awk "$RAW" | tee "$WORK/table.txt"
