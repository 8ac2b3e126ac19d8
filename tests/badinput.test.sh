#!/bin/bash
# badinput.test.sh - garbage, a wrong cluster id and an oversized frame sent to a peer port, and
# bad keys and values through raftfsctl: each gets a clear error and the node keeps serving.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/cluster.sh
trap cluster_cleanup EXIT

cluster_init 3
for i in 1 2 3; do node_start "$i" --max-value-bytes=65536; done
wait_leader >/dev/null || exit 1
ctl put before ok || fail "put before the bad input"

send_raw() { # send_raw NODE HEX: writes raw bytes to that node's cluster port
	local i=$1 hex=$2
	timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.$i/${NODE_PORT[$i]}; \
		printf '$hex' >&3; sleep 0.3; exec 3>&-" 2>/dev/null
}

echo "--- garbage bytes"
send_raw 1 'GET / HTTP/1.0\r\n\r\n'
echo "--- a peer hello naming another cluster (tests/test_transport checks each refusal reason)"
# magic "RFTP", version 1, kind peer, node 2, cluster id 0x1111..., a CRC that cannot match
send_raw 1 'RFTP\x01\x00\x01\x00\x02\x00\x00\x00\x11\x11\x11\x11\x11\x11\x11\x11\x00\x00\x00\x00'
echo "--- a huge frame length where a hello belongs"
send_raw 2 'RFTP\xff\xff\xff\x7f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff'
sleep 0.5
for i in 1 2; do
	kill -0 "${NODE_PID[$i]}" 2>/dev/null || fail "node $i died from bad input"
done
grep -qiE "hello|magic|cluster|refus|reject|malformed|closing" "$CLUSTER_DIR/log1" ||
	fail "node 1 did not log the bad connection"

echo "--- bad keys and values through raftfsctl"
for key in "" "a/../b" "/abs" "a//b" "$(printf 'x%.0s' $(seq 1 300))"; do
	if out=$(ctl put "$key" v 2>&1); then
		fail "put of bad key '$key' succeeded"
	fi
	[ -n "$out" ] || fail "put of bad key '$key' failed without a message"
	echo "  '${key:0:20}': $out"
done
head -c 70000 /dev/zero | tr '\0' 'x' >"$CLUSTER_DIR/big"
if out=$(ctl put big - <"$CLUSTER_DIR/big" 2>&1); then
	fail "a value over --max-value-bytes was accepted"
fi
echo "  value of 70000 bytes: $out"
[ "$(ctl get big)" = "" ] || fail "the oversized value was stored"

echo "--- the cluster still serves"
ctl put after ok || fail "put after the bad input"
[ "$(ctl get before)" = ok ] || fail "lost a value"
[ "$(ctl get after)" = ok ] || fail "lost a value"
for i in 1 2 3; do node_stop "$i"; done
echo "bad input test passed"
