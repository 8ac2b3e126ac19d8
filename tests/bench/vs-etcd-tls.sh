# vs-etcd-tls.sh - the TLS mode of tests/bench/vs-etcd.sh (VS_ETCD_TLS=1), sourced by it after
# its set-up (work directory, cleanup, the plain generator built, which installs etcd and Go).
#
# Certificates from scripts/make-certs.sh (ECDSA P-256). etcd: 3 members on 127.0.0.1 (client
# ports 3247x, peer ports 3248x) with --cert-file/--key-file, --client-cert-auth and
# --trusted-ca-file on the client side and --peer-cert-file/--peer-key-file,
# --peer-client-cert-auth and --peer-trusted-ca-file on the peer side; its load generator is the
# shared one with TLS added (tests/bench/etcd-tls/tls.go). raftfs: 3 nodes on 127.0.0.1-3 with
# --cert-file, --key-file, --peer-trusted-ca-file and --trusted-ca-file, then the same nodes (the
# same data directories) restarted without TLS; bench_kv with --cacert, --cert, --key against
# the first. No mounts: what TLS changes is the network (a mount's requests reach its node
# without it). Rounds alternate which system goes first; every cell is the median over the
# rounds. The targets (issue 16): raftfs with TLS >= 3x etcd with TLS in put throughput at 16,
# 64 and 1000 clients, and within 15% of raftfs without TLS at 64 clients.

WORKLOADS=${VS_ETCD_WORKLOADS:-put get-l}
CERTS=$WORK/certs
scripts/make-certs.sh "$CERTS" 1=127.0.0.1 2=127.0.0.2 3=127.0.0.3 client=client >/dev/null ||
	fail "make-certs.sh failed"
CLIENT_TLS=(--cacert="$CERTS/ca.pem" --cert="$CERTS/client.pem" --key="$CERTS/client.key")

# --- etcd with TLS ------------------------------------------------------------------------------

ETCD_TLS_GEN=$WORK/bench-etcd-tls
gp=$(mktemp -d)
mkdir -p "$gp/src/benchetcdtls"
sed 's|clientv3.New(clientv3.Config{Endpoints: strings.Split(\*eps, ","), DialTimeout: 5 \* time.Second})|clientv3.New(clientConfig(strings.Split(*eps, ",")))|' \
	"$BENCH_ETCD/main.go" >"$gp/src/benchetcdtls/main.go"
grep -q clientConfig "$gp/src/benchetcdtls/main.go" ||
	fail "the shared generator's clientv3.Config line changed: tests/bench/etcd-tls/tls.go no longer fits"
cp tests/bench/etcd-tls/tls.go "$gp/src/benchetcdtls/"
(cd "$gp/src/benchetcdtls" && GOPATH="$gp:/usr/share/gocode" GO111MODULE=off GOFLAGS= \
	go build -o "$ETCD_TLS_GEN" .) >"$WORK/build-tls.log" 2>&1 ||
	fail "building the TLS generator: $(tail -n 5 "$WORK/build-tls.log")"
rm -rf "$gp"

# cluster.sh stop of the shared scripts reads $ETCD_DIR/pids: the EXIT trap stops these too
ETCD_DIR=$WORK/etcd-tls
mkdir -p "$ETCD_DIR"
: >"$ETCD_DIR/pids"
ecl=""
EPS=""
for i in 1 2 3; do
	ecl="$ecl${ecl:+,}m$i=https://127.0.0.1:3248$i"
	EPS="$EPS${EPS:+,}127.0.0.1:3247$i"
done
for i in 1 2 3; do
	etcd --name "m$i" --data-dir "$ETCD_DIR/m$i" \
		--listen-client-urls "https://127.0.0.1:3247$i" \
		--advertise-client-urls "https://127.0.0.1:3247$i" \
		--listen-peer-urls "https://127.0.0.1:3248$i" \
		--initial-advertise-peer-urls "https://127.0.0.1:3248$i" \
		--initial-cluster "$ecl" --initial-cluster-token bench-tls --initial-cluster-state new \
		--cert-file "$CERTS/node1.pem" --key-file "$CERTS/node1.key" --client-cert-auth \
		--trusted-ca-file "$CERTS/ca.pem" \
		--peer-cert-file "$CERTS/node1.pem" --peer-key-file "$CERTS/node1.key" \
		--peer-client-cert-auth --peer-trusted-ca-file "$CERTS/ca.pem" \
		>"$ETCD_DIR/m$i.log" 2>&1 &
	echo $! >>"$ETCD_DIR/pids"
done
ETCD_PIDS=$(tr '\n' ' ' <"$ETCD_DIR/pids")
etcd_ok=0
for _ in $(seq 1 50); do
	if ETCDCTL_API=3 timeout 5 etcdctl --endpoints="https://127.0.0.1:32471" \
		--cacert="$CERTS/ca.pem" --cert="$CERTS/client.pem" --key="$CERTS/client.key" \
		endpoint health >/dev/null 2>&1; then
		etcd_ok=1
		break
	fi
	sleep 0.2
done
[ "$etcd_ok" = 1 ] || fail "etcd with TLS did not start: $(tail -n 3 "$ETCD_DIR/m1.log")"

# --- raftfs, with TLS and without ---------------------------------------------------------------

cluster_init 3 "$PORT_BASE"
RF_MODE=""
rf_start() { # rf_start tls|plain: the three nodes in that mode (on the same data)
	local i c=$CERTS tls=()
	for i in 1 2 3; do
		[ "$1" = tls ] && tls=(--cert-file="$c/node$i.pem" --key-file="$c/node$i.key"
			--peer-trusted-ca-file="$c/ca.pem" --trusted-ca-file="$c/ca.pem")
		"$RAFTFS" --id="$i" --cluster="$CLUSTER_LIST" --data="$CLUSTER_DIR/data$i" -f \
			"${tls[@]}" >>"$CLUSTER_DIR/log$i" 2>&1 &
		NODE_PID[$i]=$!
	done
	RF_MODE=$1
	RF_PIDS="${NODE_PID[1]},${NODE_PID[2]},${NODE_PID[3]}"
	for _ in $(seq 1 150); do
		rf_ctl --timeout=1 put warm-"$1" v >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "raftfs ($1) does not serve"
}
rf_stop() {
	local i
	for i in 1 2 3; do node_stop "$i"; done
}
rf_client_tls() { [ "$RF_MODE" = tls ] && printf '%s\n' "${CLIENT_TLS[@]}"; }
rf_ctl() {
	# shellcheck disable=SC2046
	env -u RAFTFS_CACERT -u RAFTFS_CERT -u RAFTFS_KEY timeout 30 "$RAFTFSCTL" \
		--cluster="$CLUSTER_LIST" $(rf_client_tls) "$@"
}

tls_rf_run() { # tls_rf_run ROUND WORKLOAD CLIENTS
	local r=$1 w=$2 c=$3 n conns line sys=raftfs-$RF_MODE
	n=$(total_for "$w" "$c")
	conns=$(conns_for "$c")
	# shellcheck disable=SC2046
	step env -u RAFTFS_CACERT -u RAFTFS_CERT -u RAFTFS_KEY "$BENCH_KV" \
		--cluster="$CLUSTER_LIST" --conns="$conns" --op="$w" --clients="$c" --total="$n" \
		--val-size="$VAL" --pids="$RF_PIDS" $(rf_client_tls) \
		>"$WORK/out" 2>>"$WORK/bench_kv.err"
	line=$(generator_line "$sys" "$w" "$c") || return
	echo "sys=$sys wl=$w round=$r $line" >>"$RAW"
	printf '  %-12s %s\n' "$sys" "$line"
}
tls_etcd_run() { # tls_etcd_run ROUND OP CLIENTS
	local r=$1 op=$2 c=$3 n conns line t0 t1 cpu
	n=$(total_for "$op" "$c")
	conns=$(conns_for "$c")
	# shellcheck disable=SC2086
	t0=$(pids_ticks $ETCD_PIDS)
	step "$ETCD_TLS_GEN" --endpoints="$EPS" --conns="$conns" --clients="$c" --total="$n" \
		--op="$op" --val-size="$VAL" "${CLIENT_TLS[@]}" >"$WORK/out" 2>>"$WORK/bench-etcd.err"
	# shellcheck disable=SC2086
	t1=$(pids_ticks $ETCD_PIDS)
	line=$(generator_line etcd-tls "$op" "$c") || return
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$HZ" \
		'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
	# shellcheck disable=SC2086
	line="$line cpu_us_per_op=$cpu rss_mb=$(pids_rss $ETCD_PIDS)"
	echo "sys=etcd-tls wl=$op round=$r $line" >>"$RAW"
	printf '  %-12s %s\n' etcd-tls "$line"
}
tls_block() { # tls_block ROUND SYSTEM: every client count and workload of one system
	local c w
	case $2 in
	etcd-tls)
		for c in $CLIENT_COUNTS; do
			for w in $WORKLOADS; do tls_etcd_run "$1" "$w" "$c"; done
		done
		;;
	*)
		rf_start "${2#raftfs-}"
		for c in $CLIENT_COUNTS; do
			for w in $WORKLOADS; do tls_rf_run "$1" "$w" "$c"; done
		done
		rf_stop
		;;
	esac
}

# warm-up of each, outside the measurements
step "$ETCD_TLS_GEN" --endpoints="$EPS" --clients=4 --total=400 --op=put "${CLIENT_TLS[@]}" \
	>/dev/null || fail "warm-up of etcd with TLS"

echo "== machine"
echo "nproc: $(nproc)   memory: $(free -g | awk '/^Mem:/ { print $2 " GiB" }')   kernel: $(uname -r)"
echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "etcd: $(etcd --version 2>/dev/null | head -n 1) with TLS, members $EPS, pids $ETCD_PIDS"
echo "raftfs: $CLUSTER_LIST, with TLS and without (restarted on the same data)"
echo "openssl: $(openssl version)"
echo "rounds $ROUNDS, operations at $SCALE%, clients: $CLIENT_COUNTS, workloads: $WORKLOADS"
echo "work directory: $WORK"
echo
floor_run start
for r in $(seq 1 "$ROUNDS"); do
	echo "== round $r"
	case $((r % 3)) in
	1) order="etcd-tls raftfs-tls raftfs-plain" ;;
	2) order="raftfs-tls raftfs-plain etcd-tls" ;;
	*) order="raftfs-plain etcd-tls raftfs-tls" ;;
	esac
	for sys in $order; do tls_block "$r" "$sys"; done
done
floor_run end
echo
tests/bench/vs-etcd-table.awk "$RAW" | tee "$WORK/table.txt"
