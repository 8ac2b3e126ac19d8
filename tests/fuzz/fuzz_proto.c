/* fuzz_proto.c - libFuzzer target: the client protocol, as a node and a client read it. */
#include <stdlib.h>
#include <string.h>

#include "kv/cmd.h"
#include "kv/node.h"
#include "kv/proto.h"
#include "tests/fuzz/fuzzlib.h"

/*
 * Input: the bytes a client connection carries after its hello (kv/proto.h frames), which are
 * also what a peer sends in its application frames. They are walked as the daemon's client
 * reader walks them (kv_proto_frame_length, then kv_proto_decode of each whole frame; an
 * impossible length or a frame that does not decode ends the connection). Every frame that
 * decodes must encode again to the same bytes; a request's command and a response's result
 * go to their decoders (kv_cmd_decode, kv_result_decode: what the node and the clerk do with
 * them), and what decodes must encode to the same bytes.
 *
 * Then the requests go, as a peer's forwarded requests, to a real node (kv_node_recv_app of a
 * one-node cluster that leads, on the in-memory disk): it proposes, applies and answers each;
 * every answer it sends must decode as a response to one of the requests. Mutations keep the
 * frames' CRCs right most of the time.
 */

#define MAX_FRAMES 64u
#define PEER_ID 2u

struct answers {
	uint64_t ids[MAX_FRAMES];
	unsigned n_ids;
	unsigned n_answers;
};

static void on_app(void *ctx, uint32_t to, const void *buf, size_t len)
{
	struct answers *a = ctx;
	struct kv_proto_frame f;
	const char *why;
	bool known = false;

	FUZZ_CHECK(to == PEER_ID, "an answer went to node %u", (unsigned)to);
	FUZZ_CHECK(kv_proto_decode(buf, len, &f, &why) == 0, "a node's answer does not decode: %s",
	           why);
	FUZZ_CHECK(f.type == KV_PROTO_RESP, "a node answered with frame type %u", f.type);
	for (unsigned i = 0; i < a->n_ids; i++)
		known = known || a->ids[i] == f.id;
	FUZZ_CHECK(known, "an answer to request %llu, never sent", (unsigned long long)f.id);
	if (f.status == KV_STATUS_OK && f.body_len) {
		struct kv_result r;
		FUZZ_CHECK(kv_result_decode(f.body, f.body_len, &r) == KV_OK,
		           "a node's answer holds an undecodable result");
		kv_result_release(&r);
	}
	FUZZ_CHECK(++a->n_answers <= a->n_ids, "more answers than requests");
}

static void check_frame(const uint8_t *buf, size_t len, const struct kv_proto_frame *f)
{
	void *again;
	size_t again_len;

	FUZZ_CHECK(kv_proto_encode(f, &again, &again_len) == 0, "a decoded frame does not encode");
	FUZZ_CHECK(again_len == len && memcmp(again, buf, len) == 0,
	           "a frame does not encode to the bytes it was decoded from");
	free(again);
	if (f->type == KV_PROTO_REQ) {
		struct kv_cmd c;
		void *cmd;
		size_t cmd_len;
		if (kv_cmd_decode(f->body, f->body_len, &c) == KV_OK) {
			FUZZ_CHECK(kv_cmd_encode(&c, &cmd, &cmd_len) == KV_OK &&
			                   cmd_len == f->body_len &&
			                   memcmp(cmd, f->body, cmd_len) == 0,
			           "a request's command changed in a round trip");
			raft_buf_unref(cmd);
		}
	} else if (f->type == KV_PROTO_RESP && f->status == KV_STATUS_OK) {
		struct kv_result r;
		void *res;
		size_t res_len;
		if (kv_result_decode(f->body, f->body_len, &r) == KV_OK) {
			FUZZ_CHECK(kv_result_encode(&r, &res, &res_len) == KV_OK &&
			                   res_len == f->body_len &&
			                   memcmp(res, f->body, res_len) == 0,
			           "a response's result changed in a round trip");
			raft_buf_unref(res);
			kv_result_release(&r);
		}
	}
}

/* The requests, as a peer's forwarded requests, to a one-node cluster that leads. */
static void forward_to_node(const uint8_t *data, const size_t *offs, const size_t *lens, unsigned n,
                            struct answers *a)
{
	struct raft_vfs *vfs = raft_vfs_mem_new();
	struct fuzz_node fn = {.on_app = on_app, .app_ctx = a};
	struct kv_node_config cfg;
	char err[256];

	FUZZ_CHECK(vfs != NULL, "out of memory");
	fuzz_node_config(&cfg, vfs);
	FUZZ_CHECK(fuzz_node_open(&fn, &cfg, err, sizeof(err)) == 0, "kv_node_open: %s", err);
	FUZZ_CHECK(fuzz_node_settle(&fn, FUZZ_ELECTION_TICKS), "a new node does not elect itself");
	for (unsigned i = 0; i < n; i++)
		kv_node_recv_app(fn.n, PEER_ID, data + offs[i], lens[i]);
	fuzz_node_settle(&fn, FUZZ_ELECTION_TICKS);
	for (unsigned t = 0; t < 4; t++) {
		kv_node_tick(fn.n);
		fn.now_ms += 50;
	}
	fuzz_check_store(kv_node_store(fn.n));
	kv_node_close(fn.n);
	raft_vfs_free(vfs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t offs[MAX_FRAMES], lens[MAX_FRAMES], off = 0;
	struct answers a = {0};
	unsigned n = 0;

	while (n < MAX_FRAMES) {
		struct kv_proto_frame f;
		const char *why;
		size_t frame_len;
		int rv = kv_proto_frame_length(data + off, size - off, &frame_len);

		if (rv <= 0)
			break; /* impossible length: the connection is closed; or more is needed */
		if (kv_proto_decode(data + off, frame_len, &f, &why) != 0)
			break;
		check_frame(data + off, frame_len, &f);
		if (f.type == KV_PROTO_REQ) {
			offs[n] = off;
			lens[n] = frame_len;
			a.ids[n] = f.id;
			n++;
		}
		off += frame_len;
	}
	a.n_ids = n;
	if (n > 0)
		forward_to_node(data, offs, lens, n, &a);
	return 0;
}

static void fix(uint8_t *data, size_t size)
{
	fuzz_fix_proto_frames(data, size);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	return fuzz_mutate_fixing(data, size, max_size, seed, fix);
}
