/* nemesis_audit.c - the nemesis's keys and client ids, and its audit of a recorded history. */
#include "tests/lib/nemesis.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/lincheck.h"

int nemesis_key_count(const struct nemesis_keys *k)
{
	return k->keys + k->fd_keys * k->generations;
}

void nemesis_rotated_name(int slot, int gen, char *buf)
{
	snprintf(buf, NEMESIS_KEY_BYTES, "f%d.%d", slot, gen);
}

void nemesis_key_name(const struct nemesis_keys *k, int i, char *buf)
{
	if (i < k->keys)
		snprintf(buf, NEMESIS_KEY_BYTES, "k%d", i);
	else
		nemesis_rotated_name((i - k->keys) % k->fd_keys, (i - k->keys) / k->fd_keys, buf);
}

char *nemesis_dup_bytes(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		if (n)
			memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* A written value of the history, for finding the operation a token of a final value came from. */
struct written {
	const char *key;
	const char *value;
	size_t op;
};

static int written_cmp(const void *a, const void *b)
{
	const struct written *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->value, y->value);
}

static bool is_final(const struct lin_op *op)
{
	return op->client >= NEMESIS_CLIENT_FINAL_BASE;
}

int nemesis_client_kind(int client)
{
	if (client <= 0 || client >= NEMESIS_CLIENT_SETUP)
		return -1;
	return client >= NEMESIS_CLIENT_CLERK_BASE   ? NEMESIS_CLERK
	        : client >= NEMESIS_CLIENT_FORK_BASE ? NEMESIS_FORK
	        : client >= NEMESIS_CLIENT_FD_BASE   ? NEMESIS_FD
	                                             : NEMESIS_MOUNT;
}

static const char *const kind_label[] = {
        [LIN_PUT] = "put",       [LIN_APPEND] = "append",    [LIN_GET] = "get",
        [LIN_DELETE] = "delete", [LIN_WRITE_AT] = "writeat", [LIN_TRUNCATE] = "truncate"};
static const char *const client_label[] = {[NEMESIS_MOUNT] = "mount",
                                           [NEMESIS_CLERK] = "clerk",
                                           [NEMESIS_FD] = "descriptor",
                                           [NEMESIS_FORK] = "fork"};

/* Operations per minute of call time by kind and outcome, and per client kind for the run. */
static void audit_minutes(const struct lin_history *h)
{
	enum { KINDS = LIN_KIND_COUNT, CLIENT_KINDS = NEMESIS_CLIENT_KINDS };
	size_t n = lin_history_count(h), minutes = 0;
	long(*cnt)[KINDS][3] = NULL, all[KINDS][3] = {{0}}, by_client[CLIENT_KINDS][KINDS][3];
	int64_t origin = INT64_MAX, last = 0;
	static const int cols[] = {LIN_PUT, LIN_APPEND, LIN_GET, LIN_WRITE_AT, LIN_TRUNCATE};

	memset(by_client, 0, sizeof by_client);
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *op = lin_history_op(h, i);

		if (nemesis_client_kind(op->client) >= 0) {
			origin = op->call_time < origin ? op->call_time : origin;
			last = op->call_time > last ? op->call_time : last;
		}
	}
	if (origin == INT64_MAX)
		return;
	minutes = (size_t)((last - origin) / (60 * NEMESIS_NS_PER_S)) + 1;
	cnt = calloc(minutes, sizeof *cnt);
	if (!cnt)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *op = lin_history_op(h, i);
		int ck = nemesis_client_kind(op->client);
		size_t m;

		if (ck < 0)
			continue;
		m = (size_t)((op->call_time - origin) / (60 * NEMESIS_NS_PER_S));
		cnt[m][op->kind][op->status]++;
		all[op->kind][op->status]++;
		by_client[ck][op->kind][op->status]++;
	}
	printf("operations per minute of the run (by call time), ok/fail/unknown:\n");
	printf("  %-6s", "minute");
	for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
		printf(" %-20s", kind_label[cols[c]]);
	printf(" total\n");
	for (size_t m = 0; m <= minutes; m++) {
		long(*c)[3] = m < minutes ? cnt[m] : all;
		long total = 0;
		char label[16];

		for (int k = 0; k < KINDS; k++)
			for (int st = 0; st < 3; st++)
				total += c[k][st];
		snprintf(label, sizeof label, m < minutes ? "%zu" : "all", m);
		printf("  %-6s", label);
		for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
			printf(" %6ld/%6ld/%6ld", c[cols[k]][0], c[cols[k]][1], c[cols[k]][2]);
		printf(" %7ld\n", total);
	}
	printf("by client kind, ok/fail/unknown:\n");
	for (int ck = 0; ck < CLIENT_KINDS; ck++) {
		printf("  %-10s", client_label[ck]);
		for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
			printf(" %6ld/%6ld/%6ld", by_client[ck][cols[k]][0],
			       by_client[ck][cols[k]][1], by_client[ck][cols[k]][2]);
		printf("\n");
	}
	printf("  over %.1f minutes\n", (double)(last - origin) / (60.0 * NEMESIS_NS_PER_S));
	free(cnt);
}

/* The value the final reads of key agree on (NULL when none, or when they differ). */
static const struct lin_op *final_read(const struct lin_history *h, const char *key, int *bad)
{
	const struct lin_op *first = NULL;
	size_t n = lin_history_count(h);

	for (size_t i = 0; i < n; i++) {
		const struct lin_op *op = lin_history_op(h, i);

		if (!is_final(op) || op->kind != LIN_GET || op->status != LIN_STATUS_OK ||
		    strcmp(op->key, key) != 0)
			continue;
		if (!first) {
			first = op;
		} else if (op->output_len != first->output_len ||
		           memcmp(op->output, first->output, first->output_len) != 0) {
			printf("DIVERGENCE: final reads of %s differ (history lines %lu and %lu)\n",
			       key, first->line, op->line);
			(*bad)++;
			return NULL;
		}
	}
	return first;
}

/* Whether write l may have taken effect after operation x did. */
static bool may_follow(const struct lin_op *l, const struct lin_op *x)
{
	return l != x && (l->status == LIN_STATUS_UNKNOWN || l->return_time >= x->call_time);
}

/*
 * The Puts that may have been the last applied to key: every Put of "" (its value leaves no
 * token) and the Put whose value the final value starts with (first, NULL if none). A write
 * missing from the final value was legitimately replaced only if one of them may have taken
 * effect after it. Returns how many were stored in *out (caller frees), or -1.
 */
static long last_put_candidates(const struct lin_history *h, const char *key, const char *first,
                                const struct lin_op ***out)
{
	size_t n = lin_history_count(h);
	long c = 0;

	*out = calloc(n ? n : 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *l = lin_history_op(h, i);

		if (l->kind == LIN_PUT && l->status != LIN_STATUS_FAILED &&
		    strcmp(l->key, key) == 0 &&
		    (l->value_len == 0 || (first && strcmp(l->value, first) == 0)))
			(*out)[c++] = l;
	}
	return c;
}

/* The tokens of a final value: written to this key, each once, a Put's only first, none of a
 * write that failed. The first token goes to *first (caller frees). Number of problems. */
static int audit_tokens(const struct lin_history *h, const struct written *w, size_t nw,
                        const char *key, const struct lin_op *fin, char **first, bool *present)
{
	const char *p = fin->output, *end = fin->output + fin->output_len;
	int bad = 0;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		size_t len = semi ? (size_t)(semi - p) + 1 : (size_t)(end - p);
		char *tok = nemesis_dup_bytes(p, len);
		struct written probe = {.key = key, .value = tok}, *hit;
		const struct lin_op *op;

		if (!tok)
			return bad + 1;
		hit = bsearch(&probe, w, nw, sizeof *w, written_cmp);
		op = hit ? lin_history_op(h, hit->op) : NULL;
		if (!op) {
			printf("BAD VALUE: %s holds \"%s\", never written to it\n", key, tok);
			bad++;
		} else if (present[hit->op]) {
			printf("DUPLICATE: %s holds \"%s\" twice (history line %lu)\n", key, tok,
			       op->line);
			bad++;
		} else if (op->status == LIN_STATUS_FAILED) {
			printf("FAILED WRITE APPLIED: %s holds \"%s\" of a %s that failed (history "
			       "line %lu)\n",
			       key, tok, op->kind == LIN_PUT ? "put" : "append", op->line);
			bad++;
		} else if (op->kind == LIN_PUT && p != fin->output) {
			printf("BAD VALUE: %s holds the put \"%s\" after other values\n", key, tok);
			bad++;
		}
		if (hit)
			present[hit->op] = true;
		if (p == fin->output)
			*first = strdup(tok);
		free(tok);
		p += len;
	}
	return bad;
}

/* Acknowledged writes to key that nothing applied later could have overwritten are present. */
static int audit_lost(const struct lin_history *h, const char *key, const char *first,
                      const bool *present)
{
	size_t n = lin_history_count(h);
	const struct lin_op **last;
	long nlast = last_put_candidates(h, key, first, &last);
	int bad = 0;

	if (nlast < 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *op = lin_history_op(h, i);
		bool put = op->kind == LIN_PUT, replaced = false;

		if (is_final(op) || op->kind == LIN_GET || op->status != LIN_STATUS_OK ||
		    op->value_len == 0 || strcmp(op->key, key) != 0)
			continue;
		if (put ? first && strcmp(first, op->value) == 0 : present[i])
			continue;
		for (long j = 0; j < nlast && !replaced; j++)
			replaced = may_follow(last[j], op);
		if (replaced)
			continue;
		printf("LOST WRITE: the acknowledged %s \"%s\" to %s (history line %lu) is not in "
		       "the final value, and no later Put can have replaced it\n",
		       put ? "put" : "append", op->value, key, op->line);
		bad++;
	}
	free(last);
	return bad;
}

int nemesis_audit(const char *history, const struct nemesis_keys *keys_of_run)
{
	struct lin_history *h = NULL;
	struct written *w;
	bool *present;
	char err[512];
	size_t n, nw = 0;
	int bad = 0, keys = 0;

	if (lin_history_load(history, &h, err, sizeof err) != LIN_OK) {
		fprintf(stderr, "nemesis audit: %s\n", err);
		return 2;
	}
	n = lin_history_count(h);
	w = calloc(n ? n : 1, sizeof *w);
	present = calloc(n ? n : 1, sizeof *present);
	if (!w || !present) {
		free(w);
		free(present);
		lin_history_free(h);
		return 2;
	}
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *op = lin_history_op(h, i);

		if (op->kind != LIN_GET && op->value_len)
			w[nw++] = (struct written){op->key, op->value, i};
	}
	qsort(w, nw, sizeof *w, written_cmp);
	audit_minutes(h);
	for (int k = 0; k < keys_of_run->keys; k++) {
		char key[NEMESIS_KEY_BYTES], *first = NULL;
		const struct lin_op *fin;

		nemesis_key_name(keys_of_run, k, key);
		fin = final_read(h, key, &bad);
		if (!fin) {
			printf("NO FINAL VALUE: %s was not read at the end\n", key);
			bad++;
			continue;
		}
		bad += audit_tokens(h, w, nw, key, fin, &first, present);
		bad += audit_lost(h, key, first, present);
		free(first);
		keys++;
	}
	/* WriteAt and Truncate cut tokens: the rotated keys are checked for linearizability only,
	 * and here for being read back alike everywhere */
	for (int k = keys_of_run->keys; k < nemesis_key_count(keys_of_run); k++) {
		char key[NEMESIS_KEY_BYTES];

		nemesis_key_name(keys_of_run, k, key);
		if (!final_read(h, key, &bad)) {
			printf("NO FINAL VALUE: %s was not read at the end\n", key);
			bad++;
		}
	}
	printf("audit: %zu operations, %d keys and %d rotated ones: %s\n", n, keys,
	       nemesis_key_count(keys_of_run) - keys_of_run->keys,
	       bad ? "PROBLEMS FOUND"
	           : "every final value is made of written values, each once, "
	             "and no acknowledged write is missing");
	free(w);
	free(present);
	lin_history_free(h);
	return bad ? 1 : 0;
}
