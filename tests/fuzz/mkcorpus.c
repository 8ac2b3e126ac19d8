/* mkcorpus.c - writes the fuzz targets' seed corpora with the real encoders (make fuzz-corpus). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "kv/cmd.h"
#include "kv/proto.h"
#include "kv/store.h"
#include "raft/codec.h"
#include "raft/le.h"
#include "raft/transport.h"
#include "tests/fuzz/fuzzlib.h"
#include "tests/fuzz/raftops.h"
#include "tests/lib/samples.h"

/*
 * Usage: mkcorpus DIR [NAME...]. For each target NAME (default: all) removes DIR/NAME/seed-*
 * and writes new seeds there: what the target's entry point reads, made by the code that makes
 * it for real (the codec, the storage of a real node, kv_snapshot_save, the command and
 * protocol encoders, a real transport's connection), in the layouts tests/fuzz/fuzz_NAME.c
 * describes. Regression inputs (any other file name) are left alone. Deterministic: the same
 * sources give the same seeds.
 */

static const char *out_dir;
static unsigned written;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mkcorpus: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A growing byte string. */
struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("out of memory");
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(struct bytes *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_u16(struct bytes *b, uint16_t v)
{
	unsigned char le[2] = {(unsigned char)v, (unsigned char)(v >> 8)};

	put(b, le, 2);
}

static void start_dir(const char *name)
{
	char path[512];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", out_dir, strerror(errno));
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	d = opendir(path);
	if (!d)
		die("opendir %s: %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char file[1024];
		if (strncmp(e->d_name, "seed-", 5) != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
		if (unlink(file) != 0)
			die("unlink %s: %s", file, strerror(errno));
	}
	closedir(d);
}

static void seed(const char *target, const char *name, const void *buf, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/seed-%s", out_dir, target, name);
	f = fopen(path, "wb");
	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0)
		die("write %s: %s", path, strerror(errno));
	written++;
}

/* --- codec: frames of every kind ---------------------------------------------------------------- */

static void codec_msg(struct raft_codec_buf *out, int type)
{
	static unsigned char chunk[64];
	struct raft_entry entries[SAMPLES_MSG_ENTRIES];
	struct raft_msg m;

	samples_msg(type, 1, 2, &m, entries);
	if (type == RAFT_MSG_SNAPSHOT) {
		m.u.snapshot.data = chunk;
		m.u.snapshot.len = sizeof(chunk);
	}
	if (raft_codec_encode_msg(out, &m) != RAFT_OK)
		die("encode %s", raft_msg_type_name(type));
}

static void make_codec(void)
{
	static unsigned char data[] = "an entry's payload";
	struct raft_entry e = {.term = 3, .index = 7, .type = RAFT_ENTRY_NORMAL};
	struct raft_hard_state hs = {.term = 5, .vote = 2};
	struct raft_snapshot_meta meta = {.index = 40, .term = 4, .size = 1234};
	struct raft_codec_buf b, all;
	char name[64];

	start_dir("codec");
	raft_codec_buf_init(&all);
	for (int t = 1; t < RAFT_MSG_TYPE_COUNT; t++) {
		raft_codec_buf_init(&b);
		codec_msg(&b, t);
		snprintf(name, sizeof(name), "msg-%s", raft_msg_type_name(t));
		seed("codec", name, b.data, b.len);
		codec_msg(&all, t);
		raft_codec_buf_free(&b);
	}
	raft_codec_buf_init(&b);
	e.data = data;
	e.len = sizeof(data) - 1;
	raft_codec_encode_entry(&b, &e);
	e.type = RAFT_ENTRY_NOOP;
	e.data = NULL;
	e.len = 0;
	e.index++;
	raft_codec_encode_entry(&b, &e);
	seed("codec", "entries", b.data, b.len);
	raft_codec_buf_free(&b);
	raft_codec_buf_init(&b);
	raft_codec_encode_hard_state(&b, 9, &hs);
	seed("codec", "hard-state", b.data, b.len);
	raft_codec_buf_free(&b);
	raft_codec_buf_init(&b);
	meta.conf = samples_conf();
	meta.crc = 0xdeadbeef;
	raft_codec_encode_snapshot_meta(&b, &meta);
	seed("codec", "snapshot-meta", b.data, b.len);
	raft_codec_buf_free(&b);
	seed("codec", "stream", all.data, all.len);
	raft_codec_buf_free(&all);
}

/* --- the storage targets: files a real node wrote ---------------------------------------------- */

static void make_storage(void)
{
	start_dir("wal");
	start_dir("meta");
	for (int snap = 0; snap < 2; snap++) {
		const struct fuzz_disk *d = fuzz_disk_template(snap);
		unsigned seg = 0, meta = 0;
		for (size_t i = 0; i < d->n; i++) {
			struct bytes b = {0};
			char name[128];
			if (strncmp(d->names[i], "wal-", 4) == 0) {
				put_u8(&b, (uint8_t)((snap ? 0x80 : 0) | seg));
				put(&b, d->bufs[i], d->lens[i]);
				snprintf(name, sizeof(name), "%s-%s", snap ? "snap" : "plain",
				         d->names[i]);
				seed("wal", name, b.p, b.len);
				seg++;
			} else if (strncmp(d->names[i], "metadata", 8) == 0) {
				for (int missing = 0; missing < 2; missing++) {
					b.len = 0;
					put_u8(&b,
					       (uint8_t)((snap ? 4 : 0) | (missing ? 2 : 0) |
					                 meta));
					put(&b, d->bufs[i], d->lens[i]);
					snprintf(name, sizeof(name), "%s-%s%s",
					         snap ? "snap" : "plain", d->names[i],
					         missing ? "-alone" : "");
					seed("meta", name, b.p, b.len);
				}
				meta++;
			}
			free(b.p);
		}
	}
}

/* --- the state machine: commands and snapshots -------------------------------------------------- */

static int stream_write(void *ctx, const void *p, size_t n)
{
	put(ctx, p, n);
	return 0;
}

#define HISTORY_READS 8u

/* Command k of a history that also reads (every read op) and reuses sessions (what clients
 * send), then ends with the cluster's settings, as a first leader proposes them (smaller than
 * the stores' own, so that they evict sessions). */
static void history_cmd(unsigned k, struct kv_cmd *c)
{
	static const struct {
		uint8_t op;
		const char *key;
		uint64_t offset;
		uint32_t count;
	} reads[HISTORY_READS] = {
	        {KV_OP_GET, "a", 0, 0},     {KV_OP_GETATTR, "d", 0, 0},   {KV_OP_READDIR, "", 0, 0},
	        {KV_OP_READDIR, "d", 0, 0}, {KV_OP_GET, "missing", 0, 0}, {KV_OP_GET, "d/l", 0, 0},
	        {KV_OP_READ, "a", 2, 5},    {KV_OP_READ, "a", 64, 4096},
	};

	if (k < FUZZ_HISTORY_CMDS) {
		fuzz_history_cmd(k, 9, c); /* the history's session opens at index 9 */
		return;
	}
	k -= FUZZ_HISTORY_CMDS;
	memset(c, 0, sizeof(*c));
	c->time_ms = 1700000100000ull;
	if (k >= HISTORY_READS) {
		c->op = KV_OP_SETTINGS;
		c->settings.max_value_bytes = 1024;
		c->settings.session_timeout_ms = 30000;
		c->settings.max_sessions = 2;
		return;
	}
	c->op = reads[k].op;
	c->key = reads[k].key;
	c->key_len = strlen(c->key);
	c->offset = reads[k].offset;
	c->count = reads[k].count;
}

#define HISTORY_ALL (FUZZ_HISTORY_CMDS + HISTORY_READS + 1)

static void encode_cmd(const struct kv_cmd *c, struct bytes *out)
{
	void *buf;
	size_t len;

	if (kv_cmd_encode(c, &buf, &len) != KV_OK)
		die("encode %s", kv_op_name(c->op));
	put(out, buf, len);
	raft_buf_unref(buf);
}

/* The store of the history applied up to command `upto`. */
static struct kv_store *history_store(unsigned upto)
{
	struct kv_store *s;

	if (kv_store_new(NULL, &s) != KV_OK)
		die("kv_store_new");
	for (unsigned k = 0; k < upto; k++) {
		struct bytes cmd = {0};
		struct kv_cmd c;
		struct kv_result r;
		history_cmd(k, &c);
		encode_cmd(&c, &cmd);
		if (kv_store_apply(s, k + 1, cmd.p, cmd.len, &r) != KV_OK)
			die("apply");
		kv_result_release(&r);
		free(cmd.p);
	}
	return s;
}

/* The image the real node wrote, and kv_snapshot_save of an empty store, of one in the middle
 * of the history (with a session) and of one at its end. */
static void make_snapshot(void)
{
	static const unsigned upto[] = {0, 10, HISTORY_ALL};
	const struct fuzz_disk *d = fuzz_disk_template(true);

	start_dir("snapshot");
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->names[i], ".data"))
			seed("snapshot", "node", d->bufs[i], d->lens[i]);
	for (size_t i = 0; i < sizeof(upto) / sizeof(upto[0]); i++) {
		struct kv_store *s = history_store(upto[i]);
		struct bytes snap = {0};
		char name[32];
		if (kv_snapshot_save(s, stream_write, &snap) != KV_OK)
			die("snapshot");
		snprintf(name, sizeof(name), "store-%u", upto[i]);
		seed("snapshot", name, snap.p, snap.len);
		free(snap.p);
		kv_store_free(s);
	}
}

static void make_cmd(void)
{
	struct bytes all = {0};
	char name[64];

	start_dir("cmd");
	for (unsigned k = 0; k < HISTORY_ALL; k++) {
		struct bytes one = {0}, cmd = {0};
		struct kv_cmd c;
		history_cmd(k, &c);
		encode_cmd(&c, &cmd);
		put_u16(&one, (uint16_t)cmd.len);
		put(&one, cmd.p, cmd.len);
		snprintf(name, sizeof(name), "%02u-%s", k, kv_op_name(c.op));
		seed("cmd", name, one.p, one.len);
		put(&all, one.p, one.len);
		free(one.p);
		free(cmd.p);
	}
	seed("cmd", "history", all.p, all.len);
	free(all.p);
}

/* --- the client protocol ------------------------------------------------------------------------ */

static void put_frame(struct bytes *b, const struct kv_proto_frame *f)
{
	void *buf;
	size_t len;

	if (kv_proto_encode(f, &buf, &len) != 0)
		die("kv_proto_encode");
	put(b, buf, len);
	free(buf);
}

/* Every history command as a request, a status request; with answers, their responses. */
static void proto_stream(struct bytes *b, bool answers)
{
	struct kv_store *s;

	if (kv_store_new(NULL, &s) != KV_OK)
		die("kv_store_new");
	for (unsigned k = 0; k < HISTORY_ALL; k++) {
		struct kv_proto_frame f = {.type = KV_PROTO_REQ, .id = 100 + k, .timeout_ms = 5000};
		struct bytes cmd = {0};
		struct kv_cmd c;
		struct kv_result r;
		history_cmd(k, &c);
		encode_cmd(&c, &cmd);
		f.body = cmd.p;
		f.body_len = cmd.len;
		if (!answers) {
			put_frame(b, &f);
		} else {
			void *buf;
			size_t len;
			if (kv_store_apply(s, k + 1, cmd.p, cmd.len, &r) != KV_OK ||
			    kv_proto_encode_resp(f.id, KV_STATUS_OK, 1, &r, &buf, &len) != 0)
				die("answer");
			put(b, buf, len);
			free(buf);
			kv_result_release(&r);
		}
		free(cmd.p);
	}
	if (!answers) {
		struct kv_proto_frame f = {.type = KV_PROTO_STATUS_REQ, .id = 7};
		put_frame(b, &f);
	} else {
		struct kv_proto_frame f = {.type = KV_PROTO_STATUS_RESP, .id = 7, .n_status = 3};
		for (unsigned i = 0; i < 3; i++)
			f.status_of[i] = (struct kv_proto_node_status){
			        .id = i + 1,
			        .role = i == 0 ? RAFT_LEADER : RAFT_FOLLOWER,
			        .leader = 1,
			        .term = 4,
			        .commit = 20,
			        .applied = 20,
			        .last_index = 21,
			        .snapshot_index = 9,
			        .log_bytes = 4096,
			        .keys = 8};
		put_frame(b, &f);
		f = (struct kv_proto_frame){
		        .type = KV_PROTO_RESP, .id = 8, .status = KV_STATUS_UNKNOWN};
		put_frame(b, &f);
	}
	kv_store_free(s);
}

static void make_proto(void)
{
	struct bytes req = {0}, resp = {0};
	size_t off = 0;
	unsigned k = 0;

	start_dir("proto");
	proto_stream(&req, false);
	proto_stream(&resp, true);
	seed("proto", "requests", req.p, req.len);
	seed("proto", "responses", resp.p, resp.len);
	/* each request alone, too */
	while (off < req.len) {
		size_t len = 4 + raft_le_get32(req.p + off);
		char name[32];
		snprintf(name, sizeof(name), "request-%02u", k++);
		seed("proto", name, req.p + off, len);
		off += len;
	}
	free(req.p);
	free(resp.p);
}

/* --- the transport: what a real node 2 sends on its connection to node 1 ------------------------ */

static uint16_t listen_port(int *fd, bool do_listen)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    (do_listen && listen(*fd, 4) != 0) ||
	    getsockname(*fd, (struct sockaddr *)&a, &len) != 0)
		die("cannot listen on a loopback port: %s", strerror(errno));
	return ntohs(a.sin_port);
}

static void recv_msg_ignored(void *ctx, const struct raft_msg *m)
{
	(void)ctx;
	(void)m;
}

static void log_quiet(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

/* Runs a transport as node 2 of {1, 2} whose node 1 is a socket of ours, sends it every kind of
 * message and an application frame, and returns what arrived on node 1's side. */
static void capture_peer_stream(struct bytes *out)
{
	struct raft_transport_config cfg = {.self_id = 2, .n_peers = 2};
	struct raft_transport_cbs cbs = {.recv_msg = recv_msg_ignored, .log = log_quiet};
	struct event_base *base = event_base_new();
	struct raft_transport *t;
	struct raft_transport_stats st;
	struct bytes app = {0};
	char err[256];
	int lfd, pfd, conn = -1;

	signal(SIGPIPE, SIG_IGN);
	cfg.peers[0].id = 1;
	cfg.peers[1].id = 2;
	snprintf(cfg.peers[0].host, sizeof(cfg.peers[0].host), "127.0.0.1");
	snprintf(cfg.peers[1].host, sizeof(cfg.peers[1].host), "127.0.0.1");
	cfg.peers[0].port = listen_port(&lfd, true);
	cfg.peers[1].port = listen_port(&pfd, false);
	close(pfd);
	cfg.cluster_id = FUZZ_CLUSTER_ID;
	if (!base || raft_transport_new(base, &cfg, &cbs, &t, err, sizeof(err)) != RAFT_OK)
		die("raft_transport_new: %s", err);
	for (int i = 0; i < 1000; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		raft_transport_stats(t, &st);
		if (st.peers[0].connected)
			break;
		usleep(1000);
	}
	if (!st.peers[0].connected || (conn = accept(lfd, NULL, NULL)) < 0)
		die("the transport did not connect");
	for (int type = 1; type < RAFT_MSG_TYPE_COUNT; type++) {
		struct raft_entry entries[SAMPLES_MSG_ENTRIES];
		static unsigned char chunk[48];
		struct raft_msg m;
		samples_msg(type, 2, 1, &m, entries);
		if (type == RAFT_MSG_SNAPSHOT) {
			m.u.snapshot.data = chunk;
			m.u.snapshot.len = sizeof(chunk);
			m.u.snapshot.offset = 0;
			m.u.snapshot.meta.size = sizeof(chunk);
		}
		if (raft_transport_send(t, &m) != RAFT_OK)
			die("raft_transport_send %s: %s", raft_msg_type_name(type),
			    raft_transport_errmsg(t));
	}
	proto_stream(&app, false);
	if (raft_transport_send_app(t, 1, app.p, 4 + raft_le_get32(app.p)) != RAFT_OK)
		die("raft_transport_send_app");
	free(app.p);
	raft_transport_flush(t);
	for (int i = 0; i < 200; i++) {
		unsigned char buf[4096];
		ssize_t n;
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = recv(conn, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			put(out, buf, (size_t)n);
			i = 0;
		} else {
			usleep(1000);
		}
	}
	close(conn);
	close(lfd);
	raft_transport_free(t);
	event_base_free(base);
}

static void make_transport(void)
{
	struct bytes peer = {0}, client = {0}, in = {0};
	unsigned char hello[RAFT_TRANSPORT_HELLO_BYTES];
	static const uint8_t chunks[] = {0, 1, 7, 200};

	start_dir("transport");
	capture_peer_stream(&peer);
	raft_transport_hello_encode(hello, RAFT_TRANSPORT_KIND_CLIENT, 0, 0);
	put(&client, hello, sizeof(hello));
	proto_stream(&client, false);
	for (size_t i = 0; i < sizeof(chunks); i++) {
		char name[32];
		in.len = 0;
		put_u8(&in, chunks[i]);
		put(&in, peer.p, peer.len);
		snprintf(name, sizeof(name), "peer-%u", chunks[i]);
		seed("transport", name, in.p, in.len);
		in.len = 0;
		put_u8(&in, chunks[i]);
		put(&in, client.p, client.len);
		snprintf(name, sizeof(name), "client-%u", chunks[i]);
		seed("transport", name, in.p, in.len);
	}
	/* the hello alone, of a peer and of a client */
	in.len = 0;
	put_u8(&in, 0);
	put(&in, peer.p, RAFT_TRANSPORT_HELLO_BYTES);
	seed("transport", "peer-hello", in.p, in.len);
	free(peer.p);
	free(client.p);
	free(in.p);
}

/* --- options: command lines and configuration files -------------------------------------------- */

static void make_options(void)
{
	static const char *const lines[][2] = {
	        {"id", "2"},
	        {"cluster", "1=127.0.0.1:7001,2=127.0.0.2:7002,3=127.0.0.3:7003"},
	        {"data", "/var/lib/raftfs/node2"},
	        {"snapshot-bytes", "64M"},
	        {"snapshot-trailing", "1024"},
	        {"max-value-bytes", "4m"},
	        {"log-level", "debug"},
	        {"tick-ms", "50"},
	        {"timeout", "30"},
	        {"hard", NULL},
	        {"foreground", NULL},
	};
	static const char *const argv1[] = {
	        "--id=1",
	        "--cluster=1=127.0.0.1:7001,2=127.0.0.2:7002,3=127.0.0.3:7003",
	        "--data=/tmp/n1",
	        "-f",
	        "-o",
	        "allow_other,default_permissions,auto_unmount,timeout=10",
	        "/mnt/raftfs"};
	static const char *const argv2[] = {"--id",
	                                    "3",
	                                    "--log-level",
	                                    "warn",
	                                    "-otick-ms=20,ro",
	                                    "--hard",
	                                    "--snapshot-bytes",
	                                    "1G",
	                                    "mnt"};
	struct bytes b = {0};

	start_dir("options");
	for (size_t i = 0; i < sizeof(argv1) / sizeof(argv1[0]); i++)
		put(&b, argv1[i], strlen(argv1[i]) + 1);
	seed("options", "argv", b.p, b.len);
	b.len = 0;
	for (size_t i = 0; i < sizeof(argv2) / sizeof(argv2[0]); i++)
		put(&b, argv2[i], strlen(argv2[i]) + 1);
	seed("options", "argv-spaced", b.p, b.len);
	/* a configuration file under a command line that sets the id itself */
	b.len = 0;
	put(&b, "--id=1", 7);
	put(&b, "", 1);
	put(&b, "# raftfs node\n", 14);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char line[256];
		if (lines[i][1])
			snprintf(line, sizeof(line), "%s = %s\n", lines[i][0], lines[i][1]);
		else
			snprintf(line, sizeof(line), "%s\n", lines[i][0]);
		put(&b, line, strlen(line));
	}
	seed("options", "config", b.p, b.len);
	free(b.p);
}

/* --- raft: programs of steps -------------------------------------------------------------------- */

static void op(struct bytes *b, enum fuzz_raft_op o, unsigned n, ...)
{
	va_list ap;

	put_u8(b, (uint8_t)o);
	va_start(ap, n);
	for (unsigned i = 0; i < n; i++)
		put_u8(b, (uint8_t)va_arg(ap, int));
	va_end(ap);
}

/* Ticks until an election is due, then lets every message and persist through. */
static void elect(struct bytes *b)
{
	op(b, FUZZ_OP_TICK_ALL, 1, 15);
	for (int i = 0; i < 4; i++)
		op(b, FUZZ_OP_RUN_MANY, 1, 63);
	op(b, FUZZ_OP_TICK_ALL, 1, 2);
	op(b, FUZZ_OP_RUN_MANY, 1, 63);
}

static void settle(struct bytes *b)
{
	op(b, FUZZ_OP_TICK_ALL, 1, 1);
	for (int i = 0; i < 3; i++)
		op(b, FUZZ_OP_RUN_MANY, 1, 63);
}

static void make_raft(void)
{
	struct bytes b = {0};

	start_dir("raft");
	put_u8(&b, 1);
	elect(&b);
	seed("raft", "elect", b.p, b.len);
	for (int k = 0; k < 6; k++) {
		op(&b, FUZZ_OP_PROPOSE, 1, k % 3);
		settle(&b);
	}
	op(&b, FUZZ_OP_READ, 1, 1);
	settle(&b);
	seed("raft", "replicate", b.p, b.len);

	/* a follower down while the others snapshot, back to an InstallSnapshot */
	b.len = 0;
	put_u8(&b, 2);
	elect(&b);
	op(&b, FUZZ_OP_CRASH, 1, 2);
	for (int k = 0; k < 60; k++) {
		op(&b, FUZZ_OP_PROPOSE, 1, k % 2);
		op(&b, FUZZ_OP_RUN_MANY, 1, 63);
	}
	op(&b, FUZZ_OP_RESTART, 1, 2);
	for (int k = 0; k < 12; k++)
		settle(&b);
	seed("raft", "snapshot", b.p, b.len);

	/* reordering, duplicates, losses and replays while proposals go on */
	b.len = 0;
	put_u8(&b, 3);
	elect(&b);
	for (int k = 0; k < 20; k++) {
		op(&b, FUZZ_OP_PROPOSE, 1, k % 3);
		op(&b, FUZZ_OP_RUN, 1, 3 * k + 1);
		op(&b, FUZZ_OP_DUPLICATE, 1, k);
		op(&b, FUZZ_OP_RUN, 1, 5 * k + 2);
		op(&b, FUZZ_OP_DROP, 1, k + 3);
		op(&b, FUZZ_OP_REPLAY, 1, k);
		op(&b, FUZZ_OP_TICK, 1, k % 3);
	}
	settle(&b);
	op(&b, FUZZ_OP_TRANSFER, 2, 0, 0);
	op(&b, FUZZ_OP_TRANSFER, 2, 1, 0);
	settle(&b);
	seed("raft", "reorder", b.p, b.len);

	/* messages made up from the bytes, true and false, of every kind */
	b.len = 0;
	put_u8(&b, 4);
	elect(&b);
	op(&b, FUZZ_OP_PROPOSE, 1, 0);
	settle(&b);
	for (int type = 1; type < RAFT_MSG_TYPE_COUNT; type++)
		for (int node = 0; node < 3; node++)
			op(&b, FUZZ_OP_FORGE, 12, node, type - 1, (node + 1) % 3, 0, 0x20, 0, 0, 0,
			   2, 1, 1, 0);
	op(&b, FUZZ_OP_LEADER_APPEND, 5, 0, 0, 1, 0, 2);
	op(&b, FUZZ_OP_LEADER_HEARTBEAT, 4, 0, 1, 0, 1);
	settle(&b);
	seed("raft", "forged", b.p, b.len);
	free(b.p);
}

static const struct {
	const char *name;
	void (*make)(void);
} makers[] = {
        {"codec", make_codec},     {"storage", make_storage}, {"snapshot", make_snapshot},
        {"cmd", make_cmd},         {"proto", make_proto},     {"transport", make_transport},
        {"options", make_options}, {"raft", make_raft},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr,
		        "usage: %s DIR [codec|storage|snapshot|cmd|proto|transport|options|raft...]\n",
		        argv[0]);
		return 2;
	}
	out_dir = argv[1];
	for (size_t i = 0; i < sizeof(makers) / sizeof(makers[0]); i++) {
		bool wanted = argc == 2;
		for (int a = 2; a < argc; a++)
			wanted = wanted || strcmp(argv[a], makers[i].name) == 0;
		if (wanted)
			makers[i].make();
	}
	printf("mkcorpus: %u seeds in %s\n", written, out_dir);
	return 0;
}
