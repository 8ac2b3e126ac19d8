#!/bin/bash
# cluster.test.sh - N real raftfs processes on 127.0.0.1-N (NODES=3 by default; cluster5.test.sh
# runs 5) driven through raftfsctl: election, writes and reads from every node, kill -9 of the
# leader and of a follower, restart and catch-up by log and by snapshot, a partition made with
# iptables, shutdown by SIGTERM. At the end every acknowledged write is read back from every node.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/cluster.sh
trap cluster_cleanup EXIT

N=${NODES:-3}
ACKED=() # "key value" of every acknowledged write, checked on every node at the end

put_acked() { # put_acked KEY VALUE [raftfsctl prefix...]: a put that must succeed
	ctl put "$1" "$2" >/dev/null || fail "put $1"
	ACKED+=("$1 $2")
}

expect_get() { # expect_get NODE KEY VALUE: a linearizable read through that node
	local got
	got=$(ctl_node "$1" get "$2") || fail "get $2 on node $1 failed"
	[ "$got" = "$3" ] || fail "get $2 on node $1: got '$got', expected '$3'"
}

# A read on a node that has fallen behind waits (ReadIndex) until it has caught up; retry a
# few times while a restarted node is still starting.
expect_get_eventually() {
	for _ in $(seq 1 50); do
		if [ "$(ctl_node "$1" get "$2" 2>/dev/null)" = "$3" ]; then
			return 0
		fi
		sleep 0.2
	done
	expect_get "$@"
}

cluster_init "$N"
# a small snapshot threshold so that a follower that missed writes needs InstallSnapshot
for i in $(seq 1 "$N"); do node_start "$i" --snapshot-bytes=8192 --snapshot-trailing=10; done

step "election"
leader=$(wait_leader) || exit 1
echo "leader is node $leader"

step "put and append through the cluster, read from every node"
ctl put greeting hello || fail "put"
ctl append greeting ", world" || fail "append"
for i in $(seq 1 "$N"); do expect_get "$i" greeting "hello, world"; done
ACKED+=("greeting hello, world")
[ "$(ctl get missing-key)" = "" ] || fail "get of a missing key is not empty"
echo -n "from stdin" | ctl put stdin-key - || fail "put from stdin"
expect_get 2 stdin-key "from stdin"

step "writes through a follower are forwarded to the leader"
follower=$(( leader % N + 1 ))
ctl_node "$follower" put via-follower yes || fail "put through follower $follower"
ACKED+=("via-follower yes")
expect_get "$leader" via-follower yes

step "kill -9 the leader: a new one is elected, nothing acknowledged is lost"
node_kill9 "$leader"
sleep 0.5
new_leader=$(wait_leader) || exit 1
[ "$new_leader" != "$leader" ] || fail "the killed node is still reported as leader"
echo "new leader is node $new_leader"
put_acked after-crash 1
for i in $(seq 1 "$N"); do
	[ "$i" = "$leader" ] && continue
	expect_get "$i" greeting "hello, world"
	expect_get "$i" after-crash 1
done

step "the old leader restarts and catches up by log"
node_start "$leader" --snapshot-bytes=8192 --snapshot-trailing=10
expect_get_eventually "$leader" after-crash 1
expect_get "$leader" via-follower yes

step "kill -9 a follower, write past several snapshots, restart it: it catches up by snapshot"
victim=$(( new_leader % N + 1 ))
node_kill9 "$victim"
for k in $(seq 1 120); do
	put_acked "bulk/key$k" "value-$k-$(printf '%0200d' "$k")"
done
node_start "$victim" --snapshot-bytes=8192 --snapshot-trailing=10
expect_get_eventually "$victim" bulk/key120 "value-120-$(printf '%0200d' 120)"
expect_get "$victim" bulk/key1 "value-1-$(printf '%0200d' 1)"
grep -q "installed snapshot" "$CLUSTER_DIR/log$victim" ||
	fail "node $victim caught up without InstallSnapshot (expected one after 120 writes)"
grep -q "snapshot at index" "$CLUSTER_DIR/log$new_leader" || fail "the leader took no snapshot"

step "partition: the leader is cut off from every follower"
leader=$(wait_leader) || exit 1
others=()
for i in $(seq 1 "$N"); do [ "$i" != "$leader" ] && others+=("$i"); done
for o in "${others[@]}"; do partition_pair "$leader" "$o"; done
# the majority elects a new leader and keeps committing
for _ in $(seq 1 100); do
	if timeout 10 "$RAFTFSCTL" --timeout=2 \
		--cluster="${others[0]}=127.0.0.${others[0]}:${NODE_PORT[${others[0]}]}" \
		put majority-side yes 2>/dev/null; then
		break
	fi
	sleep 0.2
done
expect_get "${others[1]}" majority-side yes
ACKED+=("majority-side yes")
# the minority cannot commit, and never answers a read from its own state
if timeout 15 "$RAFTFSCTL" --timeout=2 --cluster="$leader=127.0.0.$leader:${NODE_PORT[$leader]}" \
	put minority-side yes 2>/dev/null; then
	fail "the isolated old leader committed a write"
fi
if timeout 15 "$RAFTFSCTL" --timeout=2 --cluster="$leader=127.0.0.$leader:${NODE_PORT[$leader]}" \
	get majority-side >/dev/null 2>&1; then
	fail "the isolated old leader answered a read"
fi

step "heal: every node converges"
heal_all
for i in $(seq 1 "$N"); do expect_get_eventually "$i" majority-side yes; done
[ "$(ctl get minority-side)" = "" ] || fail "the minority's write appeared after healing"

step "every acknowledged write (${#ACKED[@]}) is present on every node"
for i in $(seq 1 "$N"); do
	for kv in "${ACKED[@]}"; do
		expect_get "$i" "${kv%% *}" "${kv#* }"
	done
done

step "SIGTERM while the leader holds writes its followers forwarded: it exits 0"
# Closing the node answers every request it still holds, and the answers to forwarded requests
# leave on the transport, which must still exist then (a use after free the sanitizer run
# catches). The followers stop answering, so the forwarded writes stay uncommitted.
leader=$(wait_leader)
via=$((leader % N + 1))
tests/bench/bench_kv --cluster="$CLUSTER_LIST" --via="$via" --op=put --clients=64 --conns=4 \
	--total=1000000 --timeout-ms=20000 --key-prefix=load >"$CLUSTER_DIR/load.out" 2>&1 &
load=$!
sleep 1.5
grep -q . "$CLUSTER_DIR/load.out" && fail "the load ended early: $(cat "$CLUSTER_DIR/load.out")"
for i in $(seq 1 "$N"); do [ "$i" -ne "$leader" ] && kill -STOP "${NODE_PID[$i]}"; done
sleep 0.3
node_stop "$leader" # it cannot hand over leadership: it stops after its 3 s, and must exit 0
for i in $(seq 1 "$N"); do [ "$i" -ne "$leader" ] && kill -CONT "${NODE_PID[$i]}"; done
kill "$load" 2>/dev/null
wait "$load" 2>/dev/null
node_start "$leader" --snapshot-bytes=8192 --snapshot-trailing=10
wait_leader >/dev/null

step "SIGTERM: every node exits 0"
for i in $(seq 1 "$N"); do node_stop "$i"; done
echo "cluster test passed ($N nodes)"
