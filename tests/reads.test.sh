#!/bin/bash
# reads.test.sh - what a read through a follower's mount asks of the leader, counted in the
# follower's message trace (RAFTFS_TRACE_MSGS, "send read-index"): every lookup, stat and read
# of a value is one linearizable read (DESIGN.md 6), and nothing else is:
#   - an open for reading asks nothing (the lookup before it has just found the file);
#   - dd of one block: the lookup and one read of the value;
#   - cat: the lookup, fstat, the value, and the read past its end that finds no more.
# The answers are checked too, and a read right after a write on another node sees it.
# Counting is exact: a request is sent again only after a timeout of seconds, and nothing
# else sends read indexes on an idle cluster.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "reads.test.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
CLUSTER_NET=${CLUSTER_NET:-127.1.$((100 + $$ % 100))} # no packet filters here
. tests/lib/cluster.sh
trap cluster_cleanup EXIT
trap 'exit 1' INT TERM # the EXIT trap then cleans up

cluster_init 3
export RAFTFS_TRACE_MSGS=1 # raftfs(8): every Raft message sent and received, at debug level
M=()
for i in 1 2 3; do
	M[$i]="$CLUSTER_DIR/mnt$i"
	mkdir -p "${M[$i]}"
	cluster_mount_add "${M[$i]}"
	node_start "$i" --log-level=debug -o auto_unmount "${M[$i]}"
done
for i in 1 2 3; do
	wait_mount "${M[$i]}" || fail "node $i did not mount ${M[$i]}"
done
leader=$(wait_leader) || fail "no leader"
f=$((leader % 3 + 1))
mf=${M[$f]}
echo "leader $leader, reading through node $f's mount $mf"

sent() { grep -c "send read-index to $leader " "$CLUSTER_DIR/log$f"; }
# expect_reads N WHAT CMD...: CMD through the follower's mount sends exactly N read indexes
expect_reads() {
	local n=$1 what=$2 before after
	shift 2
	before=$(sent)
	"$@" || fail "$what failed"
	after=$(sent)
	[ $((after - before)) -eq "$n" ] ||
		fail "$what sent $((after - before)) read indexes to the leader, not $n"
}

step "a write on the leader's mount, read on a follower's"
t sh -c "echo hello > ${M[$leader]}/file" || fail "echo > file"
[ "$(t cat "$mf/file")" = hello ] || fail "the follower does not read what was written"
[ "$(sent)" -gt 0 ] || fail "no read index in node $f's log: does RAFTFS_TRACE_MSGS log sends?"

step "open for reading and close: the lookup only"
expect_reads 1 "open and close" t bash -c "exec 3<'$mf/file' && exec 3<&-"

step "dd of one block: the lookup and one read of the value"
out=$(mktemp)
expect_reads 2 "dd" t dd if="$mf/file" of="$out" bs=4096 count=1 status=none
[ "$(cat "$out")" = hello ] || fail "dd read '$(cat "$out")'"
rm -f "$out"

step "cat: the lookup, fstat, the value and its end"
expect_reads 4 "cat" t sh -c "cat '$mf/file' > /dev/null"

step "each read sees the write before it"
for k in 1 2 3; do
	t sh -c "echo v$k > ${M[$leader]}/file" || fail "echo v$k"
	[ "$(t cat "$mf/file")" = "v$k" ] || fail "read $k does not see v$k"
done

for i in 1 2 3; do
	timeout 10 fusermount3 -u "${M[$i]}" 2>/dev/null
done
echo "reads.test.sh: ok"
