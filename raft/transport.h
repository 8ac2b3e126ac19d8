/* transport.h - the node's TCP transport on libevent: peer links, Raft and application frames. */
#ifndef RAFT_TRANSPORT_H
#define RAFT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

struct event_base;
struct bufferevent;
struct evbuffer;
struct raft_tls;

/*
 * One listening socket on the node's own cluster address, and one outgoing connection to each
 * peer, dialed FROM the node's own address (so packet filters on 127.0.0.x can partition
 * nodes). A node sends only on the connections it dialed and receives only on the ones it
 * accepted: one connection per direction, no tie-breaking between simultaneous dials.
 *
 * Every connection opens with a fixed-size HELLO (magic, version, kind, node id, cluster id,
 * CRC32C); peer connections then carry length + kind + CRC32C framed Raft messages and opaque
 * application frames (the wire format is described at the top of transport.c and in
 * raftfs(5)). A connection that sends a bad hello or a malformed, oversized or corrupt frame is
 * closed with a log line naming its remote address; the node keeps serving the others.
 *
 * TLS (cfg.tls): every connection, both ways, is a TLS session from its first byte: the hello
 * and everything after it travel inside. A connection that starts with anything but a TLS
 * handshake (a plaintext hello, garbage) is refused at once; one whose handshake fails (no
 * certificate, another CA, an expired certificate) or does not end with a hello within the hello
 * timeout is closed. A peer's hello is believed only when its certificate chains to the peer CA
 * and names the address the cluster list gives the id it claims: a client certificate cannot act
 * as a peer, nor node 3's as node 2. A client's certificate must chain to the client CA. Each
 * refusal is one log line naming the source address. Without TLS a TLS handshake is refused the
 * same way.
 *
 * Loss: a message to a peer that is not connected, or whose output queue is over
 * max_queue_bytes, is refused (RAFT_EBUSY), dropped and counted; messages queued on a connection
 * that breaks are lost. Raft retransmits, so nothing else is done about it; application frames
 * are the caller's to send again (the key/value node does: kv/node.h, Sending again).
 *
 * Threads: one. The transport lives in the caller's event loop; every function and callback
 * runs on the loop's thread. Callbacks may call raft_transport_send / send_app / stats, but
 * must not call raft_transport_free.
 */

#define RAFT_TRANSPORT_HOST_BYTES 64u /* host text including its NUL */
#define RAFT_TRANSPORT_ERRMSG_BYTES 256u
#define RAFT_TRANSPORT_HELLO_BYTES 24u /* the fixed-size hello */
/* 2: append and heartbeat responses carry the follower's last index, snapshot chunks the image's
 * CRC (raft/codec.c); a node refuses the hello of another version, so that nodes of two versions
 * never misread each other's messages */
#define RAFT_TRANSPORT_VERSION 2u
#define RAFT_TRANSPORT_FRAME_HEADER_BYTES 12u
/* Payload of one frame: a whole codec frame (RAFT_CODEC_MAX_FRAME_BYTES, 64 MiB: an
 * InstallSnapshot chunk or an AppendEntries batch) or a kv/proto.h frame, with room to spare. */
#define RAFT_TRANSPORT_MAX_PAYLOAD_BYTES ((64u << 20) + (64u << 10))
#define RAFT_TRANSPORT_MAX_FRAME_BYTES                                                             \
	(RAFT_TRANSPORT_FRAME_HEADER_BYTES + RAFT_TRANSPORT_MAX_PAYLOAD_BYTES)
/* Bytes waiting in one peer's output queue beyond which new messages are dropped (default). */
#define RAFT_TRANSPORT_DEFAULT_MAX_QUEUE_BYTES (32u << 20)
/* Redial delays: the first after a failure is MIN, doubled after each failure up to MAX. A
 * connection that stays up for MAX ms counts as a success and the delays start again from MIN;
 * one that a peer closes sooner (say, refusing our hello) does not, so it is not hammered. */
#define RAFT_TRANSPORT_BACKOFF_MIN_MS 50u
#define RAFT_TRANSPORT_BACKOFF_MAX_MS 2000u
/* A dial that does not connect, or a queue that makes no progress (ours, or the kernel's:
 * bytes sent that the peer does not acknowledge, TCP_USER_TIMEOUT), for this long is closed. */
#define RAFT_TRANSPORT_WRITE_TIMEOUT_MS 3000u
/* An accepted connection must send its whole hello within this (default). */
#define RAFT_TRANSPORT_HELLO_TIMEOUT_MS 5000u
/* Accepted connections still waiting for their hello; more are refused at once. */
#define RAFT_TRANSPORT_MAX_PENDING_CONNS 64u

/* What an accepted connection says it is, in its hello. */
enum raft_transport_conn_kind { RAFT_TRANSPORT_KIND_PEER = 1, RAFT_TRANSPORT_KIND_CLIENT = 2 };

struct raft_transport_peer {
	uint32_t id; /* != 0 */
	char host[RAFT_TRANSPORT_HOST_BYTES]; /* IPv4 dotted quad */
	uint16_t port; /* != 0 */
};

struct raft_transport_config {
	uint32_t self_id; /* one of peers[].id */
	uint64_t cluster_id; /* raft_transport_cluster_id() of peers, the same on every node */
	unsigned n_peers; /* 1..RAFT_MAX_NODES, self included */
	struct raft_transport_peer peers[RAFT_MAX_NODES]; /* distinct ids and addresses */
	size_t max_queue_bytes; /* per peer; 0: RAFT_TRANSPORT_DEFAULT_MAX_QUEUE_BYTES */
	unsigned hello_timeout_ms; /* 0: RAFT_TRANSPORT_HELLO_TIMEOUT_MS; counts from the accept */
	/* NULL: plaintext. Else a RAFT_TLS_NODE (raft/tls.h) the caller keeps until the transport
	 * is freed; raft_tls_reload() on it changes what later connections use. */
	struct raft_tls *tls;
};

/* Who a client connection is, as the transport knows it (struct raft_transport_cbs.on_client). */
struct raft_transport_client {
	const char *remote; /* "a.b.c.d:port" */
	bool tls; /* the connection is TLS, with a certificate that chains to the client CA */
	const char *cn; /* TLS: the certificate's common name ("" when it has none); else NULL */
};

struct raft_transport_cbs {
	void *ctx;
	/* A Raft message from a peer (to == self, from == the sender's hello id). m and what it
	 * points to are valid during the call only: entry data and snapshot chunk data are
	 * raft_bufs the callee references (raft_buf_ref) or copies to keep them; raft_step does.
	 * Required. */
	void (*recv_msg)(void *ctx, const struct raft_msg *m);
	/* An application frame from peer `from`; buf (len bytes) is valid during the call only.
	 * NULL: application frames are dropped (and counted). */
	void (*recv_app)(void *ctx, uint32_t from, const void *buf, size_t len);
	/* Reads len bytes at offset of the snapshot image with this index into buf, when an
	 * outgoing InstallSnapshot chunk (data == NULL) is sent. 0 on success; anything else drops
	 * the message. NULL: such messages are refused with RAFT_EINVAL. */
	int (*fill_snapshot)(void *ctx, uint64_t index, uint64_t offset, void *buf, size_t len);
	/* A client connection, after its hello. The callee owns bev from now on (frees it with
	 * bufferevent_free, which closes the socket); its callbacks and timeouts are cleared, reading
	 * is enabled, and any bytes the client sent after the hello are already in its input buffer
	 * (check evbuffer_get_length(bufferevent_get_input(bev)) before waiting for more). A TLS
	 * bufferevent runs its callbacks deferred (BEV_OPT_DEFER_CALLBACKS). who and its strings
	 * are valid during the call. NULL: client connections are refused. */
	void (*on_client)(void *ctx, struct bufferevent *bev,
	                  const struct raft_transport_client *who);
	/* Diagnostics, one event, no trailing newline; level 0 debug, 1 info, 2 warn.
	 * NULL: levels 1 and 2 go to stderr. */
	void (*log)(void *ctx, int level, const char *msg);
};

struct raft_transport;

/*
 * Validates cfg, binds and listens on self's address (SO_REUSEADDR, exact address) and starts
 * dialing every peer. cfg and cbs are copied; base must outlive the transport. On failure
 * returns an error, *out is untouched and err (when not NULL) holds a message:
 * RAFT_EINVAL (bad configuration), RAFT_EIO (socket, bind or listen failed, e.g. "listen
 * 127.0.0.1:7001: Address already in use"), RAFT_ENOMEM.
 */
int raft_transport_new(struct event_base *base, const struct raft_transport_config *cfg,
                       const struct raft_transport_cbs *cbs, struct raft_transport **out, char *err,
                       size_t err_len);

/* Closes every connection the transport still owns (not the clients handed to on_client),
 * drops what is queued and frees t. NULL is ignored. */
void raft_transport_free(struct raft_transport *t);

/*
 * Queues m for peer m->to, encoded now (m is only read; the caller keeps what it points to).
 * A RAFT_MSG_SNAPSHOT with data == NULL and len > 0 has its chunk read through fill_snapshot
 * first. Returns RAFT_OK when queued; otherwise the message is dropped and the error says why:
 * RAFT_EBUSY (peer not connected, or its queue is over max_queue_bytes: counted in the stats),
 * RAFT_EIO (fill_snapshot failed), RAFT_EINVAL (unknown or own destination, m->from not
 * this node, no fill_snapshot), RAFT_ETOOBIG (over a codec or frame limit), RAFT_ECORRUPT/RAFT_ENOMEM from
 * the encoder. raft_transport_errmsg() has details. A queue accepts one message whatever its
 * size when it is empty, so a message larger than max_queue_bytes still goes out.
 */
int raft_transport_send(struct raft_transport *t, const struct raft_msg *m);

/* Queues an application frame of len bytes (copied) for peer `to`. Errors as above; len over
 * RAFT_TRANSPORT_MAX_PAYLOAD_BYTES is RAFT_ETOOBIG. */
int raft_transport_send_app(struct raft_transport *t, uint32_t to, const void *buf, size_t len);

/*
 * Writing. A frame is queued by raft_transport_send / send_app and written at the end of the
 * loop turn that queued it (an event made active then runs after the callbacks already active),
 * with one write per peer for all the frames of that turn, not through the bufferevent's write
 * event: that would cost two epoll_ctl and one more loop turn per message. Only what the socket
 * does not take at once waits for the write event (and its RAFT_TRANSPORT_WRITE_TIMEOUT_MS).
 * A frame waits in a staging buffer of its connection until then (with TLS too: one add of a
 * turn's frames to the TLS bufferevent makes a few records, not one per frame).
 *
 * raft_transport_flush writes what is queued for connected peers now, as far as their sockets
 * take it: a caller about to block (an fdatasync) lets its AppendEntries travel meanwhile, and
 * a caller that answers clients can choose what leaves first.
 */
void raft_transport_flush(struct raft_transport *t);

/*
 * The same for any connection written this way (the daemon's client connections): what the
 * caller gathered in staged (its own evbuffer) is written now behind what bev's output still
 * holds, as far as the socket takes it; staged is left empty. Plaintext: the bytes go straight
 * to the socket when no backlog waits, and EV_WRITE is on only while a backlog does (bev's write
 * callback calls raft_transport_write_done). TLS: the bytes join bev's output, which the TLS
 * bufferevent encrypts and writes at once. Returns 1 when bytes remain in bev's output (or an
 * error waits to be reported through bev's event callback), 0 when everything left.
 */
int raft_transport_write_now(struct bufferevent *bev, struct evbuffer *staged);

/* From bev's write callback (its output is empty): EV_WRITE goes off again (plaintext). */
void raft_transport_write_done(struct bufferevent *bev);

/* Bytes waiting to leave on a connection: staged (may be NULL) and bev's output (bev may be
 * NULL). */
size_t raft_transport_queued(struct bufferevent *bev, const struct evbuffer *staged);

/* Why the last failing call on t failed; "" when none. Valid until the next call on t. */
const char *raft_transport_errmsg(const struct raft_transport *t);

struct raft_transport_peer_stats {
	uint32_t id;
	bool connected; /* our outgoing connection is established */
	bool accepted; /* we hold an incoming connection from this peer */
	size_t queued_bytes; /* waiting in the outgoing queue */
	uint64_t msgs_sent; /* Raft messages queued */
	uint64_t apps_sent; /* application frames queued */
	uint64_t msgs_received;
	uint64_t apps_received;
	uint64_t dropped_queue_full; /* messages and frames refused: queue over its limit */
	uint64_t dropped_not_connected; /* refused: no connection (waiting to redial) */
	uint64_t connects; /* outgoing connections established */
};

struct raft_transport_stats {
	unsigned n_peers; /* every configured node but self */
	struct raft_transport_peer_stats peers[RAFT_MAX_NODES];
	uint64_t dropped_snapshot_fill; /* outgoing chunks dropped: fill_snapshot failed */
	uint64_t dropped_received; /* received messages dropped: wrong to/from, no recv_app */
	uint64_t conns_rejected; /* accepted connections closed for a protocol violation */
	uint64_t clients; /* client connections handed to on_client */
};

void raft_transport_stats(const struct raft_transport *t, struct raft_transport_stats *st);

/* --- helpers ---------------------------------------------------------------------------------- */

/* Writes the hello a connection of this kind opens with into out (RAFT_TRANSPORT_HELLO_BYTES).
 * Clients (the clerk) send it with node_id 0, kind RAFT_TRANSPORT_KIND_CLIENT and cluster_id 0
 * (a client may be given only some of the nodes, so it cannot know the cluster's id); peers
 * must send the cluster's id. */
void raft_transport_hello_encode(unsigned char *out, enum raft_transport_conn_kind kind,
                                 uint32_t node_id, uint64_t cluster_id);

/* Frame kinds (the wire format at the top of transport.c). */
#define RAFT_TRANSPORT_FRAME_RAFT 1u /* one raft/codec.h message */
#define RAFT_TRANSPORT_FRAME_APP 2u /* an application frame */

/* Writes the header of a frame of kind around the len payload bytes at payload into hdr
 * (RAFT_TRANSPORT_FRAME_HEADER_BYTES): length, kind and the CRC32C of both. */
void raft_transport_frame_header(unsigned char *hdr, unsigned kind, const void *payload,
                                 uint32_t len);

/*
 * Parses a cluster list "1=127.0.0.1:7001,2=127.0.0.2:7002,..." into cfg->peers and
 * cfg->n_peers and sets cfg->cluster_id; other fields are left alone. Ids are decimal 1..2^32-1,
 * hosts IPv4 dotted quads, ports 1..65535; no spaces, no empty items. RAFT_EINVAL with a
 * message in err (when not NULL) for bad input: duplicate id or address, bad port, missing '=',
 * more than RAFT_MAX_NODES nodes, ... On failure cfg is untouched.
 */
int raft_transport_parse_cluster(const char *list, struct raft_transport_config *cfg, char *err,
                                 size_t err_len);

/*
 * The cluster id of a list of nodes: FNV-1a 64 of its normal form, the items "id=a.b.c.d:port"
 * sorted by id and joined with ','. Independent of the order and spelling of the list.
 * Returns 0 if a host is not an IPv4 address.
 */
uint64_t raft_transport_cluster_id(const struct raft_transport_peer *peers, unsigned n_peers);

#endif /* RAFT_TRANSPORT_H */
