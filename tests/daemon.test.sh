#!/bin/bash
# daemon.test.sh - raftfs as a daemon (without -f): it detaches only once it serves and is
# mounted (so its exit status says whether it started), a data directory that takes no writes
# is refused at once with exit 1, the detached node holds no caller's pipe, --log-file gets its
# log lines; and a snapshot child keeps none of the node's sockets nor /dev/fuse.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "daemon.test.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
CLUSTER_NET=${CLUSTER_NET:-127.6.$((100 + $$ % 100))} # no packet filters here
. tests/lib/cluster.sh
RO="" # a read-only tmpfs of this test
daemon_cleanup() {
	local rc=$?
	[ -n "$RO" ] && umount -l "$RO" 2>/dev/null
	(exit "$rc")
	cluster_cleanup
}
trap daemon_cleanup EXIT
trap 'exit 1' INT TERM

cluster_init 1
mnt=$CLUSTER_DIR/mnt
mkdir -p "$mnt"
cluster_mount_add "$mnt"

step "daemon mode: the command returns once the node serves and is mounted"
start=$(date +%s.%N)
t "$RAFTFS" --id=1 --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data" --tick-ms=20 \
	--log-file="$CLUSTER_DIR/log1" -o auto_unmount "$mnt" | cat ||
	fail "raftfs in daemon mode failed to start (or kept the pipe open: | cat waited)"
grep -qs " $mnt fuse" /proc/self/mounts || fail "raftfs returned before it was mounted"
pid=$(awk -v d="$CLUSTER_DIR/data" '$0 ~ d { print $1 }' <(pgrep -a -x raftfs) | head -n 1)
[ -n "$pid" ] || fail "no daemon is running"
NODE_PID[1]=$pid # cluster_cleanup stops it by PID
[ "$(readlink "/proc/$pid/cwd")" = / ] || fail "the daemon did not chdir to /"
t sh -c "echo hi > $mnt/f" && [ "$(t cat "$mnt/f")" = hi ] || fail "the daemon's mount"
grep -q "serving cluster" "$CLUSTER_DIR/log1" || fail "--log-file has no log lines"
for fd in 0 1 2; do
	target=$(readlink "/proc/$pid/fd/$fd")
	case "$target" in
	/dev/null | "$CLUSTER_DIR/log1") ;;
	*) fail "the daemon's descriptor $fd is $target (a caller's terminal or pipe)" ;;
	esac
done

step "SIGTERM stops the daemon (not our child: no exit status to wait for)"
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the daemon did not stop within 10 s of SIGTERM"
NODE_PID[1]=""
grep -q "node 1 stopped" "$CLUSTER_DIR/log1" || fail "the daemon did not log its stop"

step "a snapshot child keeps none of the node's sockets, nor /dev/fuse"
RAFTFS_TEST_SNAPSHOT_CHILD_DELAY_MS=4000 node_start 1 --snapshot-bytes=65536 -o auto_unmount "$mnt"
wait_mount "$mnt" || fail "the node did not mount again"
child=""
for k in $(seq 1 200); do
	t sh -c "head -c 2048 /dev/zero > $mnt/s$k" || fail "write s$k"
	child=$(pgrep -P "${NODE_PID[1]}" -x raftfs | head -n 1)
	[ -n "$child" ] && break
done
[ -n "$child" ] || fail "no snapshot child appeared"
for fd in /proc/"$child"/fd/*; do
	target=$(readlink "$fd")
	case "$target" in
	socket:* | /dev/fuse | anon_inode:*)
		fail "the snapshot child $child holds $target (descriptor ${fd##*/})" ;;
	esac
done
echo "snapshot child $child holds: $(for fd in /proc/"$child"/fd/*; do readlink "$fd"; done | tr '\n' ' ')"
node_stop 1

step "a data directory that takes no writes is refused at once, with exit 1"
RO=$CLUSTER_DIR/ro
mkdir -p "$RO"
mount -t tmpfs -o size=1m tmpfs "$RO" || fail "tmpfs"
mkdir "$RO/data"
mount -o remount,ro "$RO" || fail "remount ro"
out=$(t "$RAFTFS" --id=1 --cluster="$CLUSTER_LIST" --data="$RO/data" 2>&1) &&
	fail "raftfs started on a read-only data directory"
echo "$out" | grep -q "not writable" || fail "no clear message: $out"
echo "  $out"

echo "daemon.test.sh: all steps passed"
