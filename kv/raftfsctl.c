/* raftfsctl.c - a clerk on the command line: put, append, get, del and status (raftfsctl(1)). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/clerk.h"
#include "raft/raft.h"

#define RAFTFSCTL_VERSION "0.1"
#define RAFTFSCTL_DEFAULT_TIMEOUT_S 10.0
/* Longest --timeout accepted: a day (keeps milliseconds in 32 bits with room to spare). */
#define RAFTFSCTL_MAX_TIMEOUT_S 86400.0
/* `status` asks each node for at most this long (or --timeout if shorter), so a dead node costs
 * little and the table still comes out. */
#define RAFTFSCTL_STATUS_NODE_MS 2000u
#define RAFTFSCTL_STATUS_COLUMNS 9
#define RAFTFSCTL_CELL_BYTES 96

/* Every failure exits 1, usage errors included (DESIGN.md section 7: "Exit 0 on success; 1"). */
#define EXIT_FAIL 1

static const char usage_text[] =
        "usage: raftfsctl [--cluster=LIST] [--timeout=SECONDS] COMMAND [ARGS]\n"
        "commands:\n"
        "  put KEY VALUE      set KEY to VALUE ('-': standard input)\n"
        "  append KEY VALUE   append VALUE to KEY ('-': standard input)\n"
        "  get KEY            print the value of KEY (nothing for a missing key)\n"
        "  del KEY            delete KEY (a missing key is an error)\n"
        "  status             one line per node: role, term, indexes, leader, log\n"
        "options:\n"
        "  --cluster=LIST     1=127.0.0.1:7001,2=127.0.0.2:7002,... (default: $RAFTFS_CLUSTER)\n"
        "  --timeout=SECONDS  give up after this long (default 10)\n"
        "  --bind=ADDR        connect from this local IPv4 address (default: $RAFTFS_BIND,\n"
        "                     else the kernel's choice)\n"
        "  --cacert=FILE      TLS: the CA of the nodes' certificates ($RAFTFS_CACERT)\n"
        "  --cert=FILE        TLS: this client's certificate ($RAFTFS_CERT)\n"
        "  --key=FILE         TLS: its private key ($RAFTFS_KEY)\n"
        "  --help, --version\n";

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "raftfsctl: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_FAIL;
}

/* Reads all of standard input, at most KV_VALUE_BYTES_LIMIT bytes, into a malloc'd buffer the
 * caller frees. 0, or -1 after printing why. */
static int read_stdin(const char *what, char **out, size_t *out_len)
{
	size_t cap = 64u << 10, len = 0;
	char *buf = malloc(cap);

	if (!buf) {
		fprintf(stderr, "raftfsctl: %s: out of memory\n", what);
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap = cap * 2 > (size_t)KV_VALUE_BYTES_LIMIT + 1
			        ? (size_t)KV_VALUE_BYTES_LIMIT + 1
			        : cap * 2;
			char *nbuf;

			if (ncap == cap) {
				fprintf(stderr,
				        "raftfsctl: %s: value on standard input is larger than %u bytes\n",
				        what, KV_VALUE_BYTES_LIMIT);
				free(buf);
				return -1;
			}
			nbuf = realloc(buf, ncap);
			if (!nbuf) {
				fprintf(stderr, "raftfsctl: %s: out of memory\n", what);
				free(buf);
				return -1;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "raftfsctl: %s: read standard input: %s\n", what,
			        strerror(errno));
			free(buf);
			return -1;
		}
		len += (size_t)n;
	}
	if (len > KV_VALUE_BYTES_LIMIT) {
		fprintf(stderr, "raftfsctl: %s: value on standard input is larger than %u bytes\n",
		        what, KV_VALUE_BYTES_LIMIT);
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* Writes all of buf to standard output. 0 or -1. */
static int write_stdout(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Turns an outcome into the exit status, printing the one-line message of a failure. */
static int report(struct kv_clerk *c, const char *what, int outcome, const struct kv_result *r)
{
	const char *msg = kv_clerk_errmsg(c);

	if (outcome == KV_CLERK_APPLIED) {
		if (r->status == KV_OK)
			return 0;
		fprintf(stderr, "raftfsctl: %s: %s\n", what, kv_strerror(r->status));
		return EXIT_FAIL;
	}
	if (outcome == KV_CLERK_UNKNOWN) {
		fprintf(stderr,
		        "raftfsctl: %s: outcome unknown: it may or may not have been applied (%s)\n",
		        what, msg[0] ? msg : kv_strerror(r->status));
		return EXIT_FAIL;
	}
	/* Not applied: a local refusal names the kv error, a cluster failure the clerk's reason. */
	if (r->status != KV_EIO || !msg[0])
		fprintf(stderr, "raftfsctl: %s: %s\n", what, kv_strerror(r->status));
	else
		fprintf(stderr, "raftfsctl: %s: %s\n", what, msg);
	return EXIT_FAIL;
}

static int cmd_write(struct kv_clerk *c, const char *name, const char *key, const char *value,
                     uint32_t timeout_ms)
{
	char what[128];
	struct kv_result r;
	char *buf = NULL;
	size_t len;
	int outcome, rc;

	snprintf(what, sizeof(what), "%s %s", name, key);
	if (strcmp(value, "-") == 0) {
		if (read_stdin(what, &buf, &len) < 0)
			return EXIT_FAIL;
	} else {
		len = strlen(value);
	}
	if (strcmp(name, "put") == 0)
		outcome = kv_clerk_put(c, key, buf ? buf : value, len, timeout_ms, &r);
	else
		outcome = kv_clerk_append(c, key, buf ? buf : value, len, timeout_ms, &r);
	rc = report(c, what, outcome, &r);
	if (outcome == KV_CLERK_APPLIED)
		kv_result_release(&r);
	free(buf);
	return rc;
}

static int cmd_get(struct kv_clerk *c, const char *key, uint32_t timeout_ms)
{
	char what[128];
	struct kv_result r;
	int outcome, rc;

	snprintf(what, sizeof(what), "get %s", key);
	outcome = kv_clerk_get(c, key, timeout_ms, &r);
	rc = report(c, what, outcome, &r);
	if (rc == 0 && r.value_len && write_stdout(r.value, r.value_len) < 0) {
		fprintf(stderr, "raftfsctl: %s: write standard output: %s\n", what,
		        strerror(errno));
		rc = EXIT_FAIL;
	}
	if (outcome == KV_CLERK_APPLIED)
		kv_result_release(&r);
	return rc;
}

static int cmd_del(struct kv_clerk *c, const char *key, uint32_t timeout_ms)
{
	char what[128];
	struct kv_result r;
	int outcome, rc;

	snprintf(what, sizeof(what), "del %s", key);
	outcome = kv_clerk_del(c, key, timeout_ms, &r);
	rc = report(c, what, outcome, &r);
	if (outcome == KV_CLERK_APPLIED)
		kv_result_release(&r);
	return rc;
}

/* --- status ---------------------------------------------------------------------------------- */

static const char *const status_headers[RAFTFSCTL_STATUS_COLUMNS] = {
        "ID", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "LEADER", "LOG-BYTES", "SNAPSHOT",
};

struct status_row {
	char cell[RAFTFSCTL_STATUS_COLUMNS][RAFTFSCTL_CELL_BYTES];
};

/* One line of the table: columns left-aligned, two spaces apart, no trailing blanks. */
static void print_row(const char *const *cells, const size_t *width)
{
	for (int j = 0; j < RAFTFSCTL_STATUS_COLUMNS; j++) {
		if (j + 1 < RAFTFSCTL_STATUS_COLUMNS)
			printf("%-*s  ", (int)width[j], cells[j]);
		else
			printf("%s\n", cells[j]);
	}
}

static void cell_u64(char *cell, uint64_t v)
{
	snprintf(cell, RAFTFSCTL_CELL_BYTES, "%llu", (unsigned long long)v);
}

static int cmd_status(struct kv_clerk *c, uint32_t timeout_ms)
{
	unsigned n = kv_clerk_node_count(c), answered = 0;
	size_t width[RAFTFSCTL_STATUS_COLUMNS];
	struct status_row rows[RAFT_MAX_NODES];
	uint32_t node_ms =
	        timeout_ms < RAFTFSCTL_STATUS_NODE_MS ? timeout_ms : RAFTFSCTL_STATUS_NODE_MS;

	for (int j = 0; j < RAFTFSCTL_STATUS_COLUMNS; j++)
		width[j] = strlen(status_headers[j]);
	for (unsigned i = 0; i < n && i < RAFT_MAX_NODES; i++) {
		const struct raft_transport_peer *p = kv_clerk_node(c, i);
		struct kv_proto_node_status st;
		char(*cell)[RAFTFSCTL_CELL_BYTES] = rows[i].cell;

		cell_u64(cell[0], p->id);
		snprintf(cell[1], RAFTFSCTL_CELL_BYTES, "%s:%u", p->host, p->port);
		if (kv_clerk_status(c, p->id, &st, node_ms) == 0) {
			answered++;
			snprintf(cell[2], RAFTFSCTL_CELL_BYTES, "%s",
			         raft_role_name((enum raft_role)st.role));
			cell_u64(cell[3], st.term);
			cell_u64(cell[4], st.commit);
			cell_u64(cell[5], st.applied);
			if (st.leader)
				cell_u64(cell[6], st.leader);
			else
				snprintf(cell[6], RAFTFSCTL_CELL_BYTES, "-");
			cell_u64(cell[7], st.log_bytes);
			cell_u64(cell[8], st.snapshot_index);
		} else {
			snprintf(cell[2], RAFTFSCTL_CELL_BYTES, "unreachable");
			for (int j = 3; j < RAFTFSCTL_STATUS_COLUMNS; j++)
				snprintf(cell[j], RAFTFSCTL_CELL_BYTES, "-");
		}
		for (int j = 0; j < RAFTFSCTL_STATUS_COLUMNS; j++)
			if (strlen(cell[j]) > width[j])
				width[j] = strlen(cell[j]);
	}
	print_row(status_headers, width);
	for (unsigned i = 0; i < n && i < RAFT_MAX_NODES; i++) {
		const char *cells[RAFTFSCTL_STATUS_COLUMNS];

		for (int j = 0; j < RAFTFSCTL_STATUS_COLUMNS; j++)
			cells[j] = rows[i].cell[j];
		print_row(cells, width);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "raftfsctl: status: write standard output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	if (!answered) {
		fprintf(stderr, "raftfsctl: status: no node answered\n");
		return EXIT_FAIL;
	}
	return 0;
}

/* --- main ------------------------------------------------------------------------------------ */

/* Seconds ("10", "0.5") to milliseconds. 0, or -1 for anything else. */
static int parse_timeout(const char *s, uint32_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > RAFTFSCTL_MAX_TIMEOUT_S)
		return -1;
	*ms = (uint32_t)(v * 1000.0 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"cluster", required_argument, NULL, 'c'},
	        {"timeout", required_argument, NULL, 't'},
	        {"bind", required_argument, NULL, 'b'},
	        {"cacert", required_argument, NULL, 'A'},
	        {"cert", required_argument, NULL, 'C'},
	        {"key", required_argument, NULL, 'K'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	const char *cluster = NULL, *bind_addr = NULL, *cmd;
	struct kv_clerk_tls tls = {NULL, NULL, NULL};
	uint32_t timeout_ms = (uint32_t)(RAFTFSCTL_DEFAULT_TIMEOUT_S * 1000);
	char err[1024];
	struct kv_clerk *c;
	int opt, nargs, rc;

	/* '+': stop at the command, so a VALUE such as "-n" is never taken for an option. */
	while ((opt = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cluster = optarg;
			break;
		case 'b':
			bind_addr = optarg;
			break;
		case 'A':
			tls.cacert = optarg;
			break;
		case 'C':
			tls.cert = optarg;
			break;
		case 'K':
			tls.key = optarg;
			break;
		case 't':
			if (parse_timeout(optarg, &timeout_ms) < 0)
				return usage("--timeout wants a number of seconds above 0");
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("raftfsctl %s\n", RAFTFSCTL_VERSION);
			return 0;
		default:
			return usage(NULL);
		}
	}
	if (optind >= argc)
		return usage("no command");
	cmd = argv[optind];
	nargs = argc - optind - 1;
	if (strcmp(cmd, "put") == 0 || strcmp(cmd, "append") == 0) {
		if (nargs != 2)
			return usage(nargs < 2 ? "missing argument" : "too many arguments");
	} else if (strcmp(cmd, "get") == 0 || strcmp(cmd, "del") == 0) {
		if (nargs != 1)
			return usage(nargs < 1 ? "missing argument" : "too many arguments");
	} else if (strcmp(cmd, "status") == 0) {
		if (nargs != 0)
			return usage("too many arguments");
	} else {
		char why[128];
		snprintf(why, sizeof(why), "unknown command '%s'", cmd);
		return usage(why);
	}
	if (nargs >= 1 && argv[optind + 1][0] == '\0') {
		/* "" names the root directory in the store; as a key on the command line it is a
		 * mistake, and "is a directory" would not explain it */
		fprintf(stderr, "raftfsctl: %s: empty key\n", cmd);
		return EXIT_FAIL;
	}
	if (!cluster)
		cluster = getenv("RAFTFS_CLUSTER");
	if (!cluster || !*cluster)
		return usage("no cluster list: give --cluster=LIST or set RAFTFS_CLUSTER");
	if (!tls.cacert)
		tls.cacert = getenv("RAFTFS_CACERT");
	if (!tls.cert)
		tls.cert = getenv("RAFTFS_CERT");
	if (!tls.key)
		tls.key = getenv("RAFTFS_KEY");
	if ((tls.cert && *tls.cert) || (tls.key && *tls.key)) {
		if (!tls.cacert || !*tls.cacert)
			return usage("--cert and --key need --cacert (the CA of the nodes)");
		if (!tls.cert || !*tls.cert || !tls.key || !*tls.key)
			return usage("--cert and --key go together");
	}
	c = kv_clerk_open(cluster, tls.cacert && *tls.cacert ? &tls : NULL, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "raftfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	if (!bind_addr)
		bind_addr = getenv("RAFTFS_BIND");
	if (kv_clerk_set_bind(c, bind_addr) != 0) {
		fprintf(stderr, "raftfsctl: --bind: %s\n", kv_clerk_errmsg(c));
		kv_clerk_close(c);
		return EXIT_FAIL;
	}
	if (strcmp(cmd, "put") == 0 || strcmp(cmd, "append") == 0)
		rc = cmd_write(c, cmd, argv[optind + 1], argv[optind + 2], timeout_ms);
	else if (strcmp(cmd, "get") == 0)
		rc = cmd_get(c, argv[optind + 1], timeout_ms);
	else if (strcmp(cmd, "del") == 0)
		rc = cmd_del(c, argv[optind + 1], timeout_ms);
	else
		rc = cmd_status(c, timeout_ms);
	kv_clerk_close(c);
	return rc;
}
