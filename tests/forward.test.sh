#!/bin/bash
# forward.test.sh - issue 15: a write through a follower's mount whose forwarded request (or the
# leader's answer) is lost with a broken connection. Three nodes with mounts; a process holding a
# descriptor at the end of a file on the follower's mount appends one line while, for about a
# second, iptables resets the follower's connection to the leader whenever a segment on it
# carries that request (second case: the leader's connection to the follower whenever a segment
# carries the answer, told by the file's inode number and mode in it). Everything else on the
# links flows (the kernel's GETATTR before each write needs a read index from the leader). The
# write must return within a few seconds of healing, not after the mount's timeout (20 s here;
# before, nothing sent the request again unless the leader changed), and the line must be in
# the file exactly once. Every rule is removed, every process and mount released, on any exit.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "forward.test.sh: skipped: /dev/fuse or fusermount3 is missing"
	exit 77
fi
if [ "$(id -u)" -ne 0 ] || ! command -v iptables >/dev/null; then
	echo "forward.test.sh: skipped: needs root and iptables to break connections"
	exit 77
fi
. tests/lib/cluster.sh
WRITER="" # the process writing through the mount
RULE=() # the iptables rule in place (heal_all cannot delete a rule with a quoted string)
unreset() {
	[ "${#RULE[@]}" -gt 0 ] && iptables -w -D INPUT "${RULE[@]}"
	RULE=()
}
fwd_cleanup() {
	local rc=$?
	[ -n "$WRITER" ] && kill -9 "$WRITER" 2>/dev/null
	unreset
	(exit "$rc")
	cluster_cleanup
}
trap fwd_cleanup EXIT
trap 'exit 1' INT TERM # the EXIT trap then cleans up

MOUNT_TIMEOUT=20 # the mounts' timeout= option: what a write lost for good waits
HEALED_MAX_MS=5000 # a write must be answered within this after healing
BLOCK_S=1

cluster_init 3
M=()
for i in 1 2 3; do
	M[$i]="$CLUSTER_DIR/mnt$i"
	mkdir -p "${M[$i]}"
	cluster_mount_add "${M[$i]}"
	node_start "$i" --timeout="$MOUNT_TIMEOUT" -o auto_unmount "${M[$i]}"
done
for i in 1 2 3; do wait_mount "${M[$i]}" || fail "node $i did not mount ${M[$i]}"; done
leader=$(wait_leader) || exit 1
follower=$((leader % 3 + 1))
mf=${M[$follower]}
echo "leader is node $leader, writing through node $follower's mount"

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# reset_carrying A B MATCH...: node A's connection to node B's port (the one A sends on) is reset
# when a segment matches (iptables string match options): what it carried is lost.
reset_carrying() {
	local a=$1 b=$2
	shift 2
	RULE=(-p tcp -s "127.0.0.$a" -d "127.0.0.$b" --dport "${NODE_PORT[$b]}" -m string --algo bm
		"$@" -m comment --comment "$CLUSTER_TAG" -j REJECT --reject-with tcp-reset)
	iptables -w -I INPUT "${RULE[@]}" || fail "iptables"
}

# lost_write A B TEXT MATCH...: appends TEXT through the follower's mount while A's connection to
# B is reset by what MATCH finds, for BLOCK_S seconds; the write must end well within
# HEALED_MAX_MS of healing.
lost_write() {
	local a=$1 b=$2 text=$3 go="$CLUSTER_DIR/go" rc healed done_ms hits
	shift 3
	rm -f "$go" "$go.ready"
	mkfifo "$go"
	# The file is looked up, opened and read to its end before the link breaks, so that the
	# write is all that is in flight: the kernel asks for the size (a read) before a write on
	# an O_APPEND descriptor, but not before one at the descriptor's offset, which the mount
	# turns into an Append as it is at the end of the file (fs/fuse.c fs_write).
	timeout -k 5 $((MOUNT_TIMEOUT + 30)) bash -c \
		'exec 3<>"$1" || exit 2; cat <&3 >/dev/null || exit 2; : >"$2.ready"
		read -r _ <"$2"; printf "%s\n" "$3" >&3' \
		_ "$mf/log" "$go" "$text" &
	WRITER=$!
	for _ in $(seq 1 100); do
		[ -e "$go.ready" ] && break
		sleep 0.1
	done
	[ -e "$go.ready" ] || fail "the writer could not open $mf/log"
	reset_carrying "$a" "$b" "$@"
	echo go >"$go"
	sleep "$BLOCK_S"
	# the premise: the rule did reset the connection (it counts the segments it matched)
	hits=$(iptables -w -v -S INPUT | grep -F -- "$CLUSTER_TAG" | sed -n 's/.* -c \([0-9]*\) .*/\1/p')
	unreset
	healed=$(now_ms)
	[ "${hits:-0}" -gt 0 ] || fail "nothing matched the rule: the write was not lost"
	wait "$WRITER"
	rc=$?
	WRITER=""
	done_ms=$(($(now_ms) - healed))
	echo "write with node $a -> node $b reset ($hits segments): exit $rc, $done_ms ms after healing"
	[ "$rc" -eq 0 ] || fail "the write failed (exit $rc) $done_ms ms after healing"
	[ "$done_ms" -le "$HEALED_MAX_MS" ] ||
		fail "the write took $done_ms ms after healing (at most $HEALED_MAX_MS)"
}

step "a write through the follower opens its session"
t sh -c "echo warm >>$mf/log" || fail "first write"

step "the follower's request to the leader is lost: sent again once the link is back"
lost_write "$follower" "$leader" "<request-lost>" --string "<request-lost>"

step "the leader's answer to the follower is lost: asked again, answered from the session"
leader=$(wait_leader) || exit 1
if [ "$leader" = "$follower" ]; then follower=$((leader % 3 + 1)) mf=${M[$follower]}; fi
# an answer carries the file's attributes (kv/cmd.h, results): ino and mode, little-endian
read -r ino mode < <(t stat -c '%i %f' "$mf/log") || fail "stat"
hex=""
for k in 0 1 2 3 4 5 6 7; do hex+=$(printf '%02x' $(((ino >> (8 * k)) & 255))); done
for k in 0 1 2 3; do hex+=$(printf '%02x' $(((0x$mode >> (8 * k)) & 255))); done
lost_write "$leader" "$follower" "<answer-lost>" --hex-string "|$hex|"

step "every line is in the file once, on every node"
for i in 1 2 3; do
	content=$(t cat "${M[$i]}/log") || fail "cat on node $i"
	for line in warm "<request-lost>" "<answer-lost>"; do
		k=$(grep -cxF -- "$line" <<<"$content")
		[ "$k" -eq 1 ] || fail "node $i holds '$line' $k times"
	done
done
echo "forward.test.sh: ok"
