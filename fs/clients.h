/* clients.h - the daemon's client connections: requests to the node, replies, limits at the door. */
#ifndef FS_CLIENTS_H
#define FS_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct bufferevent;
struct kv_node;
struct raft_transport_client;

/*
 * A client connection (the clerk, raftfsctl) is handed over by the transport after its hello
 * (raft/transport.h, on_client) and carries kv/proto.h frames: requests, each submitted to the
 * node, and their answers, written at the end of the loop turn that made them (one write per
 * client for all of them).
 *
 * Identity: a request is applied as the identity of its connection, never as the uid and gid the
 * client wrote into it (kv_cmd_set_caller): the identity callback maps the connection's
 * certificate name (NULL without TLS) to a uid and gid, or refuses the client.
 *
 * Limits at the door (Redis's maxclients and client-query-buffer-limit are the model); past one,
 * the client concerned goes with one log line naming it, and every other connection, peers
 * included, goes on:
 *   - max_clients connections at once: the newest one over it is refused;
 *   - a connection's unfinished input (bytes read, not yet handled) stays within
 *     max_input_bytes: reading stops there, and a request announcing a larger frame closes the
 *     connection at once, before its bytes are read;
 *   - all connections' unfinished input together stays within max_total_input_bytes: past it
 *     the connection holding the most is closed;
 *   - a connection with no request in flight that sends nothing for idle_timeout_ms is closed.
 * Beside these, a connection has at most FS_CLIENT_MAX_PENDING requests in flight and stops
 * being read while FS_CLIENT_MAX_OUTPUT_BYTES of answers wait for it (backpressure).
 *
 * Threads: one, the loop's.
 */

#define FS_CLIENT_MAX_PENDING 1024 /* requests in flight per client connection */
#define FS_CLIENT_MAX_OUTPUT_BYTES (64u << 20) /* answers queued per client before backpressure */
#define FS_CLIENT_DEFAULT_TIMEOUT_MS 30000u /* a request's wait when it names none */

struct fs_clients_config {
	unsigned max_clients; /* >= 1 */
	size_t max_input_bytes; /* one connection's unfinished input, >= 4096 */
	size_t max_total_input_bytes; /* all of them together, >= max_input_bytes */
	unsigned idle_timeout_ms; /* 0: never */
	void *ctx;
	/* The identity a client with certificate name cn (NULL: no TLS) is applied as: 0 and
	 * *uid, *gid, or -1 to refuse it. Required. */
	int (*identity)(void *ctx, const char *cn, uint32_t *uid, uint32_t *gid);
	/* After requests were handed to the node (the daemon checks whether it failed). */
	void (*after_input)(void *ctx);
	/* Diagnostics as kv_node_env.log (0 debug, 1 info, 2 warn). */
	void (*log)(void *ctx, int level, const char *msg);
};

struct fs_clients_stats {
	unsigned clients; /* connected now */
	uint64_t accepted;
	uint64_t refused_max_clients;
	uint64_t refused_identity;
	uint64_t closed_input; /* over max_input_bytes or max_total_input_bytes */
	uint64_t closed_idle;
	size_t input_bytes; /* unfinished input of all connections now */
};

struct fs_clients;

/* 0 and *out, or -1 (out of memory, bad cfg). base and node must outlive the set. */
int fs_clients_new(struct event_base *base, struct kv_node *node,
                   const struct fs_clients_config *cfg, struct fs_clients **out);

/* The transport's on_client: the set owns bev from now on (refused: freed at once). */
void fs_clients_accept(struct fs_clients *cl, struct bufferevent *bev,
                       const struct raft_transport_client *who);

/* Writes every answer made so far (the daemon's flush, before the peers' frames leave). */
void fs_clients_write(struct fs_clients *cl);

/* The node is stopping: requests the node refuses are answered SHUTDOWN. */
void fs_clients_stopping(struct fs_clients *cl);

void fs_clients_stats(const struct fs_clients *cl, struct fs_clients_stats *st);

/* Closes every connection and frees cl; call after kv_node_close (which answers every request
 * still in flight). NULL is ignored. */
void fs_clients_free(struct fs_clients *cl);

#endif /* FS_CLIENTS_H */
