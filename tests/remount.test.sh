#!/bin/bash
# remount.test.sh - a node killed without unmounting leaves a dead mount that its auto_unmount
# helper removes only later; a node restarted on the same mountpoint before that must clear it
# and serve (it failed with ENOTCONN before fs/fuse.c's clear_dead_mount). Deterministic: the
# old daemon's helper is frozen (SIGSTOP) across the restart.
# Second case: the helper has seen the dead mount and is about to unmount the path by name when
# the new daemon starts; if the new daemon mounted in between, the helper detached the NEW mount
# (reads then found the bare directory: ENOENT). strace delays the helper's umount2() to hold
# that window open; the new daemon must wait for the old helper before mounting.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "remount.test.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
D=$(mktemp -d /tmp/raftfs-remount.XXXXXX)
MNT=$D/mnt
PORT=$((30000 + RANDOM % 20000))
P1="" P2="" H="" S=""
mkdir -p "$MNT"

cleanup() {
	local rc=$?
	[ -n "$H" ] && kill -CONT "$H" 2>/dev/null
	for p in $S $P1 $P2; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for _ in 1 2 3; do
		grep -qs " $MNT " /proc/self/mounts || break
		timeout 10 fusermount3 -u "$MNT" 2>/dev/null || timeout 10 fusermount3 -u -z "$MNT" 2>/dev/null
		sleep 0.2
	done
	fs/raftfs --unguard "$MNT" 2>/dev/null # bare now: a plain directory again
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
echo "--- the helper is inside its unmount when the daemon restarts (strace delays its umount2)"
if ! command -v strace >/dev/null; then
	fail "strace is missing (scripts/install-deps.sh installs it)"
fi
H=$(pgrep -f -- "auto_unmount.* -- $MNT\$" | head -n 1)
[ -n "$H" ] || fail "no auto_unmount helper found for the second daemon"
strace -q -o "$D/strace" -p "$H" -e trace=umount2 -e inject=umount2:delay_enter=2000000 &
S=$!
for _ in $(seq 1 50); do grep -qs "^TracerPid:[[:space:]]*$S\$" "/proc/$H/status" && break; sleep 0.1; done
grep -qs "^TracerPid:[[:space:]]*$S\$" "/proc/$H/status" || fail "strace did not attach to $H"
kill -9 "$P2"
wait "$P2" 2>/dev/null
P2=""
H=""
start
P2=$!
wait "$S" 2>/dev/null # strace ends with the helper, after its delayed umount2
S=""
grep -q 'umount2(.*DELAYED' "$D/strace" || fail "the old helper did not unmount (test premise): $(cat "$D/strace")"
grep -q "waiting for the auto_unmount helper" "$D/log" || fail "the restarted daemon did not wait for the old helper"
wait_serving "the restarted daemon does not serve after the old helper unmounted"
kill -0 "$P2" 2>/dev/null || fail "the restarted daemon is gone (its mount was taken away)"
grep -qs " $MNT fuse.raftfs " /proc/self/mounts || fail "no raftfs mount on $MNT"

kill -TERM "$P2"
wait "$P2"
rc=$?
P2=""
[ "$rc" -eq 0 ] || fail "the restarted daemon exited $rc after SIGTERM"
echo "remount test passed"
