#!/bin/bash
# heal.test.sh - a follower whose packets to the leader were dropped for a long while catches up
# within seconds of the heal. Three nodes; writes go on through the leader while iptables drops
# everything the follower sends on its connection to the leader (its answers) for DROP_S
# seconds. The kernel keeps those answers and retransmits them with a backoff that doubles
# while the drop lasts and is not reset by the heal: after 30 s its next try is about 20 s
# later. The transport bounds how long sent bytes may stay unacknowledged (TCP_USER_TIMEOUT,
# raft/transport.h RAFT_TRANSPORT_WRITE_TIMEOUT_MS), so the connection is closed and dialed
# again instead, and the follower must have applied what the leader had committed at the heal
# within CAUGHT_UP_MAX_S of it. (nemesis seed 3028197 found it: a healed follower still behind
# after 44 s.) Every rule is removed and every process stopped on any exit.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ] || ! command -v iptables >/dev/null; then
	echo "heal.test.sh: skipped: needs root and iptables to drop packets"
	exit 77
fi
. tests/lib/cluster.sh
WRITER=""
heal_cleanup() {
	local rc=$?
	[ -n "$WRITER" ] && kill "$WRITER" 2>/dev/null && wait "$WRITER" 2>/dev/null
	(exit "$rc")
	cluster_cleanup
}
trap heal_cleanup EXIT
trap 'exit 1' INT TERM # the EXIT trap then cleans up

DROP_S=${HEAL_DROP_S:-30}
CAUGHT_UP_MAX_S=10

cluster_init 3
for i in 1 2 3; do node_start "$i"; done
leader=$(wait_leader) || exit 1
follower=$((leader % 3 + 1))
echo "leader is node $leader; node $follower's packets to it are dropped for $DROP_S s"

# status_of I COLUMN: a column of node I's line in the status (5 commit, 6 applied)
status_of() { ctl status 2>/dev/null | awk -v i="$1" -v c="$2" '$1 == i { print $c }'; }

step "writes through the leader, node $follower cut off from sending to it"
(
	n=0
	while :; do
		ctl_node "$leader" --timeout=2 put "k$((n % 16))" "v$n" >/dev/null 2>&1
		n=$((n + 1))
	done
) &
WRITER=$!
sleep 1
partition_oneway "$follower" "$leader"
sleep "$DROP_S"
target=$(status_of "$leader" 5)
heal_all
healed=$(date +%s%N)
[ -n "$target" ] || fail "the leader did not answer its status"
kill "$WRITER" 2>/dev/null
wait "$WRITER" 2>/dev/null
WRITER=""

step "healed: node $follower applies index $target (the leader's commit at the heal)"
caught=""
while [ $((($(date +%s%N) - healed) / 1000000)) -lt $((CAUGHT_UP_MAX_S * 3000)) ]; do
	a=$(status_of "$follower" 6)
	if [ -n "$a" ] && [ "$a" -ge "$target" ]; then
		caught=$((($(date +%s%N) - healed) / 1000000))
		break
	fi
	sleep 0.1
done
[ -n "$caught" ] || fail "node $follower was still behind index $target $((CAUGHT_UP_MAX_S * 3)) s after the heal"
echo "node $follower caught up $caught ms after the heal"
[ "$caught" -le $((CAUGHT_UP_MAX_S * 1000)) ] ||
	fail "node $follower caught up only $caught ms after the heal (at most ${CAUGHT_UP_MAX_S} s)"
for i in 1 2 3; do kill -0 "${NODE_PID[$i]}" 2>/dev/null || fail "node $i is not running"; done
echo "heal test passed"
