/* clients.c - the daemon's client connections: requests, answers, identities, limits (clients.h). */
#include "fs/clients.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "kv/cmd.h"
#include "kv/node.h"
#include "kv/proto.h"
#include "raft/transport.h"

#define CLIENT_NAME_BYTES 320 /* "a.b.c.d:port CN=..." */
#define LOG_BYTES 512

struct client {
	struct fs_clients *cl;
	struct bufferevent *bev;
	struct evbuffer *staged; /* answers of this loop turn (raft_transport_write_now) */
	char name[CLIENT_NAME_BYTES]; /* for the log: address, and the certificate's CN */
	uint32_t uid, gid; /* the identity its requests are applied as */
	unsigned pending;
	size_t in_bytes; /* its share of cl->input_bytes */
	bool closed; /* the connection is gone; pending requests free themselves */
	bool dirty; /* on cl->dirty: answers queued since the last write */
	bool writing; /* inside fs_clients_write: not freed before it is done with it */
	struct client *next_dirty;
	struct client *prev, *next; /* open connections: cl->open */
};

struct client_req {
	struct kv_req req;
	struct client *c;
	uint64_t id;
};

struct fs_clients {
	struct event_base *base;
	struct kv_node *node;
	struct fs_clients_config cfg;
	struct event *write_ev; /* active: dirty clients are written at the end of this turn */
	struct client *dirty; /* clients with answers to write (client.next_dirty) */
	struct client *open; /* connections not closed */
	bool stopping;
	size_t input_bytes; /* sum of in_bytes over open connections */
	struct fs_clients_stats st;
};

static void cllog(struct fs_clients *cl, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void cllog(struct fs_clients *cl, int level, const char *fmt, ...)
{
	char msg[LOG_BYTES];
	va_list ap;

	if (!cl->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cl->cfg.log(cl->cfg.ctx, level, msg);
}

static void client_free_if_done(struct client *c)
{
	if (c->closed && c->pending == 0 && !c->dirty && !c->writing) {
		evbuffer_free(c->staged);
		free(c);
	}
}

/* Sets c's unfinished input to n bytes in the accounting. */
static void input_set(struct client *c, size_t n)
{
	c->cl->input_bytes -= c->in_bytes;
	c->cl->input_bytes += n;
	c->in_bytes = n;
}

/* Answers are written at the end of the loop turn that made them, one write per client for all
 * of them (raft/transport.h, writing): queued here. */
static void client_mark_dirty(struct client *c)
{
	struct fs_clients *cl = c->cl;

	if (c->closed || c->dirty)
		return;
	c->dirty = true;
	c->next_dirty = cl->dirty;
	cl->dirty = c;
	event_active(cl->write_ev, EV_TIMEOUT, 0); /* a no-op when it is active already */
}

static void client_close(struct client *c)
{
	struct fs_clients *cl = c->cl;

	if (c->closed)
		return;
	c->closed = true;
	input_set(c, 0);
	if (c->prev)
		c->prev->next = c->next;
	else
		cl->open = c->next;
	if (c->next)
		c->next->prev = c->prev;
	cl->st.clients--;
	bufferevent_free(c->bev);
	c->bev = NULL;
	client_free_if_done(c);
}

static void client_send(struct client *c, const void *buf, size_t len)
{
	if (evbuffer_add(c->staged, buf, len) != 0) {
		cllog(c->cl, 2, "client %s: out of memory for an answer: closing", c->name);
		client_close(c);
		return;
	}
	client_mark_dirty(c);
}

static void client_reply(struct client *c, const struct kv_proto_frame *f)
{
	void *buf;
	size_t len;

	if (c->closed)
		return;
	if (kv_proto_encode(f, &buf, &len) != 0) {
		cllog(c->cl, 2, "client %s: cannot encode an answer: closing", c->name);
		client_close(c);
		return;
	}
	client_send(c, buf, len);
	free(buf);
}

static void update_backpressure(struct client *c)
{
	size_t out;

	if (c->closed)
		return;
	out = raft_transport_queued(c->bev, c->staged);
	if (c->pending >= FS_CLIENT_MAX_PENDING || out >= FS_CLIENT_MAX_OUTPUT_BYTES)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void client_req_done(struct kv_req *req)
{
	struct client_req *cr = (struct client_req *)req;
	struct client *c = cr->c;
	void *buf;
	size_t len;

	if (!c->closed) {
		if (kv_proto_encode_resp(cr->id, req->status, req->leader, &req->result, &buf,
		                         &len) == 0) {
			client_send(c, buf, len);
			free(buf);
		} else {
			cllog(c->cl, 2, "client %s: cannot encode an answer: closing", c->name);
			client_close(c);
		}
	}
	kv_result_release(&req->result);
	raft_buf_unref(req->cmd);
	free(cr);
	c->pending--;
	update_backpressure(c);
	client_free_if_done(c);
}

static void client_request(struct client *c, const struct kv_proto_frame *f)
{
	struct client_req *cr = calloc(1, sizeof(*cr));
	struct kv_proto_frame resp = {.type = KV_PROTO_RESP, .id = f->id};

	resp.status = c->cl->stopping ? KV_STATUS_SHUTDOWN : KV_STATUS_NOT_APPLIED;
	if (!cr)
		goto refuse;
	cr->req.cmd = raft_buf_alloc(f->body_len);
	if (!cr->req.cmd) {
		free(cr);
		goto refuse;
	}
	if (f->body_len)
		memcpy(cr->req.cmd, f->body, f->body_len);
	cr->req.cmd_len = f->body_len;
	/* the connection's identity, whatever the client wrote (DESIGN.md 9) */
	if (kv_cmd_set_caller(cr->req.cmd, cr->req.cmd_len, c->uid, c->gid) != KV_OK) {
		raft_buf_unref(cr->req.cmd);
		free(cr);
		resp.status = KV_STATUS_BAD_REQUEST;
		goto refuse;
	}
	cr->req.cb = client_req_done;
	cr->req.timeout_ms = f->timeout_ms ? f->timeout_ms : FS_CLIENT_DEFAULT_TIMEOUT_MS;
	cr->c = c;
	cr->id = f->id;
	c->pending++;
	if (kv_node_submit(c->cl->node, &cr->req) == 0) {
		update_backpressure(c);
		return;
	}
	c->pending--;
	raft_buf_unref(cr->req.cmd);
	free(cr);
refuse:
	resp.leader = kv_node_leader(c->cl->node);
	client_reply(c, &resp);
}

static void client_status(struct client *c, const struct kv_proto_frame *f)
{
	struct kv_proto_frame resp = {.type = KV_PROTO_STATUS_RESP, .id = f->id, .n_status = 1};

	kv_node_status(c->cl->node, &resp.status_of[0]);
	client_reply(c, &resp);
}

/* The client holding the most unfinished input (the one to close when all of it is too much). */
static struct client *largest_input(struct fs_clients *cl)
{
	struct client *big = cl->open;

	for (struct client *c = cl->open; c; c = c->next)
		if (c->in_bytes > big->in_bytes)
			big = c;
	return big;
}

/* Counts c's unfinished input; past the budget of all clients the largest holder goes. Returns
 * -1 when c itself was closed. */
static int account_input(struct client *c)
{
	struct fs_clients *cl = c->cl;

	input_set(c, evbuffer_get_length(bufferevent_get_input(c->bev)));
	while (cl->input_bytes > cl->cfg.max_total_input_bytes) {
		struct client *big = largest_input(cl);

		cllog(cl, 2,
		      "closing client %s: clients hold %zu bytes of unfinished requests, over "
		      "--max-total-client-input-bytes=%zu; it holds the most (%zu)",
		      big->name, cl->input_bytes, cl->cfg.max_total_input_bytes, big->in_bytes);
		cl->st.closed_input++;
		client_close(big);
		if (big == c)
			return -1;
	}
	return 0;
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct fs_clients *cl = c->cl;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->closed) {
		size_t avail = evbuffer_get_length(in), frame_len = 0, announced;
		unsigned char head[4];
		struct kv_proto_frame f;
		const char *why;
		unsigned char *frame;
		int rv;

		if (avail < 4)
			break;
		evbuffer_copyout(in, head, 4);
		rv = kv_proto_frame_length(head, avail, &frame_len);
		if (rv < 0) {
			cllog(cl, 2, "client %s: impossible frame length: closing", c->name);
			client_close(c);
			return;
		}
		announced = 4u +
		        ((size_t)head[0] | (size_t)head[1] << 8 | (size_t)head[2] << 16 |
		         (size_t)head[3] << 24);
		if (announced > cl->cfg.max_input_bytes) {
			/* known from its first 4 bytes: closed before the rest is read */
			cllog(cl, 2,
			      "closing client %s: a request of %zu bytes is over "
			      "--max-client-input-bytes=%zu",
			      c->name, announced, cl->cfg.max_input_bytes);
			cl->st.closed_input++;
			client_close(c);
			return;
		}
		if (rv == 0)
			break;
		frame = evbuffer_pullup(in, (ev_ssize_t)frame_len);
		if (!frame || kv_proto_decode(frame, frame_len, &f, &why) != 0) {
			cllog(cl, 2, "client %s: %s: closing", c->name,
			      frame ? why : "out of memory");
			client_close(c);
			return;
		}
		if (f.type == KV_PROTO_REQ)
			client_request(c, &f);
		else if (f.type == KV_PROTO_STATUS_REQ)
			client_status(c, &f);
		else {
			cllog(cl, 2, "client %s: unexpected frame type %u: closing", c->name,
			      f.type);
			client_close(c);
			return;
		}
		if (c->closed)
			break;
		evbuffer_drain(in, frame_len);
		if (c->pending >= FS_CLIENT_MAX_PENDING)
			break; /* backpressure: the rest waits in the buffer */
	}
	if (!c->closed)
		(void)account_input(c);
	if (cl->cfg.after_input)
		cl->cfg.after_input(cl->cfg.ctx);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		if (c->pending > 0) {
			/* waiting for its answers is not idling: the reading the timeout stopped
			 * goes on */
			update_backpressure(c);
			return;
		}
		cllog(c->cl, 1, "closing client %s: idle for %u s", c->name,
		      c->cl->cfg.idle_timeout_ms / 1000u);
		c->cl->st.closed_idle++;
		client_close(c);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		client_close(c);
}

/* The output drained (written here or by the bufferevent): read again if backpressure had
 * stopped it; frames may wait in the input buffer. */
static void client_drained(struct client *c)
{
	update_backpressure(c);
	if (!c->closed && c->pending < FS_CLIENT_MAX_PENDING &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		client_read_cb(c->bev, c);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	raft_transport_write_done(bev); /* the backlog is gone: writes are ours again */
	client_drained(c);
}

void fs_clients_write(struct fs_clients *cl)
{
	struct client *c;

	while ((c = cl->dirty) != NULL) {
		cl->dirty = c->next_dirty;
		c->dirty = false;
		/* client_drained may read more frames, answer some (c is dirty again and back on
		 * the list) or close c */
		c->writing = true;
		if (!c->closed && raft_transport_write_now(c->bev, c->staged) == 0)
			client_drained(c);
		c->writing = false;
		client_free_if_done(c);
	}
}

static void write_soon_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fs_clients_write(arg);
}

void fs_clients_accept(struct fs_clients *cl, struct bufferevent *bev,
                       const struct raft_transport_client *who)
{
	struct client *c;
	uint32_t uid, gid;

	if (cl->st.clients >= cl->cfg.max_clients) {
		cllog(cl, 2, "refusing client %s: %u clients are connected (--max-clients)",
		      who->remote, cl->st.clients);
		cl->st.refused_max_clients++;
		bufferevent_free(bev);
		return;
	}
	if (cl->cfg.identity(cl->cfg.ctx, who->cn, &uid, &gid) != 0) {
		cllog(cl, 2, "refusing client %s: certificate CN=%s matches no --client-identity",
		      who->remote, who->cn ? who->cn : "");
		cl->st.refused_identity++;
		bufferevent_free(bev);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->staged = evbuffer_new())) {
		cllog(cl, 2, "refusing client %s: out of memory", who->remote);
		free(c);
		bufferevent_free(bev);
		return;
	}
	c->cl = cl;
	c->bev = bev;
	c->uid = uid;
	c->gid = gid;
	if (who->cn)
		snprintf(c->name, sizeof(c->name), "%s CN=%s", who->remote, who->cn);
	else
		snprintf(c->name, sizeof(c->name), "%s", who->remote);
	c->next = cl->open;
	if (cl->open)
		cl->open->prev = c;
	cl->open = c;
	cl->st.clients++;
	cl->st.accepted++;
	cllog(cl, 0, "client %s acts as %u:%u", c->name, (unsigned)uid, (unsigned)gid);
	bufferevent_setcb(bev, client_read_cb, client_write_cb, client_event_cb, c);
	/* a connection's unfinished input stays within its budget: no read goes past it */
	bufferevent_setwatermark(bev, EV_READ, 0, cl->cfg.max_input_bytes);
	if (cl->cfg.idle_timeout_ms) {
		struct timeval tv = {.tv_sec = cl->cfg.idle_timeout_ms / 1000u,
		                     .tv_usec = (cl->cfg.idle_timeout_ms % 1000u) * 1000};
		bufferevent_set_timeouts(bev, &tv, NULL);
	}
	bufferevent_enable(bev, EV_READ);
	/* answers: fs_clients_write (a TLS bufferevent keeps its write event on) */
	raft_transport_write_done(bev);
	if (evbuffer_get_length(bufferevent_get_input(bev)))
		client_read_cb(bev, c);
}

void fs_clients_stopping(struct fs_clients *cl)
{
	cl->stopping = true;
}

void fs_clients_stats(const struct fs_clients *cl, struct fs_clients_stats *st)
{
	*st = cl->st;
	st->input_bytes = cl->input_bytes;
}

int fs_clients_new(struct event_base *base, struct kv_node *node,
                   const struct fs_clients_config *cfg, struct fs_clients **out)
{
	struct fs_clients *cl;

	if (!cfg->identity || cfg->max_clients == 0 || cfg->max_input_bytes < 4096 ||
	    cfg->max_total_input_bytes < cfg->max_input_bytes)
		return -1;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return -1;
	cl->base = base;
	cl->node = node;
	cl->cfg = *cfg;
	cl->write_ev = event_new(base, -1, 0, write_soon_cb, cl);
	if (!cl->write_ev) {
		free(cl);
		return -1;
	}
	*out = cl;
	return 0;
}

void fs_clients_free(struct fs_clients *cl)
{
	if (!cl)
		return;
	while (cl->open)
		client_close(cl->open);
	/* closed clients still on the dirty list are freed as it is emptied */
	while (cl->dirty) {
		struct client *c = cl->dirty;

		cl->dirty = c->next_dirty;
		c->dirty = false;
		client_free_if_done(c);
	}
	event_free(cl->write_ev);
	free(cl);
}
