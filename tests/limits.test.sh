#!/bin/bash
# limits.test.sh - one value limit from the option to the log: --max-value-bytes above what one
# log entry holds is refused at start, and a value over the limit is refused with a clear
# message from raftfsctl while every node keeps serving (it once reached storage, whose refusal
# stopped each node that appended it: "fatal: persist: append: entry N has 17825842 bytes").
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/cluster.sh
trap cluster_cleanup EXIT

MIB=$((1024 * 1024))
cluster_init 3
# bytes FILE N: N bytes of a repeating pattern
bytes() { head -c "$2" /dev/zero | tr '\0' 'v' >"$1"; }
bytes "$CLUSTER_DIR/17m" $((17 * MIB))
bytes "$CLUSTER_DIR/16m" $((16 * MIB))
bytes "$CLUSTER_DIR/2m" $((2 * MIB))

alive() { # alive: fails the test unless every node is running
	for i in 1 2 3; do
		kill -0 "${NODE_PID[$i]}" 2>/dev/null || fail "node $i died: $(tail -n 3 "$CLUSTER_DIR/log$i")"
	done
}

step "--max-value-bytes=32M (over what one log entry holds) is refused at start"
for i in 1 2 3; do node_start "$i" --max-value-bytes=32M; done
sleep 2
started=0
for i in 1 2 3; do
	if kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
		started=$((started + 1))
	else
		wait "${NODE_PID[$i]}"
		rc=$?
		NODE_PID[$i]=""
		[ "$rc" -eq 1 ] || fail "node $i refused --max-value-bytes=32M with exit $rc, not 1"
		grep -q -- "--max-value-bytes=32M: expected a number from 1 to 16777216" \
			"$CLUSTER_DIR/log$i" || fail "node $i: no clear message: $(cat "$CLUSTER_DIR/log$i")"
	fi
done
if [ "$started" -gt 0 ]; then
	# the option was taken: show what the value that passes its check does to the cluster
	wait_leader >/dev/null
	ctl put k - <"$CLUSTER_DIR/17m"
	sleep 2
	alive
	fail "$started nodes started with --max-value-bytes=32M"
fi
echo "  $(head -n 1 "$CLUSTER_DIR/log1")"
for i in 1 2 3; do : >"$CLUSTER_DIR/log$i"; done

step "at the largest limit (16M): a 17 MiB value gets a message, every node keeps serving"
for i in 1 2 3; do node_start "$i" --max-value-bytes=16M; done
wait_leader >/dev/null || exit 1
ctl put before ok || fail "put before"
for try in 1 2 3; do # retries once took down every leader in turn
	if out=$(ctl put k - <"$CLUSTER_DIR/17m" 2>&1); then
		fail "a 17 MiB value was accepted"
	fi
	grep -q "larger than 16777216 bytes" <<<"$out" || fail "unclear message: '$out'"
	[ "$try" -gt 1 ] || echo "  $out"
done
alive
[ -z "$(ctl get k)" ] || fail "the refused value was stored"

step "exactly 16 MiB is stored and read back from every node"
ctl put k - <"$CLUSTER_DIR/16m" || fail "a 16 MiB value was refused"
for i in 1 2 3; do
	ctl_node "$i" get k | cmp -s - "$CLUSTER_DIR/16m" || fail "node $i reads another value"
done
alive
for i in 1 2 3; do node_stop "$i"; done

step "a cluster at 1M: a 2 MiB value is refused with 'value too large', nothing stops"
for i in 1 2 3; do rm -rf "$CLUSTER_DIR/data$i"; done
for i in 1 2 3; do node_start "$i" --max-value-bytes=1M; done
wait_leader >/dev/null || exit 1
for i in 1 2 3; do
	if out=$(ctl_node "$i" put small - <"$CLUSTER_DIR/2m" 2>&1); then
		fail "a 2 MiB value was accepted at 1M through node $i"
	fi
	grep -q "value too large" <<<"$out" || fail "unclear message through node $i: '$out'"
done
echo "  $out"
ctl append small - <"$CLUSTER_DIR/2m" >/dev/null 2>&1 && fail "a 2 MiB append was accepted"
alive
ctl put after ok || fail "put after"
[ "$(ctl get before)" = "" ] || fail "a value from another cluster"
[ "$(ctl get after)" = ok ] || fail "lost a value"
for i in 1 2 3; do node_stop "$i"; done
echo "limits test passed"
