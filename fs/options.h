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

enum fs_log_level { FS_LOG_DEBUG = 0, FS_LOG_INFO, FS_LOG_WARN, FS_LOG_ERROR };

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
};

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
