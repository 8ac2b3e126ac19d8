/* core_util.c - small pieces of the Raft core: refcounted buffers, error and name tables, conf. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

/* The refcount sits in front of the payload so that a payload pointer is all anyone passes. The
 * count is atomic because a storage thread may hold references while the loop drops its own. */
struct raft_buf_hdr {
	atomic_uint refs;
	uint32_t len;
	/* payload follows, max_align_t aligned */
	_Alignas(max_align_t) unsigned char data[];
};

static struct raft_buf_hdr *buf_hdr(void *buf)
{
	return (struct raft_buf_hdr *)((unsigned char *)buf - offsetof(struct raft_buf_hdr, data));
}

void *raft_buf_alloc(size_t len)
{
	struct raft_buf_hdr *h;

	if (len > UINT32_MAX)
		return NULL;
	h = malloc(sizeof(*h) + len);
	if (!h)
		return NULL;
	atomic_init(&h->refs, 1);
	h->len = (uint32_t)len;
	return h->data;
}

void raft_buf_ref(void *buf)
{
	if (buf)
		atomic_fetch_add_explicit(&buf_hdr(buf)->refs, 1, memory_order_relaxed);
}

void raft_buf_unref(void *buf)
{
	struct raft_buf_hdr *h;

	if (!buf)
		return;
	h = buf_hdr(buf);
	if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
		free(h);
}

static const char *const err_names[RAFT_ERR_COUNT] = {
        [RAFT_OK] = "success",
        [RAFT_ENOMEM] = "out of memory",
        [RAFT_EINVAL] = "invalid argument",
        [RAFT_ENOTLEADER] = "not the leader",
        [RAFT_EBUSY] = "busy: a limit is reached",
        [RAFT_ETOOBIG] = "too big",
        [RAFT_ECORRUPT] = "corrupt data",
        [RAFT_EIO] = "I/O error",
        [RAFT_ENOSPC] = "no space left on device",
        [RAFT_ENOENT] = "not found",
        [RAFT_ESHUTDOWN] = "shut down after a fatal error",
};

const char *raft_strerror(int err)
{
	if (err < 0 || err >= RAFT_ERR_COUNT || !err_names[err])
		return "unknown error";
	return err_names[err];
}

const char *raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRE_CANDIDATE:
		return "pre-candidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "unknown";
}

static const char *const msg_names[RAFT_MSG_TYPE_COUNT] = {
        [RAFT_MSG_VOTE] = "vote",
        [RAFT_MSG_VOTE_RESP] = "vote-resp",
        [RAFT_MSG_APPEND] = "append",
        [RAFT_MSG_APPEND_RESP] = "append-resp",
        [RAFT_MSG_HEARTBEAT] = "heartbeat",
        [RAFT_MSG_HEARTBEAT_RESP] = "heartbeat-resp",
        [RAFT_MSG_SNAPSHOT] = "snapshot",
        [RAFT_MSG_SNAPSHOT_RESP] = "snapshot-resp",
        [RAFT_MSG_TIMEOUT_NOW] = "timeout-now",
        [RAFT_MSG_READ_INDEX] = "read-index",
        [RAFT_MSG_READ_INDEX_RESP] = "read-index-resp",
};

const char *raft_msg_type_name(int type)
{
	if (type <= 0 || type >= RAFT_MSG_TYPE_COUNT)
		return "unknown";
	return msg_names[type];
}

bool raft_conf_contains(const struct raft_conf *conf, uint32_t id)
{
	for (unsigned i = 0; i < conf->n; i++)
		if (conf->ids[i] == id)
			return true;
	for (unsigned i = 0; i < conf->n_old; i++)
		if (conf->old_ids[i] == id)
			return true;
	return false;
}

void raft_config_default(struct raft_config *cfg, uint32_t id, const struct raft_conf *conf)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->id = id;
	if (conf)
		cfg->conf = *conf;
	cfg->election_ticks = 10;
	cfg->heartbeat_ticks = 1;
	cfg->pre_vote = true;
	cfg->check_quorum = true;
	cfg->max_msg_bytes = 1u << 20;
	cfg->max_inflight_msgs = 64;
	cfg->max_inflight_bytes = 8u << 20;
	cfg->max_uncommitted_bytes = 64u << 20;
	cfg->max_entry_bytes = 8u << 20;
	cfg->snapshot_chunk_bytes = 1u << 20;
	cfg->snapshot_trailing = 1024;
}
