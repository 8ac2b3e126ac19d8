#!/usr/bin/awk -f
# vs-etcd-table.awk - the table of tests/bench/vs-etcd.sh from its raw lines (raw.txt in its work
# directory): medians over the rounds, ratios raftfs/etcd, the floors, the shell loops and the
# targets of issue 7, each marked met or MISSED. Usage: tests/bench/vs-etcd-table.awk RAW
#
# Raw lines are key=value fields: sys=raftfs|etcd wl=WORKLOAD round=R then a generator's line
# (op= conns= clients= total= ... qps= avg_ms= p50_ms= p90_ms= p99_ms= max_ms= errors= ...
# cpu_us_per_op= rss_mb=); sys=floor when=start|roundN|end fdatasync_us= append_fdatasync_us= rtt_us=
# floor_put_us= repl_floor_us=; sys=loop name=NAME ops_s= ms_op=.
# The TLS mode (VS_ETCD_TLS=1) has sys=raftfs-tls|raftfs-plain|etcd-tls instead of raftfs and etcd,
# and its own table and targets (issue 16).

# Median of the numbers in a space-separated list ("" when empty).
function median(list, a, n, i, j, t)
{
	n = split(list, a, " ")
	if (n == 0)
		return ""
	for (i = 2; i <= n; i++) {
		t = a[i] + 0
		for (j = i - 1; j >= 1 && a[j] + 0 > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}

# The TLS mode's table: raftfs with TLS beside etcd with TLS and beside raftfs without TLS.
function tls_table(i, j, w, c, t, p, e, r1, r2, cs)
{
	printf "Medians over the rounds; tls/etcd = raftfs with TLS / etcd with TLS, tls/plain = raftfs with TLS / without.\n"
	printf "%-6s %7s %4s | %9s %9s %9s | %8s %9s | %20s | %20s | %s\n", "op", "clients", "runs",
		"rf-tls/s", "rf/s", "etcd-tls/s", "tls/etcd", "tls/plain", "p50 ms tls/plain/etcd",
		"p99 ms tls/plain/etcd", "cpu us/op tls/plain/etcd"
	for (i = 1; i <= n_wl; i++) {
		w = wl_order[i]
		for (j = 1; j <= n_cl; j++) {
			c = cl_order[j]
			if (!runs["raftfs-tls", w, c])
				continue
			t = med("qps", "raftfs-tls", w, c)
			p = med("qps", "raftfs-plain", w, c)
			e = med("qps", "etcd-tls", w, c)
			printf "%-6s %7d %4d | %9s %9s %9s | %8s %9s | %6s/%6s/%6s | %6s/%6s/%6s | %s/%s/%s\n",
				w, c, runs["raftfs-tls", w, c], fmt(t, "%.0f"), fmt(p, "%.0f"), fmt(e, "%.0f"),
				fmt_ratio(ratio(t, e)), fmt_ratio(ratio(t, p)),
				fmt(med("p50_ms", "raftfs-tls", w, c), "%.2f"),
				fmt(med("p50_ms", "raftfs-plain", w, c), "%.2f"),
				fmt(med("p50_ms", "etcd-tls", w, c), "%.2f"),
				fmt(med("p99_ms", "raftfs-tls", w, c), "%.2f"),
				fmt(med("p99_ms", "raftfs-plain", w, c), "%.2f"),
				fmt(med("p99_ms", "etcd-tls", w, c), "%.2f"),
				fmt(med("cpu_us_per_op", "raftfs-tls", w, c), "%.0f"),
				fmt(med("cpu_us_per_op", "raftfs-plain", w, c), "%.0f"),
				fmt(med("cpu_us_per_op", "etcd-tls", w, c), "%.0f")
		}
	}
	printf "Errors: raftfs with TLS %d, without %d, etcd with TLS %d. Peak RSS at the end, MB: raftfs %s, etcd %s\n",
		sum_errors("raftfs-tls"), sum_errors("raftfs-plain"), sum_errors("etcd-tls"),
		rss["raftfs-tls"] == "" ? "-" : rss["raftfs-tls"], rss["etcd-tls"] == "" ? "-" : rss["etcd-tls"]
	printf "\nTargets of issue 16:\n"
	split("16 64 1000", cs, " ")
	for (j = 1; j <= 3; j++) {
		c = cs[j]
		if (!runs["raftfs-tls", "put", c] || !runs["etcd-tls", "put", c])
			continue
		r1 = ratio(med("qps", "raftfs-tls", "put", c), med("qps", "etcd-tls", "put", c))
		printf "  put with TLS >= 3x etcd with TLS at %4d clients: %s: %s\n", c, fmt_ratio(r1),
			verdict(r1 >= 3)
	}
	if (runs["raftfs-tls", "put", 64] && runs["raftfs-plain", "put", 64]) {
		r2 = ratio(med("qps", "raftfs-tls", "put", 64), med("qps", "raftfs-plain", "put", 64))
		printf "  put with TLS loses <= 15%% of plaintext at 64 clients: %s (%.1f%% lost): %s\n",
			fmt_ratio(r2), (1 - r2) * 100, verdict(r2 >= 0.85)
	}
}

function sum_errors(sys, k, n, parts)
{
	n = 0
	for (k in errors) {
		split(k, parts, SUBSEP)
		if (parts[1] == sys)
			n += errors[k]
	}
	return n
}

# The etcd workload a raftfs workload is compared with ("" for none).
function counterpart(w)
{
	if (w == "put" || w == "append" || w == "fs-put" || w == "fs-append")
		return "put"
	if (w == "get-l" || w == "fs-get-l")
		return "get-l"
	return ""
}

function med(what, sys, w, c)
{
	return median(vals[what, sys, w, c])
}

function ratio(a, b)
{
	return (a == "" || b == "" || b + 0 == 0) ? "" : a / b
}

function fmt_ratio(r)
{
	return r == "" ? "-" : sprintf("%.2fx", r)
}

function fmt(v, f)
{
	return v == "" ? "-" : sprintf(f, v)
}

function verdict(ok)
{
	return ok ? "met" : "MISSED"
}

{
	split("", f)
	for (i = 1; i <= NF; i++) {
		p = index($i, "=")
		if (p)
			f[substr($i, 1, p - 1)] = substr($i, p + 1)
	}
	if (f["sys"] == "floor") {
		for (k in f)
			if (k != "sys" && k != "when")
				floor[k] = floor[k] " " f[k]
		floor_when[f["when"]] = $0
		next
	}
	if (f["sys"] == "loop") {
		loops[f["name"]] = loops[f["name"]] " " f["ops_s"]
		n_loop++
		next
	}
	if (f["sys"] == "raftfs-tls" || f["sys"] == "raftfs-plain" || f["sys"] == "etcd-tls")
		tls_mode = 1
	else if (f["sys"] != "raftfs" && f["sys"] != "etcd")
		next
	s = f["sys"]
	w = f["wl"]
	c = f["clients"] + 0
	split("qps p50_ms p99_ms cpu_us_per_op", keys, " ")
	for (k = 1; k <= 4; k++)
		vals[keys[k], s, w, c] = vals[keys[k], s, w, c] " " f[keys[k]]
	errors[s, w, c] += f["errors"]
	runs[s, w, c]++
	rss[s] = f["rss_mb"]
	if ((s == "raftfs" || s == "raftfs-tls") && !(w in wl_seen)) {
		wl_seen[w] = 1
		wl_order[++n_wl] = w
	}
	if (!(c in cl_seen)) {
		cl_seen[c] = 1
		cl_order[++n_cl] = c
	}
}

END {
	# clients in increasing order
	for (i = 2; i <= n_cl; i++) {
		t = cl_order[i]
		for (j = i - 1; j >= 1 && cl_order[j] > t; j--)
			cl_order[j + 1] = cl_order[j]
		cl_order[j + 1] = t
	}
	fsync_us = median(floor["fdatasync_us"])
	append_us = median(floor["append_fdatasync_us"])
	rtt_us = median(floor["rtt_us"])
	floor_put_us = median(floor["floor_put_us"])
	repl_floor_us = median(floor["repl_floor_us"])
	printf "Floors (medians of the measurements at the start, between the rounds and at the end):\n"
	printf "  fdatasync of a 512-byte overwrite %s us, of a 256-byte append %s us; loopback TCP round trip %s us\n",
		fmt(fsync_us, "%.1f"), fmt(append_us, "%.1f"), fmt(rtt_us, "%.1f")
	printf "  put floor (one fdatasync + two round trips) %s us\n", fmt(floor_put_us, "%.1f")
	printf "  replicated floor (three threads' logs, each fdatasynced, on this disk; bench_kv --floor) %s us\n\n",
		fmt(repl_floor_us, "%.1f")
	if (tls_mode) {
		tls_table()
		exit
	}

	printf "Medians over the rounds (runs per cell in the runs column); ratio = raftfs qps / etcd qps.\n"
	printf "%-9s %7s %4s | %9s %9s %7s | %15s | %17s | %13s | %s\n", "workload", "clients",
		"runs", "raftfs/s", "etcd/s", "ratio", "p50 ms rf/etcd", "p99 ms rf/etcd",
		"cpu us/op r/e", "errors r/e"
	for (i = 1; i <= n_wl; i++) {
		w = wl_order[i]
		e = counterpart(w)
		for (j = 1; j <= n_cl; j++) {
			c = cl_order[j]
			if (!runs["raftfs", w, c])
				continue
			rq = med("qps", "raftfs", w, c)
			eq = e == "" ? "" : med("qps", "etcd", e, c)
			printf "%-9s %7d %4d | %9s %9s %7s | %7s/%-7s | %8s/%-8s | %6s/%-6s | %d/%s\n", w, c,
				runs["raftfs", w, c], fmt(rq, "%.0f"), fmt(eq, "%.0f"), fmt_ratio(ratio(rq, eq)),
				fmt(med("p50_ms", "raftfs", w, c), "%.2f"),
				fmt(e == "" ? "" : med("p50_ms", "etcd", e, c), "%.2f"),
				fmt(med("p99_ms", "raftfs", w, c), "%.2f"),
				fmt(e == "" ? "" : med("p99_ms", "etcd", e, c), "%.2f"),
				fmt(med("cpu_us_per_op", "raftfs", w, c), "%.0f"),
				fmt(e == "" ? "" : med("cpu_us_per_op", "etcd", e, c), "%.0f"),
				errors["raftfs", w, c], e == "" ? "-" : errors["etcd", e, c] + 0
		}
	}
	printf "(etcd columns of append and fs-put/fs-append are etcd's put, of fs-get-l etcd's get-l;\n"
	printf " mix has no etcd counterpart.) Peak RSS at the end, MB: raftfs %s, etcd %s\n",
		rss["raftfs"] == "" ? "-" : rss["raftfs"], rss["etcd"] == "" ? "-" : rss["etcd"]

	for (k in loops)
		loop[k] = median(loops[k])
	if (n_loop > 0) {
		printf "\nShell loops (medians over the loop rounds): echo v > MNT/k$i %s ops/s (on the leader's mount %s), etcdctl put k$i v %s ops/s, raftfsctl put %s ops/s\n",
			fmt(loop["echo-mount"], "%.0f"), fmt(loop["echo-mount-leader"], "%.0f"),
			fmt(loop["etcdctl-put"], "%.0f"), fmt(loop["raftfsctl-put"], "%.0f")
		if (loop["echo-mount-same"] != "")
			printf "Same key each time: echo v > MNT/f %s ops/s (on the leader's mount %s), etcdctl put f v %s ops/s\n",
				fmt(loop["echo-mount-same"], "%.0f"), fmt(loop["echo-mount-same-leader"], "%.0f"),
				fmt(loop["etcdctl-put-same"], "%.0f")
	}

	printf "\nTargets of issue 7:\n"
	for (i = 1; i <= 2; i++) {
		w = i == 1 ? "put" : "append"
		split("16 64 1000", cs, " ")
		for (j = 1; j <= 3; j++) {
			c = cs[j]
			if (!runs["raftfs", w, c] || !runs["etcd", "put", c])
				continue
			r = ratio(med("qps", "raftfs", w, c), med("qps", "etcd", "put", c))
			p = med("p99_ms", "raftfs", w, c)
			q = med("p99_ms", "etcd", "put", c)
			printf "  %-6s >= 3x etcd put at %4d clients, p99 <= etcd's: %s, p99 %.2f vs %.2f ms: %s\n",
				w, c, fmt_ratio(r), p, q, verdict(r >= 3 && p <= q)
		}
	}
	split("1000 1", cs, " ")
	for (j = 1; j <= 2; j++) {
		c = cs[j]
		want = c == 1 ? 3 : 5
		if (!runs["raftfs", "get-l", c] || !runs["etcd", "get-l", c])
			continue
		r = ratio(med("qps", "raftfs", "get-l", c), med("qps", "etcd", "get-l", c))
		printf "  get-l  >= %dx etcd get-l at %4d clients: %s: %s\n", want, c, fmt_ratio(r),
			verdict(r >= want)
	}
	if (runs["raftfs", "put", 1] && floor_put_us != "") {
		p = med("p50_ms", "raftfs", "put", 1) * 1000
		printf "  put p50 at 1 client <= 1.5x the floor (%.0f us): %.0f us = %.2fx the floor: %s\n",
			floor_put_us, p, p / floor_put_us, verdict(p <= 1.5 * floor_put_us)
		if (repl_floor_us != "")
			printf "    (the replicated floor is %.0f us = %.2fx the floor; the put is %.2fx it)\n",
				repl_floor_us, repl_floor_us / floor_put_us, p / repl_floor_us
	}
	if (runs["raftfs", "fs-put", 16] && runs["etcd", "put", 16]) {
		r = ratio(med("qps", "raftfs", "fs-put", 16), med("qps", "etcd", "put", 16))
		printf "  fs-put (O_TRUNC) at 16 writers >= etcd put at 16 clients: %s: %s\n",
			fmt_ratio(r), verdict(r >= 1)
	}
	split("echo-mount etcdctl-put new keys, follower|echo-mount-leader etcdctl-put new keys, leader|echo-mount-same etcdctl-put-same same key, follower|echo-mount-same-leader etcdctl-put-same same key, leader", ls, "|")
	for (j = 1; j in ls; j++) {
		split(ls[j], lw, " ")
		if (loop[lw[1]] == "" || loop[lw[2]] == "")
			continue
		r = ratio(loop[lw[1]], loop[lw[2]])
		printf "  shell loop echo v > f >= 20x etcdctl put (%s %s's mount): %s: %s\n", lw[3] " " lw[4],
			lw[5], fmt_ratio(r), verdict(r >= 20)
	}
}
