/* options.h - raftfs's command line, -o options and configuration file. */
#ifndef FS_OPTIONS_H
#define FS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FS_PATH_BYTES 4096
#define FS_CLUSTER_BYTES 2048
#define FS_MOUNT_OPTS_BYTES 512

/* --client-identity lines kept; a CN is at most this long (a certificate's CN is 64 bytes). */
#define FS_MAX_IDENTITIES 64
#define FS_IDENTITY_CN_BYTES 256
/* Defaults of the limits at the door (raftfs(8), Limits). */
#define FS_DEFAULT_MAX_CLIENTS 1024u
#define FS_MAX_CLIENTS_LIMIT 1000000u
#define FS_DEFAULT_CLIENT_IDLE_TIMEOUT_S 300u
/* The default budget of all clients' unfinished input together: this many connections at
 * their own limit (by default the largest frame kv/proto.h allows, so that any request the
 * protocol allows is read and answered, a value over the cluster's limit with its error). */
#define FS_TOTAL_CLIENT_INPUT_CONNS 2u

enum fs_log_level { FS_LOG_DEBUG = 0, FS_LOG_INFO, FS_LOG_WARN, FS_LOG_ERROR };

/* --client-identity=CN:UID:GID: a client whose certificate has this common name ("*": any
 * other, and every client without TLS) is applied as uid:gid. */
struct fs_identity {
	char cn[FS_IDENTITY_CN_BYTES];
	uint32_t uid;
	uint32_t gid;
};

struct fs_options {
	uint32_t id;
	char cluster[FS_CLUSTER_BYTES];
	char data[FS_PATH_BYTES];
	char mountpoint[FS_PATH_BYTES]; /* "" when serving without a mount */
	bool foreground;
	uint64_t snapshot_bytes;
	uint64_t snapshot_trailing; /* log entries kept behind a snapshot for slow followers */
	uint64_t max_value_bytes;
	enum fs_log_level log_level;
	unsigned tick_ms;
	unsigned election_ticks;
	unsigned timeout_s; /* mount: how long an operation waits for the cluster */
	bool hard; /* mount: wait forever */
	/* mount options of FUSE itself given with -o (allow_other, default_permissions,
	 * auto_unmount, ro, nosuid, ...), comma-separated in the order given: passed to FUSE */
	char mount_opts[FS_MOUNT_OPTS_BYTES];
	bool help;
	bool version;
	bool unguard; /* raftfs --unguard MOUNTPOINT: take the mountpoint's guard off, exit */
	char log_file[FS_PATH_BYTES]; /* --log-file: log lines go there (appended), "" stderr */
	/* TLS, with etcd's option names; "" when not given */
	char cert_file[FS_PATH_BYTES];
	char key_file[FS_PATH_BYTES];
	char peer_ca_file[FS_PATH_BYTES]; /* --peer-trusted-ca-file */
	char client_ca_file[FS_PATH_BYTES]; /* --trusted-ca-file */
	bool insecure_plaintext; /* no TLS although some address is not loopback */
	struct fs_identity identities[FS_MAX_IDENTITIES];
	unsigned n_identities;
	/* limits at the door */
	unsigned max_clients;
	uint64_t max_client_input_bytes; /* one connection's unfinished input; 0: the protocol's */
	uint64_t max_total_client_input_bytes; /* every client's together; 0: twice the above */
	unsigned
	        client_idle_timeout_s; /* a client without a request this long is closed; 0 never */
};

/* True when any TLS file option is given. */
bool fs_options_tls(const struct fs_options *o);

/* The identity a client with certificate name cn (NULL: no TLS) is applied as: the matching
 * --client-identity line, else the "*" line, else root (0:0). -1 when lines are given but none
 * matches and there is no "*" line: such a client is refused. */
int fs_options_identity(const struct fs_options *o, const char *cn, uint32_t *uid, uint32_t *gid);

/* The limits of unfinished client input in force: the options, or what they derive from. */
uint64_t fs_options_client_input_bytes(const struct fs_options *o);
uint64_t fs_options_total_client_input_bytes(const struct fs_options *o);

void fs_options_default(struct fs_options *o);

/*
 * Parses argv: --name=value (or --name value), -o name=value[,name=value...], -f, -h, -V, and one
 * positional MOUNTPOINT; --config=FILE reads "name = value" lines ('#' starts a comment) and
 * values given on the command line win over the file's. Returns 0, or -1 with a message in err.
 */
int fs_options_parse(int argc, char **argv, struct fs_options *o, char *err, size_t err_len);

/* Checks that the required options are present and consistent. 0 or -1 with a message. */
int fs_options_check(const struct fs_options *o, char *err, size_t err_len);

void fs_options_usage(const char *prog, FILE *out);

#endif
