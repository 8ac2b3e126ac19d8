/* options.c - raftfs's command line, -o options and configuration file (options.h). */
#include "fs/options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "kv/proto.h"

#define CONFIG_LINE_BYTES 4096
#define CONFIG_MAX_LINES 1000

void fs_options_default(struct fs_options *o)
{
	memset(o, 0, sizeof(*o));
	o->snapshot_bytes = 64u << 20;
	o->snapshot_trailing = 1024;
	o->max_value_bytes = KV_DEFAULT_MAX_VALUE_BYTES;
	o->log_level = FS_LOG_INFO;
	o->tick_ms = 50;
	o->election_ticks = 10;
	o->timeout_s = 30;
	o->max_clients = FS_DEFAULT_MAX_CLIENTS;
	o->client_idle_timeout_s = FS_DEFAULT_CLIENT_IDLE_TIMEOUT_S;
}

void fs_options_usage(const char *prog, FILE *out)
{
	fprintf(out,
	        "usage: %s --id=N --cluster=LIST --data=DIR [-f] [-o OPTIONS] [MOUNTPOINT]\n"
	        "       %s --unguard MOUNTPOINT\n"
	        "\n"
	        "Runs node N of a raftfs cluster.\n"
	        "  --id=N                 this node's id in LIST\n"
	        "  --cluster=LIST         1=127.0.0.1:7001,2=127.0.0.2:7002,3=127.0.0.3:7003\n"
	        "  --data=DIR             data directory (created 0700)\n"
	        "  --config=FILE          read 'name = value' lines (command line wins)\n"
	        "  --snapshot-bytes=N     snapshot when the log grows past N bytes (default 64M)\n"
	        "  --snapshot-trailing=N  log entries kept behind a snapshot for slow followers (1024)\n"
	        "  --max-value-bytes=N    largest value (default 4M, at most 16M)\n"
	        "  --log-level=LEVEL      debug, info, warn or error (default info)\n"
	        "  --log-file=FILE        log lines go to FILE (appended), not to stderr\n"
	        "  --tick-ms=N            Raft tick (default 50); election timeout is 10-20 ticks\n"
	        "  --timeout=SECONDS      mount: how long an operation waits for the cluster (30)\n"
	        "  --hard                 mount: wait forever\n"
	        "TLS (required unless every address of LIST is loopback):\n"
	        "  --cert-file=FILE       this node's certificate (PEM; its SAN holds its address)\n"
	        "  --key-file=FILE        its private key\n"
	        "  --peer-trusted-ca-file=FILE  CA of the peers' certificates\n"
	        "  --trusted-ca-file=FILE CA of client certificates (without it: no clients)\n"
	        "  --client-identity=CN:UID:GID  a client certificate CN acts as UID:GID ('*': any\n"
	        "                         other; repeatable; default: every client is root)\n"
	        "  --insecure-plaintext   run without TLS on addresses that are not loopback\n"
	        "Limits:\n"
	        "  --max-clients=N        client connections at once (1024)\n"
	        "  --max-client-input-bytes=N  one client's unfinished input (64M + 4K: any request)\n"
	        "  --max-total-client-input-bytes=N  all clients' together (twice that)\n"
	        "  --client-idle-timeout=SECONDS  close a client idle this long (300; 0 never)\n"
	        "  -o allow_other,default_permissions,auto_unmount  FUSE mount options\n"
	        "  -f                     stay in the foreground\n"
	        "  -o name=value,...      any long option, as in /etc/fstab\n"
	        "  -h, --help             this text\n"
	        "  -V, --version          the version\n"
	        "Without MOUNTPOINT the node serves the cluster without mounting.\n"
	        "SIGTERM or SIGINT: a leader hands over leadership, then the node exits 0.\n"
	        "While no node is mounted on it, MOUNTPOINT refuses writes (immutable);\n"
	        "--unguard MOUNTPOINT makes it a plain directory again.\n",
	        prog, prog);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mult = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mult = 1024ull * 1024 * 1024, end++;
	if (*end)
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int parse_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (parse_u64(s, out) != 0 || *out < lo || *out > hi)
		return -1;
	return 0;
}

/* Which options the command line set, so the config file does not override them. */
#define SEEN_MAX 64
#define SEEN_NAME_BYTES 32

struct seen {
	char names[SEEN_MAX][SEEN_NAME_BYTES];
	unsigned n;
};

static bool seen_has(const struct seen *s, const char *name)
{
	for (unsigned i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

static void seen_add(struct seen *s, const char *name)
{
	if (!seen_has(s, name) && s->n < SEEN_MAX && strlen(name) < SEEN_NAME_BYTES)
		strcpy(s->names[s->n++], name);
}

static int copy_str(char *dst, size_t cap, const char *v, const char *name, char *err,
                    size_t err_len)
{
	if (strlen(v) >= cap) {
		snprintf(err, err_len, "--%s: value too long", name);
		return -1;
	}
	strcpy(dst, v);
	return 0;
}

/* "CN:UID:GID", the CN being everything before the last two colons. */
static int add_identity(struct fs_options *o, const char *v, char *err, size_t err_len)
{
	const char *c2 = strrchr(v, ':'), *c1 = NULL;
	struct fs_identity *id;
	uint64_t uid, gid;
	size_t cn_len;

	for (const char *p = v; c2 && p < c2; p++)
		if (*p == ':')
			c1 = p;
	if (!c1 || c1 == v) {
		snprintf(err, err_len, "--client-identity=%s: expected CN:UID:GID", v);
		return -1;
	}
	cn_len = (size_t)(c1 - v);
	if (cn_len >= FS_IDENTITY_CN_BYTES) {
		snprintf(err, err_len, "--client-identity: common name too long");
		return -1;
	}
	{
		char num[24];
		size_t ul = (size_t)(c2 - c1 - 1);
		if (ul == 0 || ul >= sizeof(num)) {
			snprintf(err, err_len, "--client-identity=%s: bad uid", v);
			return -1;
		}
		memcpy(num, c1 + 1, ul);
		num[ul] = '\0';
		if (parse_range(num, 0, UINT32_MAX - 1, &uid) != 0) {
			snprintf(err, err_len, "--client-identity=%s: bad uid", v);
			return -1;
		}
		if (parse_range(c2 + 1, 0, UINT32_MAX - 1, &gid) != 0) {
			snprintf(err, err_len, "--client-identity=%s: bad gid", v);
			return -1;
		}
	}
	for (unsigned i = 0; i < o->n_identities; i++) {
		if (strlen(o->identities[i].cn) == cn_len &&
		    memcmp(o->identities[i].cn, v, cn_len) == 0) {
			snprintf(err, err_len, "--client-identity: '%.*s' is given twice",
			         (int)cn_len, v);
			return -1;
		}
	}
	if (o->n_identities == FS_MAX_IDENTITIES) {
		snprintf(err, err_len, "--client-identity: more than %d", FS_MAX_IDENTITIES);
		return -1;
	}
	id = &o->identities[o->n_identities++];
	memcpy(id->cn, v, cn_len);
	id->cn[cn_len] = '\0';
	id->uid = (uint32_t)uid;
	id->gid = (uint32_t)gid;
	return 0;
}

/* Sets one named option; value NULL for flags. */
static int set_option(struct fs_options *o, const char *name, const char *value, char *err,
                      size_t err_len)
{
	uint64_t v;

#define NEED_VALUE                                                                                 \
	do {                                                                                       \
		if (!value || !*value) {                                                           \
			snprintf(err, err_len, "--%s needs a value", name);                        \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)
#define NUMBER(lo, hi)                                                                             \
	do {                                                                                       \
		NEED_VALUE;                                                                        \
		if (parse_range(value, (lo), (hi), &v) != 0) {                                     \
			snprintf(err, err_len, "--%s=%s: expected a number from %llu to %llu",     \
			         name, value, (unsigned long long)(lo), (unsigned long long)(hi)); \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

	if (strcmp(name, "id") == 0) {
		NUMBER(1, UINT32_MAX);
		o->id = (uint32_t)v;
	} else if (strcmp(name, "cluster") == 0) {
		NEED_VALUE;
		return copy_str(o->cluster, sizeof(o->cluster), value, name, err, err_len);
	} else if (strcmp(name, "data") == 0) {
		NEED_VALUE;
		return copy_str(o->data, sizeof(o->data), value, name, err, err_len);
	} else if (strcmp(name, "snapshot-bytes") == 0) {
		NUMBER(4096, UINT64_MAX / 2);
		o->snapshot_bytes = v;
	} else if (strcmp(name, "snapshot-trailing") == 0) {
		NUMBER(0, 1u << 30);
		o->snapshot_trailing = v;
	} else if (strcmp(name, "max-value-bytes") == 0) {
		NUMBER(1, KV_VALUE_BYTES_LIMIT);
		o->max_value_bytes = v;
	} else if (strcmp(name, "tick-ms") == 0) {
		NUMBER(1, 10000);
		o->tick_ms = (unsigned)v;
	} else if (strcmp(name, "timeout") == 0) {
		NUMBER(1, 86400);
		o->timeout_s = (unsigned)v;
	} else if (strcmp(name, "hard") == 0) {
		o->hard = true;
	} else if (strcmp(name, "foreground") == 0) {
		o->foreground = true;
	} else if (strcmp(name, "unguard") == 0) {
		o->unguard = true;
	} else if (strcmp(name, "log-file") == 0) {
		NEED_VALUE;
		if (copy_str(o->log_file, sizeof(o->log_file), value, name, err, err_len))
			return -1;
	} else if (strcmp(name, "cert-file") == 0) {
		NEED_VALUE;
		return copy_str(o->cert_file, sizeof(o->cert_file), value, name, err, err_len);
	} else if (strcmp(name, "key-file") == 0) {
		NEED_VALUE;
		return copy_str(o->key_file, sizeof(o->key_file), value, name, err, err_len);
	} else if (strcmp(name, "peer-trusted-ca-file") == 0) {
		NEED_VALUE;
		return copy_str(o->peer_ca_file, sizeof(o->peer_ca_file), value, name, err,
		                err_len);
	} else if (strcmp(name, "trusted-ca-file") == 0) {
		NEED_VALUE;
		return copy_str(o->client_ca_file, sizeof(o->client_ca_file), value, name, err,
		                err_len);
	} else if (strcmp(name, "insecure-plaintext") == 0) {
		o->insecure_plaintext = true;
	} else if (strcmp(name, "client-identity") == 0) {
		NEED_VALUE;
		return add_identity(o, value, err, err_len);
	} else if (strcmp(name, "max-clients") == 0) {
		NUMBER(1, FS_MAX_CLIENTS_LIMIT);
		o->max_clients = (unsigned)v;
	} else if (strcmp(name, "max-client-input-bytes") == 0) {
		NUMBER(4096, KV_PROTO_MAX_FRAME_BYTES);
		o->max_client_input_bytes = v;
	} else if (strcmp(name, "max-total-client-input-bytes") == 0) {
		NUMBER(4096, UINT64_MAX / 2);
		o->max_total_client_input_bytes = v;
	} else if (strcmp(name, "client-idle-timeout") == 0) {
		NUMBER(0, 86400 * 7);
		o->client_idle_timeout_s = (unsigned)v;
	} else if (strcmp(name, "log-level") == 0) {
		NEED_VALUE;
		if (strcmp(value, "debug") == 0)
			o->log_level = FS_LOG_DEBUG;
		else if (strcmp(value, "info") == 0)
			o->log_level = FS_LOG_INFO;
		else if (strcmp(value, "warn") == 0)
			o->log_level = FS_LOG_WARN;
		else if (strcmp(value, "error") == 0)
			o->log_level = FS_LOG_ERROR;
		else {
			snprintf(err, err_len,
			         "--log-level=%s: expected debug, info, warn or error", value);
			return -1;
		}
	} else {
		snprintf(err, err_len, "unknown option '%s'", name);
		return -1;
	}
	return 0;
#undef NUMBER
#undef NEED_VALUE
}

static void trim(char **s)
{
	char *e;

	while (**s == ' ' || **s == '\t')
		(*s)++;
	e = *s + strlen(*s);
	while (e > *s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
}

static int read_config(struct fs_options *o, const char *path, const struct seen *seen, char *err,
                       size_t err_len)
{
	char line[CONFIG_LINE_BYTES];
	FILE *f = fopen(path, "r");
	unsigned lineno = 0;

	if (!f) {
		snprintf(err, err_len, "--config=%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *eq, *name, *value;
		char inner[512];
		if (++lineno > CONFIG_MAX_LINES) {
			snprintf(err, err_len, "%s: more than %d lines", path, CONFIG_MAX_LINES);
			goto fail;
		}
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, err_len, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		if ((eq = strchr(p, '#')))
			*eq = '\0';
		trim(&p);
		if (!*p)
			continue;
		eq = strchr(p, '=');
		name = p;
		value = NULL;
		if (eq) {
			*eq = '\0';
			value = eq + 1;
			trim(&value);
		}
		trim(&name);
		if (strcmp(name, "config") == 0) {
			snprintf(err, err_len, "%s:%u: config files do not nest", path, lineno);
			goto fail;
		}
		if (seen_has(seen, name))
			continue;
		if (set_option(o, name, value, inner, sizeof(inner)) != 0) {
			snprintf(err, err_len, "%s:%u: %s", path, lineno, inner);
			goto fail;
		}
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	return -1;
}

/* Whether the comma-separated FUSE options list holds item. */
static bool has_mount_opt(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; (p = strstr(p, item)) != NULL; p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* Appends a FUSE mount option to o->mount_opts (once). */
static int add_mount_opt(struct fs_options *o, const char *item, char *err, size_t err_len)
{
	size_t have = strlen(o->mount_opts), n = strlen(item);

	if (has_mount_opt(o->mount_opts, item))
		return 0;
	if (have + n + 2 > sizeof(o->mount_opts)) {
		snprintf(err, err_len, "-o %s: too many mount options", item);
		return -1;
	}
	if (have)
		o->mount_opts[have++] = ',';
	memcpy(o->mount_opts + have, item, n + 1);
	return 0;
}

/* -o a=b,c,d=e */
static int parse_dash_o(struct fs_options *o, char *list, struct seen *seen, char *config,
                        size_t config_cap, char *err, size_t err_len)
{
	char *save = NULL;

	for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		const char *value = NULL;
		if (eq) {
			*eq = '\0';
			value = eq + 1;
		}
		if (strcmp(item, "config") == 0) {
			if (!value || copy_str(config, config_cap, value, "config", err, err_len))
				return -1;
			continue;
		}
		/* _netdev is for mount(8) and fstab only */
		if (strcmp(item, "_netdev") == 0)
			continue;
		/* mount options of FUSE itself are recorded and passed to FUSE when mounting */
		if (strcmp(item, "allow_other") == 0 || strcmp(item, "default_permissions") == 0 ||
		    strcmp(item, "auto_unmount") == 0 || strcmp(item, "ro") == 0 ||
		    strcmp(item, "rw") == 0 || strcmp(item, "nodev") == 0 ||
		    strcmp(item, "nosuid") == 0 || strcmp(item, "noexec") == 0 ||
		    strcmp(item, "noatime") == 0) {
			if (add_mount_opt(o, item, err, err_len) != 0)
				return -1;
			continue;
		}
		if (set_option(o, item, value, err, err_len) != 0)
			return -1;
		seen_add(seen, item);
	}
	return 0;
}

int fs_options_parse(int argc, char **argv, struct fs_options *o, char *err, size_t err_len)
{
	struct seen seen = {0};
	char config[FS_PATH_BYTES] = "";

	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (strcmp(a, "-f") == 0) {
			o->foreground = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			o->version = true;
		} else if (strcmp(a, "-o") == 0 || strncmp(a, "-o", 2) == 0) {
			char buf[FS_CLUSTER_BYTES + 256];
			const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!list) {
				snprintf(err, err_len, "-o needs a value");
				return -1;
			}
			if (strlen(list) >= sizeof(buf)) {
				snprintf(err, err_len, "-o: value too long");
				return -1;
			}
			strcpy(buf, list);
			if (parse_dash_o(o, buf, &seen, config, sizeof(config), err, err_len) != 0)
				return -1;
		} else if (strncmp(a, "--", 2) == 0) {
			char name[64];
			const char *eq = strchr(a + 2, '='), *value = NULL;
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (len == 0 || len >= sizeof(name)) {
				snprintf(err, err_len, "bad option '%s'", a);
				return -1;
			}
			memcpy(name, a + 2, len);
			name[len] = '\0';
			if (eq) {
				value = eq + 1;
			} else if (strcmp(name, "hard") != 0 && strcmp(name, "foreground") != 0 &&
			           strcmp(name, "unguard") != 0 &&
			           strcmp(name, "insecure-plaintext") != 0 && i + 1 < argc &&
			           argv[i + 1][0] != '-') {
				value = argv[++i];
			}
			if (strcmp(name, "config") == 0) {
				if (!value ||
				    copy_str(config, sizeof(config), value, name, err, err_len))
					return -1;
				continue;
			}
			if (set_option(o, name, value, err, err_len) != 0)
				return -1;
			seen_add(&seen, name);
		} else if (a[0] == '-') {
			snprintf(err, err_len, "unknown option '%s'", a);
			return -1;
		} else if (!o->mountpoint[0]) {
			if (copy_str(o->mountpoint, sizeof(o->mountpoint), a, "mountpoint", err,
			             err_len))
				return -1;
		} else {
			snprintf(err, err_len, "unexpected argument '%s' (one mountpoint at most)",
			         a);
			return -1;
		}
	}
	if (config[0] && read_config(o, config, &seen, err, err_len) != 0)
		return -1;
	return 0;
}

bool fs_options_tls(const struct fs_options *o)
{
	return o->cert_file[0] || o->key_file[0] || o->peer_ca_file[0] || o->client_ca_file[0];
}

int fs_options_identity(const struct fs_options *o, const char *cn, uint32_t *uid, uint32_t *gid)
{
	const struct fs_identity *any = NULL, *exact = NULL, *id;

	for (unsigned i = 0; i < o->n_identities; i++) {
		if (strcmp(o->identities[i].cn, "*") == 0)
			any = &o->identities[i];
		else if (cn && strcmp(o->identities[i].cn, cn) == 0)
			exact = &o->identities[i];
	}
	id = exact ? exact : any;
	if (id) {
		*uid = id->uid;
		*gid = id->gid;
		return 0;
	}
	if (o->n_identities > 0)
		return -1;
	*uid = 0; /* as an etcd client certificate without RBAC: root */
	*gid = 0;
	return 0;
}

uint64_t fs_options_client_input_bytes(const struct fs_options *o)
{
	if (o->max_client_input_bytes)
		return o->max_client_input_bytes;
	return KV_PROTO_MAX_FRAME_BYTES;
}

uint64_t fs_options_total_client_input_bytes(const struct fs_options *o)
{
	if (o->max_total_client_input_bytes)
		return o->max_total_client_input_bytes;
	return fs_options_client_input_bytes(o) * FS_TOTAL_CLIENT_INPUT_CONNS;
}

static int check_tls(const struct fs_options *o, char *err, size_t err_len)
{
	if (!fs_options_tls(o))
		return 0;
	if (o->insecure_plaintext) {
		snprintf(err, err_len,
		         "--insecure-plaintext and the TLS options exclude each other");
		return -1;
	}
	if (!o->cert_file[0] || !o->key_file[0] || !o->peer_ca_file[0]) {
		snprintf(err, err_len,
		         "TLS needs --cert-file, --key-file and --peer-trusted-ca-file together "
		         "(--trusted-ca-file is for clients)");
		return -1;
	}
	return 0;
}

int fs_options_check(const struct fs_options *o, char *err, size_t err_len)
{
	if (!o->id) {
		snprintf(err, err_len, "--id is required");
		return -1;
	}
	if (!o->cluster[0]) {
		snprintf(err, err_len, "--cluster is required");
		return -1;
	}
	if (!o->data[0]) {
		snprintf(err, err_len, "--data is required");
		return -1;
	}
	if (o->election_ticks < 2) {
		snprintf(err, err_len, "election timeout too short");
		return -1;
	}
	if (has_mount_opt(o->mount_opts, "allow_other") &&
	    !has_mount_opt(o->mount_opts, "default_permissions")) {
		/* raftfs checks no modes itself: without the kernel's checks every user could read
		 * and write every file of the mount */
		snprintf(
		        err, err_len,
		        "-o allow_other needs -o default_permissions (otherwise nobody checks modes)");
		return -1;
	}
	if (fs_options_total_client_input_bytes(o) < fs_options_client_input_bytes(o)) {
		snprintf(err, err_len,
		         "--max-total-client-input-bytes is below one client's input limit");
		return -1;
	}
	return check_tls(o, err, err_len);
}
