#!/bin/bash
# options.test.sh - raftfs's command line: --help and --version, clear errors for bad options,
# a --config file, and the same options as -o name=value (an /etc/fstab line), each starting a
# one-node cluster that serves and stops with exit 0 on SIGTERM.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/cluster.sh
trap cluster_cleanup EXIT

expect_error() { # expect_error "message part" raftfs args...: exit 1 with that message
	local want=$1 out rc
	shift
	out=$("$RAFTFS" "$@" 2>&1)
	rc=$?
	[ "$rc" -eq 1 ] || fail "raftfs $*: exit $rc, expected 1"
	grep -q -- "$want" <<<"$out" || fail "raftfs $*: message '$out' lacks '$want'"
	echo "  raftfs $*: $out" | head -n 1
}

# serve_and_stop ARGS...: start a one-node cluster with ARGS, write and read, SIGTERM -> exit 0
serve_and_stop() {
	local value=$1
	shift
	"$RAFTFS" "$@" >>"$CLUSTER_DIR/log1" 2>&1 &
	NODE_PID[1]=$!
	for _ in $(seq 1 50); do
		ctl --timeout=0.5 put k "$value" >/dev/null 2>&1 && break
		sleep 0.1
	done
	[ "$(ctl get k)" = "$value" ] || fail "one-node cluster started with $* does not serve"
	node_stop 1
}

echo "--- help, version and errors"
"$RAFTFS" --help | grep -q -- "--cluster" || fail "--help does not describe --cluster"
"$RAFTFS" --version | grep -q "^raftfs " || fail "--version"
expect_error "--id is required"
expect_error "--cluster is required" --id=1
expect_error "expected a number" --id=one --cluster=1=127.0.0.1:7001 --data=/tmp/x
expect_error "unknown option" --id=1 --bogus=2
expect_error "not in --cluster" --id=4 --cluster=1=127.0.0.1:7001 --data="$(mktemp -d)"
expect_error "--cluster" --id=1 --cluster=1=127.0.0.1 --data="$(mktemp -d)"
expect_error "expected debug, info, warn or error" --id=1 --log-level=loud

cluster_init 1
echo "--- a --config file"
cat >"$CLUSTER_DIR/raftfs.conf" <<CONF
# raftfs configuration
id = 1
cluster = $CLUSTER_LIST
data = $CLUSTER_DIR/data1
tick-ms = 20   # fast elections for the test
CONF
serve_and_stop from-config --config="$CLUSTER_DIR/raftfs.conf" -f

echo "--- the same as -o options, as an fstab line gives them"
serve_and_stop from-dash-o -f -o "id=1,cluster=$CLUSTER_LIST,data=$CLUSTER_DIR/data1,tick-ms=20"

echo "--- security: TLS where the cluster leaves the machine, modes checked at every mount"
expect_error "--insecure-plaintext" --id=1 --cluster=1=10.255.0.1:7001,2=127.0.0.2:7002 \
	--data="$CLUSTER_DIR/data1"
expect_error "together" --id=1 --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data1" \
	--cert-file=/nonexistent.pem
expect_error "exclude each other" --id=1 --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data1" \
	--cert-file=a --key-file=b --peer-trusted-ca-file=c --insecure-plaintext
expect_error "certificate /nonexistent.pem" --id=1 --cluster="$CLUSTER_LIST" -f \
	--data="$CLUSTER_DIR/data1" --cert-file=/nonexistent.pem --key-file=/nonexistent.key \
	--peer-trusted-ca-file=/nonexistent-ca.pem
expect_error "expected CN:UID:GID" --id=1 --cluster="$CLUSTER_LIST" --client-identity=alice
expect_error "needs -o default_permissions" --id=1 --cluster="$CLUSTER_LIST" \
	--data="$CLUSTER_DIR/data1" -o allow_other "$CLUSTER_DIR"
expect_error "expected a number" --id=1 --max-clients=0
echo "--- TLS options from a --config file, and a client with and without its certificate"
scripts/make-certs.sh "$CLUSTER_DIR/certs" "1=${NODE_ADDR[1]}" >/dev/null || fail "make-certs.sh"
cat >"$CLUSTER_DIR/tls.conf" <<CONF
id = 1
cluster = $CLUSTER_LIST
data = $CLUSTER_DIR/data1
tick-ms = 20
cert-file = $CLUSTER_DIR/certs/node1.pem
key-file = $CLUSTER_DIR/certs/node1.key
peer-trusted-ca-file = $CLUSTER_DIR/certs/ca.pem
trusted-ca-file = $CLUSTER_DIR/certs/ca.pem
CONF
(
	export RAFTFS_CACERT=$CLUSTER_DIR/certs/ca.pem RAFTFS_CERT=$CLUSTER_DIR/certs/client.pem
	export RAFTFS_KEY=$CLUSTER_DIR/certs/client.key
	serve_and_stop from-tls-config --config="$CLUSTER_DIR/tls.conf" -f
) || exit 1
grep -q "plaintext hello" "$CLUSTER_DIR/log1" && fail "a TLS client was taken for a plaintext one"
# start_one ARGS...: the one-node cluster with ARGS, serving (a put went through)
start_one() {
	"$RAFTFS" --id=1 --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data1" -f --tick-ms=20 \
		"$@" >>"$CLUSTER_DIR/log1" 2>&1 &
	NODE_PID[1]=$!
	for _ in $(seq 1 50); do
		ctl --timeout=0.5 put k started >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "a node started with $* does not serve"
}
echo "--- --insecure-plaintext is accepted (it is what a node beyond loopback needs to run without TLS)"
start_one --insecure-plaintext
node_stop 1

echo "--- limits: --max-clients refuses the newest; RLIMIT_NOFILE raised; SIGHUP reopens the log file"
(ulimit -Sn 1024 && exec "$RAFTFS" --id=1 --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data1" \
	-f --tick-ms=20 --max-clients=2 --log-file="$CLUSTER_DIR/node.log") &
NODE_PID[1]=$!
for _ in $(seq 1 50); do
	ctl --timeout=0.5 put k started >/dev/null 2>&1 && break
	sleep 0.1
done
soft=$(awk '/^Max open files/ { print $4 }' "/proc/${NODE_PID[1]}/limits")
hard=$(awk '/^Max open files/ { print $5 }' "/proc/${NODE_PID[1]}/limits")
[ "$soft" = "$hard" ] || fail "RLIMIT_NOFILE soft $soft, hard $hard: not raised"
out=$(timeout 30 tests/tools/raftfs_attack --cluster="$CLUSTER_LIST" hold --to=1 --conns=3 \
	--bytes=100 --hold-ms=300)
echo "  $out"
grep -q "1 closed" <<<"$out" || fail "the third of 3 clients was not refused at --max-clients=2"
grep -q "refusing client .*2 clients are connected (--max-clients)" "$CLUSTER_DIR/node.log" ||
	fail "no log line for the refused client"
[ "$(ctl get k)" = started ] || fail "no client served once the others had gone"
mv "$CLUSTER_DIR/node.log" "$CLUSTER_DIR/node.log.1"
kill -HUP "${NODE_PID[1]}"
for _ in $(seq 1 50); do
	[ -s "$CLUSTER_DIR/node.log" ] && break
	sleep 0.1
done
grep -q "SIGHUP: log file reopened" "$CLUSTER_DIR/node.log" || fail "SIGHUP did not reopen --log-file"
node_stop 1
echo "--- a hard RLIMIT_NOFILE below --max-clients lowers it, with a warning"
(ulimit -n 200 && exec "$RAFTFS" --id=1 --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data1" \
	-f --tick-ms=20) >>"$CLUSTER_DIR/log1" 2>&1 &
NODE_PID[1]=$!
for _ in $(seq 1 50); do
	ctl --timeout=0.5 put k started >/dev/null 2>&1 && break
	sleep 0.1
done
grep -q -- "--max-clients=1024 lowered to 54: RLIMIT_NOFILE is 200" "$CLUSTER_DIR/log1" ||
	fail "--max-clients was not lowered to the descriptors there are"
node_stop 1

echo "--- a bad config line is named with its file and line"
printf 'id = 1\nsnapshot-bytes = lots\n' >"$CLUSTER_DIR/bad.conf"
expect_error "bad.conf:2" --config="$CLUSTER_DIR/bad.conf"
echo "options test passed"
