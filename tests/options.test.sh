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

echo "--- a bad config line is named with its file and line"
printf 'id = 1\nsnapshot-bytes = lots\n' >"$CLUSTER_DIR/bad.conf"
expect_error "bad.conf:2" --config="$CLUSTER_DIR/bad.conf"
echo "options test passed"
