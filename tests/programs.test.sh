#!/bin/bash
# programs.test.sh - the mounts as programs use files, not only as a shell user typing one command
# at a time (DESIGN.md 6, raftfs(7)): a 3-node cluster with a mount per node and
#   - O_TRUNC + first write is one Put for every process shape (fork, exec, threads, dup2), an
#     O_TRUNC open closed without writing is committed before that last close returns;
#   - a write at an offset writes at that offset, whatever another node appended;
#   - every read(2) is linearizable: a descriptor sees writes made elsewhere, and its own;
#   - fsx-style random writes, reads and truncations on one long-lived descriptor through a
#     follower's mount, compared with a copy in memory and with another node's view;
#   - an interrupted write answers EINTR only when it certainly was not applied, EIO otherwise;
#   - without a quorum every operation fails within the mount's timeout however many wait in one
#     directory beside it;
#   - while a node is down its mountpoint refuses writes; raftfs refuses to mount over a
#     non-empty directory or a live raftfs mount;
#   - sqlite3: a transaction of 10,000 rows on one node, integrity_check on another, 1,000
#     autocommit inserts (timed), and WAL mode refused with the documented way out.
# The probes are tests/tools/fsprobe (its checks are POSIX's answers: FSPROBE_POSIX=1 runs them
# on a local directory). PROGRAMS_FSX_OPS (3000) and PROGRAMS_FSX_BIG_OPS (200) size the fsx
# runs; PROGRAMS_FSX_SEED replays one.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "programs.test.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
PROBE=tests/tools/fsprobe
[ -x "$PROBE" ] || { echo "programs.test.sh: $PROBE is not built (make check-build)" >&2; exit 1; }
CLUSTER_NET=${CLUSTER_NET:-127.2.$((100 + $$ % 100))} # no packet filters here
. tests/lib/cluster.sh
trap cluster_cleanup EXIT
trap 'exit 1' INT TERM # the EXIT trap then cleans up

cluster_init 3
for i in 1 2 3; do mount_node "$i" --timeout=10; done
for i in 1 2 3; do wait_mounted "$i"; done
leader=$(wait_leader) || fail "no leader"
f=$((leader % 3 + 1)) # a follower
g=$((f % 3 + 1)) # the other node (the leader or the second follower)
h=$((g % 3 + 1))
mf=${M[$f]} mg=${M[$g]} mh=${M[$h]}
echo "leader $leader; the probes open files through node $f's mount"
probe() { t "$PROBE" "$@" || fail "fsprobe $*"; }

step "O_TRUNC + first write is one Put, whatever the opener does meanwhile"
for shape in fork-close fork-exec thread-dup opener-thread-exits dup2 child-holds-other \
	dup2-child-holds-other; do
	probe trunc "$shape" "$mf/t-$shape" "$mg/t-$shape" "$mh/t-$shape"
done
probe trunc-no-write "$mf/t-nowrite" "$mg/t-nowrite"
probe trunc-no-write-beside "$mf/t-beside" "$mg/t-beside"
probe trunc-opener-first "$mf/t-first" "$mg/t-first"
probe trunc-threads "$mf/t-threads" "$mg/t-threads"
probe trunc-close-race "$mf/t-race" "$mg/t-race"
t sh -c "echo v > $mf/t-shell" && [ "$(t cat "$mg/t-shell")" = v ] || fail "echo v > f"
t sh -c ": > $mf/t-shell" && [ -z "$(t cat "$mg/t-shell")" ] || fail ": > f did not empty f"

step "a write at an offset writes there, whatever another node appended"
probe stale-pwrite "$mf/offset" "$mh/offset"

step "every read(2) is linearizable: a descriptor sees others' writes and its own"
probe read-fresh "$mf/fresh" "$mg/fresh"
probe ryw "$mf/ryw"

step "fsx: one long-lived descriptor on a follower's mount against a copy in memory"
seed=${PROGRAMS_FSX_SEED:-$(((RANDOM << 15 | RANDOM) % 1000000000))}
T=600 probe fsx "$mf/fsx" "$mg/fsx" --seed="$seed" --ops="${PROGRAMS_FSX_OPS:-3000}"
T=600 probe fsx "$mf/fsx-big" "$mg/fsx-big" --seed="$seed" --ops="${PROGRAMS_FSX_BIG_OPS:-200}" \
	--max-size=$((4 << 20)) --max-op=$((1 << 20))

step "sqlite3: 10,000 rows in one transaction on one node, integrity_check on another"
if command -v sqlite3 >/dev/null; then
	{
		echo "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
		echo "BEGIN;"
		for k in $(seq 1 10000); do echo "INSERT INTO t (v) VALUES ('row $k');"; done
		echo "COMMIT;"
	} >"$CLUSTER_DIR/rows.sql"
	t sqlite3 "$mf/db.sqlite" <"$CLUSTER_DIR/rows.sql" || fail "sqlite3 transaction"
	[ "$(t sqlite3 "$mg/db.sqlite" 'PRAGMA integrity_check;')" = ok ] || fail "integrity_check"
	[ "$(t sqlite3 "$mh/db.sqlite" 'SELECT count(*) FROM t;')" = 10000 ] || fail "row count"
	for k in $(seq 1 1000); do echo "INSERT INTO t (v) VALUES ('auto $k');"; done \
		>"$CLUSTER_DIR/auto.sql"
	start=$(date +%s.%N)
	T=300 t sqlite3 "$mf/db.sqlite" <"$CLUSTER_DIR/auto.sql" || fail "autocommit inserts"
	awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "1000 autocommit inserts: %.2f s\n", e - s }'

	[ "$(t sqlite3 "$mg/db.sqlite" 'SELECT count(*) FROM t;')" = 11000 ] || fail "row count"
	# WAL needs a shared mapping of its -shm file, which the kernel refuses on a direct_io
	# file (ENODEV), and sqlite3 reports "disk I/O error": the way out of raftfs(7) works and
	# loses nothing
	out=$(t sqlite3 "$mf/db.sqlite" 'PRAGMA journal_mode=WAL; INSERT INTO t (v) VALUES (1);' 2>&1) &&
		fail "WAL mode worked: raftfs(7) says it does not ($out)"
	echo "$out" | grep -q "disk I/O error" || fail "WAL mode: $out"
	[ "$(t sqlite3 -cmd 'PRAGMA locking_mode=EXCLUSIVE;' "$mg/db.sqlite" \
		'PRAGMA journal_mode=DELETE;' | tail -n 1)" = delete ] ||
		fail "the way out of WAL mode in raftfs(7)"
	[ "$(t sqlite3 "$mh/db.sqlite" 'PRAGMA integrity_check;')" = ok ] || fail "after WAL"
	[ "$(t sqlite3 "$mh/db.sqlite" 'SELECT count(*) FROM t;')" = 11000 ] || fail "after WAL"
else
	echo "sqlite3 is not installed (scripts/install-deps.sh installs it)"
	fail "no sqlite3"
fi

step "an interrupted write: EIO when it may have been applied, EINTR when it certainly was not"
# the followers stop answering: the leader proposes the write, which cannot commit
others=()
for i in 1 2 3; do [ "$i" -ne "$leader" ] && others+=("$i"); done
go=$CLUSTER_DIR/go
mkfifo "$go"
"$PROBE" intr-write "${M[$leader]}/intr" 1000 "$go" >"$CLUSTER_DIR/intr.out" 2>&1 &
probe_pid=$!
for _ in $(seq 1 100); do grep -qs ready "$CLUSTER_DIR/intr.out" && break; sleep 0.1; done
grep -q ready "$CLUSTER_DIR/intr.out" || fail "intr-write did not open its file"
for i in "${others[@]}"; do kill -STOP "${NODE_PID[$i]}"; done
echo go >"$go"
for _ in $(seq 1 150); do kill -0 "$probe_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$probe_pid" 2>/dev/null && fail "the interrupted write did not return"
wait "$probe_pid" || fail "intr-write: $(cat "$CLUSTER_DIR/intr.out")"
res=$(tail -n 1 "$CLUSTER_DIR/intr.out")
for i in "${others[@]}"; do kill -CONT "${NODE_PID[$i]}"; done
[ "$res" = EIO ] || fail "an interrupted write whose outcome is unknown answered $res, not EIO"
wait_leader >/dev/null

step "without a quorum every operation fails within the timeout, however many wait beside it"
node_stop 1
mount_node 1 --timeout=3
wait_mounted 1
m1=${M[1]}
# a write on a node that knows no leader is certainly not applied: an interrupt ends it with EINTR
rm -f "$go"
mkfifo "$go"
"$PROBE" intr-write "$m1/fresh" 1000 "$go" >"$CLUSTER_DIR/intr2.out" 2>&1 &
probe_pid=$!
for _ in $(seq 1 100); do grep -qs ready "$CLUSTER_DIR/intr2.out" && break; sleep 0.1; done
grep -q ready "$CLUSTER_DIR/intr2.out" || fail "intr-write did not open its file"
node_stop 2
node_stop 3
for _ in $(seq 1 100); do
	[ "$(ctl_node 1 status 2>/dev/null | awk '$1 == 1 { print $7 }')" = - ] && break
	sleep 0.1
done
echo go >"$go"
for _ in $(seq 1 150); do kill -0 "$probe_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$probe_pid" 2>/dev/null && fail "the interrupted write did not return"
wait "$probe_pid" || fail "intr-write: $(cat "$CLUSTER_DIR/intr2.out")"
res=$(tail -n 1 "$CLUSTER_DIR/intr2.out")
[ "$res" = EINTR ] || fail "an interrupted write that was never proposed answered $res, not EINTR"
pids=()
start=$(date +%s)
for op in "stat $m1/fresh" "cat $m1/fresh" "sh -c ': > $m1/fresh'" "touch $m1/newfile" \
	"touch $m1/fresh" "ls $m1"; do
	( s=$(date +%s); timeout -k 5 60 $op >/dev/null 2>&1; echo "$(($(date +%s) - s)) $op" ) \
		>>"$CLUSTER_DIR/noquorum" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$CLUSTER_DIR/noquorum"
awk '$1 > 3 + 3 { bad = 1 } END { exit bad }' "$CLUSTER_DIR/noquorum" ||
	fail "an operation without a quorum took longer than the mount's timeout of 3 s (+3 s)"
[ $(($(date +%s) - start)) -le 8 ] || fail "the operations together took more than 8 s"

step "while a node is down its mountpoint refuses writes"
node_stop 1 # SIGTERM: unmounted
if t sh -c "echo lost > $m1/lost" 2>/dev/null; then
	fail "a write into the mountpoint of a stopped node succeeded"
fi
mount_node 1 --timeout=10
mount_node 2 --timeout=10
mount_node 3 --timeout=10
for i in 1 2 3; do wait_mounted "$i"; done
wait_leader >/dev/null
node_kill9 1
for _ in $(seq 1 50); do grep -qs " $m1 fuse" /proc/self/mounts || break; sleep 0.1; done
if t sh -c "echo lost > $m1/lost" 2>/dev/null; then
	fail "a write into the mountpoint of a killed node succeeded"
fi
mount_node 1 --timeout=10
wait_mounted 1
t sh -c "echo back > $m1/back" && [ "$(t cat "${M[2]}/back")" = back ] || fail "after restart"

step "raftfs refuses to mount over a non-empty directory or over a live raftfs mount"
mkdir -p "$CLUSTER_DIR/full"
echo keep >"$CLUSTER_DIR/full/file"
solo="1=$CLUSTER_NET.9:$((NODE_PORT[3] + 1))" # a one-node cluster of its own
out=$(timeout 20 "$RAFTFS" --id=1 --cluster="$solo" --data="$CLUSTER_DIR/other" -f \
	"$CLUSTER_DIR/full" 2>&1) && fail "raftfs mounted over a non-empty directory"
echo "$out" | grep -q "not empty" || fail "no clear message for a non-empty mountpoint: $out"
[ "$(cat "$CLUSTER_DIR/full/file")" = keep ] || fail "the files under it were touched"
out=$(timeout 20 "$RAFTFS" --id=1 --cluster="$solo" --data="$CLUSTER_DIR/other2" -f \
	"${M[2]}" 2>&1) && fail "raftfs mounted over a live raftfs mount"
echo "$out" | grep -q "already" || fail "no clear message for a live mount: $out"
[ "$(t cat "${M[2]}/back")" = back ] || fail "the live mount was disturbed"

echo "programs.test.sh: all steps passed"
