#!/bin/bash
# remount.test.sh - a node killed without unmounting leaves a dead mount that its auto_unmount
# helper removes only later; a node restarted on the same mountpoint before that must clear it
# and serve (it failed with ENOTCONN before fs/fuse.c's clear_dead_mount). Deterministic: the
# old daemon's helper is frozen (SIGSTOP) across the restart.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "remount.test.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
D=$(mktemp -d /tmp/raftfs-remount.XXXXXX)
MNT=$D/mnt
PORT=$((30000 + RANDOM % 20000))
P1="" P2="" H=""
mkdir -p "$MNT"

cleanup() {
	local rc=$?
	[ -n "$H" ] && kill -CONT "$H" 2>/dev/null
	for p in $P1 $P2; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for _ in 1 2 3; do
		grep -qs " $MNT " /proc/self/mounts || break
		timeout 10 fusermount3 -u "$MNT" 2>/dev/null || timeout 10 fusermount3 -u -z "$MNT" 2>/dev/null
		sleep 0.2
	done
	if [ "$rc" -eq 0 ]; then rm -rf "$D"; else echo "logs kept in $D" >&2; fi
	exit "$rc"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	tail -n 10 "$D/log" >&2
	exit 1
}
start() {
	fs/raftfs --id=1 --cluster="1=127.0.0.1:$PORT" --data="$D/data" -f --tick-ms=20 \
		-o auto_unmount "$MNT" >>"$D/log" 2>&1 &
}
wait_serving() { # the file reads back as expected
	for _ in $(seq 1 50); do
		[ "$(timeout 5 cat "$MNT/file" 2>/dev/null)" = one ] && return 0
		sleep 0.2
	done
	fail "$1"
}

start
P1=$!
for _ in $(seq 1 50); do grep -qs " $MNT fuse" /proc/self/mounts && break; sleep 0.1; done
for _ in $(seq 1 50); do timeout 5 sh -c "echo one > $MNT/file" 2>/dev/null && break; sleep 0.1; done
wait_serving "the first daemon does not serve"
H=$(pgrep -f -- "auto_unmount.* -- $MNT\$" | head -n 1)
[ -n "$H" ] || fail "no auto_unmount helper found for $MNT"
echo "--- freeze the auto_unmount helper ($H), kill -9 the daemon"
kill -STOP "$H"
kill -9 "$P1"
wait "$P1" 2>/dev/null
P1=""
err=$(timeout 5 stat "$MNT" 2>&1) && fail "the mount is not dead after kill -9 (test premise)"
echo "  the mount is dead: ${err##*: }"
echo "--- restart on the same mountpoint while the dead mount is still there"
start
P2=$!
wait_serving "the restarted daemon does not serve its mountpoint"
grep -q "dead raftfs mount" "$D/log" || fail "the restarted daemon did not report the dead mount"
echo "--- let the old helper run: the new mount stays"
kill -CONT "$H"
H=""
sleep 1
wait_serving "the new mount stopped serving after the old helper ran"
kill -TERM "$P2"
wait "$P2"
rc=$?
P2=""
[ "$rc" -eq 0 ] || fail "the restarted daemon exited $rc after SIGTERM"
echo "remount test passed"
