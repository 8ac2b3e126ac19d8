#!/bin/bash
# run-cluster.sh - a local 3-node raftfs cluster on 127.0.0.1-127.0.0.3 for trying it out.
# Installs what is missing, builds, starts the nodes with their data and logs under run/, each
# mounted on run/mnt1..mnt3, prints how to use them, and on Ctrl-C (or any exit) stops the nodes it
# started (SIGTERM, by PID) and unmounts everything (fusermount3 -u, then -u -z).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/install-deps.sh
if [ ! -f Makefile ]; then
	./configure >/dev/null
fi
make -j"$(nproc)" >/dev/null

run=${RAFTFS_RUN_DIR:-$root/run}
base_port=${RAFTFS_BASE_PORT:-7000}
mkdir -p "$run"
cluster="1=127.0.0.1:$((base_port + 1)),2=127.0.0.2:$((base_port + 2)),3=127.0.0.3:$((base_port + 3))"
pids=()

stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping the cluster..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for i in 1 2 3; do
		if grep -qs " $run/mnt$i " /proc/self/mounts; then
			fusermount3 -u "$run/mnt$i" 2>/dev/null || fusermount3 -u -z "$run/mnt$i" || true
		fi
		# the whole cluster stops on purpose: plain directories again (raftfs keeps a bare
		# mountpoint immutable, so that writes meant for the cluster fail while it is down)
		fs/raftfs --unguard "$run/mnt$i" 2>/dev/null || true
	done
	echo "stopped; data and logs are in $run"
	exit 0
}
trap stop INT TERM EXIT

for i in 1 2 3; do
	mkdir -p "$run/mnt$i"
	fs/raftfs --id="$i" --cluster="$cluster" --data="$run/data$i" -f -o auto_unmount \
		"$run/mnt$i" >>"$run/node$i.log" 2>&1 &
	pids+=($!)
done

ctl="$root/kv/raftfsctl --cluster=$cluster"
for _ in $(seq 1 100); do
	if $ctl status 2>/dev/null | grep -q leader; then
		break
	fi
	sleep 0.1
done
$ctl status || true
cat <<USAGE

raftfs is running: 3 nodes on 127.0.0.1-127.0.0.3, ports $((base_port + 1))-$((base_port + 3)).
Data and logs: $run (node1.log, node2.log, node3.log)

Each node mounts the namespace on $run/mnt1, mnt2, mnt3:

  echo hi > $run/mnt1/greeting; cat $run/mnt3/greeting

  export RAFTFS_CLUSTER=$cluster
  kv/raftfsctl put greeting hello
  kv/raftfsctl append greeting ", world"
  kv/raftfsctl get greeting
  kv/raftfsctl status
  kill -9 <pid of the leader>        # the others elect a new one and keep serving

Node PIDs: ${pids[*]}. Press Ctrl-C to stop the cluster.
USAGE
wait
