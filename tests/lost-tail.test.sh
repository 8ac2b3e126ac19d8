#!/bin/bash
# lost-tail.test.sh - a follower killed during writes whose disk then loses the end of its last
# record (cut 10 bytes before the end of its records: recovery takes it for a torn write and cuts
# it off) restarts without entries it had acknowledged. The same leader must send them again at
# once: the follower reaches the leader's commit within a few seconds and reads through it work
# (before: it sat at its old commit until the leader changed, 30 s and more; issue 15, item 8).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/cluster.sh
trap cluster_cleanup EXIT

WALCUT=${WALCUT:-tests/tools/walcut}
CATCH_UP_S=5

# node_field I COLUMN: a column of node I's line in raftfsctl status (3 role, 4 term, 5 commit)
node_field() {
	ctl status 2>/dev/null | awk -v i="$1" -v c="$2" '$1 == i { print $c; exit }'
}

cluster_init 3
for i in 1 2 3; do node_start "$i"; done
step "election, and writes through the leader"
leader=$(wait_leader) || exit 1
follower=$((leader % 3 + 1))
for k in $(seq 1 20); do ctl put "k$((k % 5))" "first $k" >/dev/null || fail "put $k"; done
term=$(node_field "$leader" 4)
echo "leader is node $leader (term $term), the follower killed is node $follower"

step "kill -9 the follower in the middle of writes"
(for k in $(seq 1 300); do ctl put "k$((k % 5))" "second $k" >/dev/null || exit 1; done) &
writer=$!
sleep 0.3
node_kill9 "$follower"
wait "$writer" || fail "a write failed with two nodes of three up"
ctl put k1 last >/dev/null || fail "the last put"

step "its last segment loses the end of its records"
"$WALCUT" "$CLUSTER_DIR/data$follower" 10 || fail "cannot cut the follower's log"

step "it restarts, cuts the torn record, and catches up under the same leader"
node_start "$follower"
start=$(date +%s)
commit=""
for _ in $(seq 1 $((CATCH_UP_S * 10))); do
	want=$(node_field "$leader" 5)
	commit=$(node_field "$follower" 5)
	[ -n "$commit" ] && [ "$commit" = "$want" ] && break
	sleep 0.1
done
grep -q "torn record .* cut off" "$CLUSTER_DIR/log$follower" ||
	fail "node $follower did not cut a torn record"
[ "$commit" = "$(node_field "$leader" 5)" ] ||
	fail "node $follower at commit ${commit:-?}, the leader at $(node_field "$leader" 5), after ${CATCH_UP_S} s"
if [ "$(node_field "$leader" 3)" != leader ] || [ "$(node_field "$leader" 4)" != "$term" ]; then
	fail "the leader changed (node $leader: $(node_field "$leader" 3) in term $(node_field "$leader" 4))"
fi
echo "node $follower at commit $commit, as the leader, after $(($(date +%s) - start)) s"

step "reads through it"
got=$(ctl_node "$follower" get k1) || fail "a read through node $follower failed"
[ "$got" = last ] || fail "a read through node $follower got '$got'"
got=$(ctl_node "$follower" get k2) || fail "a read through node $follower failed"
[ "$got" = "second 297" ] || fail "a read through node $follower got '$got' for k2"
echo "ok"
