/* fuzz_options.c - libFuzzer target: raftfs's command line, -o options and configuration file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs/options.h"
#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/transport.h"
#include "tests/fuzz/fuzzlib.h"

/*
 * Input: the arguments after the program name, each ended by a NUL, then (after an empty
 * argument, two NULs in a row) the text of a configuration file; with a file, --config=FILE
 * is added to the arguments (FILE is an in-memory file, /proc/self/fd/N of a memfd). They go
 * through what raftfs's main does with its command line: fs_options_parse, and when that
 * succeeds fs_options_check and raft_transport_parse_cluster of --cluster. Checks: a refusal
 * comes with a message; what is accepted is within the documented bounds (strings terminated
 * in their buffers, numbers in their ranges, mount options a comma-separated list of known
 * names without repeats); a cluster list that parses names distinct nodes with a cluster id
 * that does not depend on the order of the list. An input whose arguments name a configuration
 * file of their own is skipped: parsing it would read the machine's files.
 */

#define MAX_ARGS 64

static int config_fd = -1;

static void check_string(const char *s, size_t cap, const char *what)
{
	FUZZ_CHECK(memchr(s, '\0', cap) != NULL, "%s is not terminated in its buffer", what);
}

static void check_mount_opts(const char *opts)
{
	static const char *const known[] = {"allow_other",  "default_permissions",
	                                    "auto_unmount", "ro",
	                                    "rw",           "nodev",
	                                    "nosuid",       "noexec",
	                                    "noatime"};
	char buf[FS_MOUNT_OPTS_BYTES], *save = NULL;
	unsigned seen = 0;

	if (!*opts)
		return;
	FUZZ_CHECK(opts[0] != ',' && opts[strlen(opts) - 1] != ',' && !strstr(opts, ",,"),
	           "mount options \"%s\" are not a list", opts);
	strcpy(buf, opts);
	for (char *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
		unsigned k = 0;
		while (k < sizeof(known) / sizeof(known[0]) && strcmp(it, known[k]) != 0)
			k++;
		FUZZ_CHECK(k < sizeof(known) / sizeof(known[0]), "unknown mount option \"%s\"", it);
		FUZZ_CHECK(!(seen & (1u << k)), "mount option \"%s\" twice", it);
		seen |= 1u << k;
	}
}

/* --client-identity lines: distinct names, each a client's identity as it was given; a name
 * no line has gets the "*" line's, or root without lines, or is refused. */
static void check_identities(const struct fs_options *o)
{
	const struct fs_identity *star = NULL;
	uint32_t uid, gid;
	int rc;

	FUZZ_CHECK(o->n_identities <= FS_MAX_IDENTITIES, "%u identities", o->n_identities);
	for (unsigned i = 0; i < o->n_identities; i++) {
		const struct fs_identity *id = &o->identities[i];

		check_string(id->cn, sizeof(id->cn), "an identity's common name");
		FUZZ_CHECK(id->cn[0] != '\0', "an identity without a common name");
		FUZZ_CHECK(id->uid != UINT32_MAX && id->gid != UINT32_MAX,
		           "identity %s is %u:%u (-1 is no id)", id->cn, id->uid, id->gid);
		for (unsigned j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(id->cn, o->identities[j].cn) != 0, "identity %s twice",
			           id->cn);
		if (strcmp(id->cn, "*") == 0)
			star = id;
		FUZZ_CHECK(fs_options_identity(o, id->cn, &uid, &gid) == 0 && uid == id->uid &&
		                   gid == id->gid,
		           "a client named %s is not %u:%u", id->cn, id->uid, id->gid);
	}
	/* no line can name a certificate with an empty common name */
	rc = fs_options_identity(o, "", &uid, &gid);
	if (star)
		FUZZ_CHECK(rc == 0 && uid == star->uid && gid == star->gid,
		           "a client without a line is not the \"*\" line's");
	else if (o->n_identities > 0)
		FUZZ_CHECK(rc == -1, "a client without a line is not refused");
	else
		FUZZ_CHECK(rc == 0 && uid == 0 && gid == 0, "a client without lines is not root");
}

static void check_accepted(const struct fs_options *o)
{
	check_string(o->cluster, sizeof(o->cluster), "--cluster");
	check_string(o->data, sizeof(o->data), "--data");
	check_string(o->mountpoint, sizeof(o->mountpoint), "the mountpoint");
	check_string(o->mount_opts, sizeof(o->mount_opts), "the mount options");
	check_string(o->log_file, sizeof(o->log_file), "--log-file");
	check_mount_opts(o->mount_opts);
	FUZZ_CHECK(o->snapshot_bytes >= 4096, "--snapshot-bytes=%llu",
	           (unsigned long long)o->snapshot_bytes);
	FUZZ_CHECK(o->snapshot_trailing <= (1u << 30), "--snapshot-trailing=%llu",
	           (unsigned long long)o->snapshot_trailing);
	FUZZ_CHECK(o->max_value_bytes >= 1 && o->max_value_bytes <= KV_VALUE_BYTES_LIMIT,
	           "--max-value-bytes=%llu", (unsigned long long)o->max_value_bytes);
	FUZZ_CHECK(o->tick_ms >= 1 && o->tick_ms <= 10000, "--tick-ms=%u", o->tick_ms);
	FUZZ_CHECK(o->timeout_s >= 1 && o->timeout_s <= 86400, "--timeout=%u", o->timeout_s);
	FUZZ_CHECK(o->log_level <= FS_LOG_ERROR, "--log-level %d", (int)o->log_level);
	check_string(o->cert_file, sizeof(o->cert_file), "--cert-file");
	check_string(o->key_file, sizeof(o->key_file), "--key-file");
	check_string(o->peer_ca_file, sizeof(o->peer_ca_file), "--peer-trusted-ca-file");
	check_string(o->client_ca_file, sizeof(o->client_ca_file), "--trusted-ca-file");
	FUZZ_CHECK(o->max_clients >= 1 && o->max_clients <= FS_MAX_CLIENTS_LIMIT,
	           "--max-clients=%u", o->max_clients);
	FUZZ_CHECK(o->max_client_input_bytes == 0 ||
	                   (o->max_client_input_bytes >= 4096 &&
	                    o->max_client_input_bytes <= KV_PROTO_MAX_FRAME_BYTES),
	           "--max-client-input-bytes=%llu", (unsigned long long)o->max_client_input_bytes);
	FUZZ_CHECK(o->max_total_client_input_bytes == 0 || o->max_total_client_input_bytes >= 4096,
	           "--max-total-client-input-bytes=%llu",
	           (unsigned long long)o->max_total_client_input_bytes);
	FUZZ_CHECK(fs_options_client_input_bytes(o) >= 4096 &&
	                   fs_options_total_client_input_bytes(o) >= 4096,
	           "client input budgets of %llu and %llu bytes",
	           (unsigned long long)fs_options_client_input_bytes(o),
	           (unsigned long long)fs_options_total_client_input_bytes(o));
	FUZZ_CHECK(o->client_idle_timeout_s <= 86400 * 7, "--client-idle-timeout=%u",
	           o->client_idle_timeout_s);
	check_identities(o);
}

/* The cluster list, as the daemon takes it; then the same nodes listed backwards. */
static void check_cluster(const struct fs_options *o)
{
	struct raft_transport_config a, b;
	char err[256], rev[FS_CLUSTER_BYTES + 16] = "";

	memset(&a, 0, sizeof(a));
	if (raft_transport_parse_cluster(o->cluster, &a, err, sizeof(err)) != RAFT_OK) {
		FUZZ_CHECK(err[0] != '\0', "a cluster list refused without a message");
		return;
	}
	FUZZ_CHECK(a.n_peers >= 1 && a.n_peers <= RAFT_MAX_NODES, "%u nodes", a.n_peers);
	for (unsigned i = 0; i < a.n_peers; i++) {
		FUZZ_CHECK(a.peers[i].id != 0 && a.peers[i].port != 0, "node %u: id 0 or port 0",
		           i);
		check_string(a.peers[i].host, sizeof(a.peers[i].host), "a host");
		for (unsigned j = 0; j < i; j++)
			FUZZ_CHECK(a.peers[i].id != a.peers[j].id &&
			                   (a.peers[i].port != a.peers[j].port ||
			                    strcmp(a.peers[i].host, a.peers[j].host) != 0),
			           "two nodes with one id or one address");
	}
	for (unsigned i = a.n_peers; i-- > 0;) {
		char item[RAFT_TRANSPORT_HOST_BYTES + 32];
		snprintf(item, sizeof(item), "%s%u=%s:%u", i + 1 < a.n_peers ? "," : "",
		         (unsigned)a.peers[i].id, a.peers[i].host, (unsigned)a.peers[i].port);
		strcat(rev, item);
	}
	memset(&b, 0, sizeof(b));
	FUZZ_CHECK(raft_transport_parse_cluster(rev, &b, err, sizeof(err)) == RAFT_OK,
	           "the nodes of \"%s\" listed backwards do not parse: %s", o->cluster, err);
	FUZZ_CHECK(a.cluster_id == b.cluster_id && a.cluster_id != 0,
	           "the cluster id depends on the order of the list");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 3], *copy, err[1024], config_arg[64];
	struct fs_options o;
	size_t off = 0, text = size;
	int argc = 0;

	if (config_fd < 0) {
		config_fd = memfd_create("raftfs-fuzz.conf", MFD_CLOEXEC);
		FUZZ_CHECK(config_fd >= 0, "memfd_create: %s", strerror(errno));
	}
	copy = malloc(size + 1);
	FUZZ_CHECK(copy != NULL, "out of memory");
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = "raftfs";
	while (off < size && argc <= MAX_ARGS) {
		size_t len = strnlen(copy + off, size - off);
		if (len == 0) {
			text = off + 1;
			break;
		}
		if (strstr(copy + off, "config")) {
			free(copy); /* it would read a file of the machine's */
			return 0;
		}
		argv[argc++] = copy + off;
		off += len + 1;
	}
	if (text < size) {
		FUZZ_CHECK(ftruncate(config_fd, 0) == 0 &&
		                   pwrite(config_fd, data + text, size - text, 0) ==
		                           (ssize_t)(size - text),
		           "cannot write the configuration file");
		snprintf(config_arg, sizeof(config_arg), "--config=/proc/self/fd/%d", config_fd);
		argv[argc++] = config_arg;
	}
	argv[argc] = NULL;
	fs_options_default(&o);
	err[0] = '\0';
	if (fs_options_parse(argc, argv, &o, err, sizeof(err)) != 0) {
		FUZZ_CHECK(err[0] != '\0', "options refused without a message");
	} else {
		check_accepted(&o);
		err[0] = '\0';
		if (fs_options_check(&o, err, sizeof(err)) != 0)
			FUZZ_CHECK(err[0] != '\0', "options refused without a message");
		else
			check_cluster(&o);
	}
	free(copy);
	return 0;
}
