/* clerk.h - the blocking C client of a raftfs cluster: leader discovery, retries, exactly-once. */
#ifndef KV_CLERK_H
#define KV_CLERK_H

#include <stddef.h>
#include <stdint.h>

#include "kv/cmd.h"
#include "kv/proto.h"
#include "raft/transport.h"

/*
 * A clerk talks to the nodes of one cluster (DESIGN.md section 7) over at most one TCP connection
 * at a time: to the node it believes leads (the leader hint of the last answer), else to the nodes
 * of the list in turn. Each connection opens with the transport's client hello carrying the
 * cluster id of the list, then carries kv/proto.h frames both ways.
 *
 * Every call is blocking and bounded by its own timeout_ms (0: KV_CLERK_DEFAULT_TIMEOUT_MS):
 * sockets are non-blocking and every wait is a poll() that ends at the call's deadline, connects
 * included; a call never returns later than its deadline plus scheduling noise. Within the
 * deadline a call retries: on another node when a connection fails or a node answers NOT_APPLIED
 * or SHUTDOWN (following the leader hint when there is one), with a backoff of
 * KV_CLERK_BACKOFF_MIN_MS doubling to KV_CLERK_BACKOFF_MAX_MS after each full round of the list
 * without an answer.
 *
 * Exactly-once. The clerk holds one session, opened with an OpenSession command before its first
 * write; each write carries (session, ++seq). A write whose attempt ended without a definite
 * answer (sent, then the connection broke, the node answered UNKNOWN, or no answer came) is
 * retried with the SAME seq and the same encoded bytes until the deadline: the state machine
 * never applies a (session, seq) twice and answers a retry with the recorded result, so a retry
 * usually turns "unknown" into a definite APPLIED. A new call always takes a new seq, even after a
 * NOT_APPLIED (sequence gaps are allowed), so an old request can never be confused with a new one.
 *
 * Expired sessions. A write answered KV_ESESSION_EXPIRED was refused by the state machine.
 *   - If no earlier attempt of that seq can have been applied, the refusal is definite: the clerk
 *     drops the session, opens a new one and sends the command again under it (once per call),
 *     all within the same deadline; the caller only sees the final answer.
 *   - If an earlier attempt had an unknown fate, the session's record (which would have told) is
 *     gone: the call returns KV_CLERK_UNKNOWN with out->status = KV_ESESSION_EXPIRED, and the
 *     next write opens a new session.
 *   An OpenSession whose own outcome is unknown may leave an unused session on the cluster; it
 *   expires by log time (kv/store.h) and costs nothing else.
 *
 * Reads (Get, GetAttr, ReadDir) carry no session (session 0): they change nothing, so they are
 * simply retried, and a read that got no answer is reported KV_CLERK_NOT_APPLIED, never UNKNOWN.
 *
 * TLS (struct kv_clerk_tls): every connection is a TLS session (1.2 or 1.3) from its first byte;
 * the node's certificate must chain to cacert and name, as an IP address in its subjectAltName,
 * the address the clerk dialled; the clerk presents cert (with key) as its own, which a node
 * serving clients requires (raftfs(8), --trusted-ca-file). A failed handshake counts as a failed
 * connection (the clerk moves on to the next node) and kv_clerk_errmsg() says why.
 *
 * Threads: a clerk is not thread-safe; use one clerk per thread (each then has its own session,
 * which also gives a thread its one-request-at-a-time ordering). Different clerks share nothing.
 * The clerk never raises SIGPIPE (it sends with MSG_NOSIGNAL).
 *
 * Time: commands carry time_ms from the clerk's CLOCK_REALTIME, which the leader replaces with its
 * own stamp (kv/node.h, Time); deadlines use CLOCK_MONOTONIC.
 */

#define KV_CLERK_DEFAULT_TIMEOUT_MS 10000u
/* A connect that has not completed after this long moves on to the next node (a node whose
 * packets are dropped would otherwise hold the whole call). */
#define KV_CLERK_CONNECT_TIMEOUT_MS 1000u
/* The most a node is asked to wait for one attempt (REQ.timeout_ms): a node cut off from the
 * leader then answers NOT_APPLIED in time for the clerk to try another. */
#define KV_CLERK_ATTEMPT_TIMEOUT_MS 2000u
/* Extra time the clerk waits for the answer beyond REQ.timeout_ms (transit, scheduling). */
#define KV_CLERK_REPLY_MARGIN_MS 250u
#define KV_CLERK_BACKOFF_MIN_MS 20u
#define KV_CLERK_BACKOFF_MAX_MS 500u
/* kv_clerk_close() spends at most this closing the session. */
#define KV_CLERK_CLOSE_TIMEOUT_MS 300u
#define KV_CLERK_ERRMSG_BYTES 512u

/* What became of a request. */
enum kv_clerk_outcome {
	KV_CLERK_APPLIED = 0, /* decided by the cluster: out is valid, out->status is the op's own
	                         result (KV_OK, KV_EEXIST, KV_ENOENT, ...) */
	KV_CLERK_NOT_APPLIED, /* certainly not applied (refused locally, no node took it in time, or
	                         every answer said so); safe to retry as a new request */
	KV_CLERK_UNKNOWN, /* may or may not have been applied, or may still apply; only a later
	                     read can tell */
};

/* "applied", "not applied", "outcome unknown"; never NULL. */
const char *kv_clerk_outcome_name(int outcome);

struct kv_clerk;

/* TLS files of a clerk (PEM paths; etcdctl's --cacert, --cert, --key). */
struct kv_clerk_tls {
	const char *cacert; /* the CA of the nodes' certificates: required */
	const char *cert; /* the clerk's certificate, NULL or "" for none (then key too) */
	const char *key; /* its private key */
};

/*
 * Parses cluster_list ("1=127.0.0.1:7001,2=127.0.0.2:7002,...", raft_transport_parse_cluster)
 * and returns a new clerk, or NULL with a message in err (when not NULL): bad list, a TLS file
 * that does not load, out of memory. tls NULL: plaintext; else the files are read now (and only
 * now) and only during the call. Nothing is connected yet. Free with kv_clerk_close().
 */
struct kv_clerk *kv_clerk_open(const char *cluster_list, const struct kv_clerk_tls *tls, char *err,
                               size_t err_len);

/* Makes every later connection leave from the local IPv4 address addr (NULL or "": let the
 * kernel choose, the default). Tests use it to keep their own traffic outside the partitions
 * they make between node addresses. 0, or -1 with kv_clerk_errmsg() for a bad address. */
int kv_clerk_set_bind(struct kv_clerk *c, const char *addr);

/* Closes the session (one CloseSession attempt of at most KV_CLERK_CLOSE_TIMEOUT_MS, only over
 * an open connection: an unclosed session expires on its own), the connection, and frees c.
 * NULL is ignored. */
void kv_clerk_close(struct kv_clerk *c);

/*
 * The operations. Each returns an enum kv_clerk_outcome and fills *out (zeroed first; out may be
 * NULL when the caller does not need the result):
 *   APPLIED: the cluster's result; out->status is the operation's enum kv_err. The caller owns
 *     what out holds (out->value, out->ents, out->names) and frees it with kv_result_release().
 *   NOT_APPLIED / UNKNOWN: out holds nothing to free; out->status is never KV_OK: the local
 *     reason (KV_EINVAL or KV_ENAMETOOLONG for a bad key, KV_EFBIG for a value over
 *     KV_VALUE_BYTES_LIMIT, KV_ENOMEM, KV_ESESSION_EXPIRED, KV_ESTALE), or KV_EIO when no node
 *     answered in time. kv_clerk_errmsg() says more.
 * key is a NUL-terminated key (kv/store.h syntax, checked before anything is sent); value/len are
 * only read during the call (NULL with len 0 is the empty value).
 */
int kv_clerk_put(struct kv_clerk *c, const char *key, const void *value, size_t len,
                 uint32_t timeout_ms, struct kv_result *out);
/* Append (a missing key acts like Put). */
int kv_clerk_append(struct kv_clerk *c, const char *key, const void *value, size_t len,
                    uint32_t timeout_ms, struct kv_result *out);
/* Get: on APPLIED with KV_OK, out->value/value_len is the value (NULL and 0 for an empty value
 * and for a missing key, which reads as "": out->exists tells them apart). */
int kv_clerk_get(struct kv_clerk *c, const char *key, uint32_t timeout_ms, struct kv_result *out);
/* Delete a file or symlink; a missing key is APPLIED with out->status KV_ENOENT. */
int kv_clerk_del(struct kv_clerk *c, const char *key, uint32_t timeout_ms, struct kv_result *out);

/*
 * Any other operation (kv/cmd.h). cmd is only read; its key, key2, data, offset, flags, attr
 * and mode are sent as given (keys are checked first), while session, seq and time_ms are the
 * clerk's (whatever cmd holds). uid and gid are sent as given too, but the node replaces them
 * with its connection's identity (raftfs(8), --client-identity), and the leader the time.
 * OpenSession and CloseSession belong to the clerk, and Settings to the nodes: refused with
 * NOT_APPLIED / KV_EINVAL.
 */
int kv_clerk_do(struct kv_clerk *c, const struct kv_cmd *cmd, uint32_t timeout_ms,
                struct kv_result *out);

/*
 * Asks node node_id (one of the list) for its status record, over a connection to that node
 * only (no retry on another node). Returns 0 and fills *out, or -1 (unknown id, unreachable, no
 * answer within timeout_ms, malformed answer) with kv_clerk_errmsg() saying why.
 */
int kv_clerk_status(struct kv_clerk *c, uint32_t node_id, struct kv_proto_node_status *out,
                    uint32_t timeout_ms);

/* Nodes of the list, in list order: i < kv_clerk_node_count(c), else NULL. Owned by c. */
unsigned kv_clerk_node_count(const struct kv_clerk *c);
const struct raft_transport_peer *kv_clerk_node(const struct kv_clerk *c, unsigned i);

/* The session id (0: none open yet) and the seq of the last write, for tests and diagnostics. */
uint64_t kv_clerk_session(const struct kv_clerk *c);
uint64_t kv_clerk_seq(const struct kv_clerk *c);

/* Why the last call that did not end APPLIED ended so: "no leader reachable within 10 s",
 * "node 2 (127.0.0.2:7002): connection refused", ...; "" after a success. Owned by c, valid
 * until the next call on c. */
const char *kv_clerk_errmsg(const struct kv_clerk *c);

#endif /* KV_CLERK_H */
