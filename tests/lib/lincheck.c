/* lincheck.c - per-key Wing-Gong-Lowe linearizability search, and the history file format. */
#include "tests/lib/lincheck.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIN_NIL UINT32_MAX
#define LIN_FLAT (UINT32_MAX - 1) /* struct val.tail of a value spelled out in vals.arena */
#define LIN_POISON 1u /* the value id of "holds the input of a write no Get read" */
#define LIN_CLOCK_EVERY_STEPS 1024u /* steps between two looks at the clock */
#define LIN_CACHE_PROBES 32u /* slots of the memo cache looked at from a tag's home slot */
#define LIN_CACHE_FIRST_SLOTS 4096u
#define LIN_CACHE_SAME_TAG 4u /* records of one (definite ops, value) before ck->exact is used */
#define LIN_VALS_FIRST 1024u
#define LIN_SHOW_PREFIX_OPS 8u /* ops of the longest prefix printed in an explanation */
#define LIN_SHOW_CANDIDATES 8u /* other ops that could have come next, printed */
#define LIN_SHOW_VALUE_BYTES 96u /* bytes of a value printed before "..." */
#define LIN_UNOBSERVED_SCAN_BYTES ((size_t)256 << 20) /* work spent proving unknown writes unseen */
#define LIN_TOKEN_SHOW 32 /* bytes of a bad token quoted in a parse error */

static const char *const lin_err_names[LIN_ERR_COUNT] = {
        [LIN_OK] = "success",
        [LIN_ENOMEM] = "out of memory",
        [LIN_EINVAL] = "invalid argument",
        [LIN_EIO] = "I/O error",
        [LIN_EPARSE] = "malformed history",
        [LIN_ETOOBIG] = "too big",
};

const char *lin_strerror(int err)
{
	if (err < 0 || err >= LIN_ERR_COUNT)
		return "unknown error";
	return lin_err_names[err];
}

const char *lin_verdict_name(enum lin_verdict v)
{
	switch (v) {
	case LIN_LINEARIZABLE:
		return "LINEARIZABLE";
	case LIN_NOT_LINEARIZABLE:
		return "NOT_LINEARIZABLE";
	case LIN_TIMEOUT:
		return "TIMEOUT";
	}
	return "TIMEOUT";
}

static const char *const kind_names[] = {
        [LIN_PUT] = "put",       [LIN_APPEND] = "append",    [LIN_GET] = "get",
        [LIN_DELETE] = "delete", [LIN_WRITE_AT] = "writeat", [LIN_TRUNCATE] = "truncate",
};

static const char *const status_names[] = {
        [LIN_STATUS_OK] = "ok",
        [LIN_STATUS_FAILED] = "fail",
        [LIN_STATUS_UNKNOWN] = "unknown",
};

static bool kind_has_input(enum lin_kind k)
{
	return k == LIN_PUT || k == LIN_APPEND || k == LIN_WRITE_AT;
}

static bool kind_has_offset(enum lin_kind k)
{
	return k == LIN_WRITE_AT || k == LIN_TRUNCATE;
}

/* Whether an op of kind k may cut or overwrite bytes a Put or Append wrote. */
static bool kind_rewrites(enum lin_kind k)
{
	return k == LIN_WRITE_AT || k == LIN_TRUNCATE;
}

static bool op_has_output(const struct lin_op *op)
{
	return op->kind == LIN_GET && op->status == LIN_STATUS_OK;
}

/* ---- history storage ---- */

/*
 * ops[i] are normalized copies: strings owned here and NUL-terminated, value empty unless Put,
 * Append or WriteAt, output empty unless an ok Get, offset 0 unless WriteAt or Truncate,
 * return_time LIN_TIME_INFINITY when unknown.
 */
struct lin_history {
	struct lin_op *ops;
	size_t count; /* <= cap, <= LIN_MAX_OPS */
	size_t cap;
};

struct lin_history *lin_history_new(void)
{
	return calloc(1, sizeof(struct lin_history));
}

static void op_free_strings(struct lin_op *op)
{
	free((char *)op->key);
	free((char *)op->value);
	free((char *)op->output);
}

void lin_history_free(struct lin_history *h)
{
	size_t i;

	if (!h)
		return;
	for (i = 0; i < h->count; i++)
		op_free_strings(&h->ops[i]);
	free(h->ops);
	free(h);
}

static bool op_is_valid(const struct lin_op *op)
{
	if (!op || !op->key || op->client < 0)
		return false;
	if ((unsigned)op->kind >= LIN_KIND_COUNT || (unsigned)op->status > LIN_STATUS_UNKNOWN)
		return false;
	if (kind_has_offset(op->kind) &&
	    (op->offset > LIN_MAX_VALUE_BYTES ||
	     (op->kind == LIN_WRITE_AT && op->value_len > LIN_MAX_VALUE_BYTES - op->offset)))
		return false;
	if (kind_has_input(op->kind) && !op->value && op->value_len > 0)
		return false;
	if (op_has_output(op) && !op->output && op->output_len > 0)
		return false;
	if (op->status != LIN_STATUS_UNKNOWN && op->return_time < op->call_time)
		return false;
	return true;
}

/* A malloc'd copy of n bytes at p (NULL allowed when n is 0) with a NUL after them. */
static char *dup_bytes(const char *p, size_t n)
{
	char *c;

	if (n == SIZE_MAX)
		return NULL;
	c = malloc(n + 1);
	if (!c)
		return NULL;
	if (n > 0)
		memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

int lin_history_add(struct lin_history *h, const struct lin_op *op)
{
	struct lin_op c;

	if (!h || !op_is_valid(op))
		return LIN_EINVAL;
	if (h->count >= LIN_MAX_OPS)
		return LIN_ETOOBIG;
	if (h->count == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct lin_op *ops = realloc(h->ops, cap * sizeof(*ops));
		if (!ops)
			return LIN_ENOMEM;
		h->ops = ops;
		h->cap = cap;
	}
	c = *op;
	if (!kind_has_input(c.kind))
		c.value_len = 0;
	if (!op_has_output(&c))
		c.output_len = 0;
	if (!kind_has_offset(c.kind))
		c.offset = 0;
	if (c.status == LIN_STATUS_UNKNOWN)
		c.return_time = LIN_TIME_INFINITY;
	c.key = dup_bytes(op->key, strlen(op->key));
	c.value = dup_bytes(op->value, c.value_len);
	c.output = dup_bytes(op->output, c.output_len);
	if (!c.key || !c.value || !c.output) {
		op_free_strings(&c);
		return LIN_ENOMEM;
	}
	h->ops[h->count++] = c;
	return LIN_OK;
}

size_t lin_history_count(const struct lin_history *h)
{
	return h ? h->count : 0;
}

const struct lin_op *lin_history_op(const struct lin_history *h, size_t i)
{
	if (!h || i >= h->count)
		return NULL;
	return &h->ops[i];
}

/* ---- history file: writer ---- */

static int write_string(FILE *f, const char *p, size_t n)
{
	size_t i;

	if (fputc('"', f) == EOF)
		return LIN_EIO;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		int rc;
		switch (ch) {
		case '"':
			rc = fputs("\\\"", f);
			break;
		case '\\':
			rc = fputs("\\\\", f);
			break;
		case '\n':
			rc = fputs("\\n", f);
			break;
		case '\r':
			rc = fputs("\\r", f);
			break;
		case '\t':
			rc = fputs("\\t", f);
			break;
		default:
			if (ch >= 0x20 && ch < 0x7f)
				rc = fputc(ch, f);
			else
				rc = fprintf(f, "\\x%02x", ch);
		}
		if (rc < 0)
			return LIN_EIO;
	}
	return fputc('"', f) == EOF ? LIN_EIO : LIN_OK;
}

int lin_op_write(FILE *f, const struct lin_op *op)
{
	int rc;

	if (!f || !op_is_valid(op))
		return LIN_EINVAL;
	if (fprintf(f, "%d %s ", op->client, kind_names[op->kind]) < 0)
		return LIN_EIO;
	rc = write_string(f, op->key, strlen(op->key));
	if (rc != LIN_OK || fputc(' ', f) == EOF)
		return LIN_EIO;
	if (kind_has_offset(op->kind) && fprintf(f, "%" PRIu64 " ", op->offset) < 0)
		return LIN_EIO;
	if (kind_has_input(op->kind))
		rc = write_string(f, op->value, op->value_len);
	else if (op_has_output(op))
		rc = write_string(f, op->output, op->output_len);
	else
		rc = fputc('-', f) == EOF ? LIN_EIO : LIN_OK;
	if (rc != LIN_OK)
		return LIN_EIO;
	if (op->status == LIN_STATUS_UNKNOWN)
		rc = fprintf(f, " %" PRId64 " - %s\n", op->call_time, status_names[op->status]);
	else
		rc = fprintf(f, " %" PRId64 " %" PRId64 " %s\n", op->call_time, op->return_time,
		             status_names[op->status]);
	return rc < 0 ? LIN_EIO : LIN_OK;
}

int lin_history_write(const struct lin_history *h, FILE *f)
{
	size_t i;

	if (!h || !f)
		return LIN_EINVAL;
	if (fputs("# raftfs history: CLIENT KIND KEY VALUE CALL RETURN STATUS\n", f) == EOF)
		return LIN_EIO;
	for (i = 0; i < h->count; i++) {
		int rc = lin_op_write(f, &h->ops[i]);
		if (rc != LIN_OK)
			return rc;
	}
	return ferror(f) ? LIN_EIO : LIN_OK;
}

/* ---- history file: reader ---- */

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

static int buf_put(struct buf *b, char ch)
{
	if (b->len == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char *p = realloc(b->p, cap);
		if (!p)
			return LIN_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	b->p[b->len++] = ch;
	return LIN_OK;
}

struct parser {
	const char *name;
	unsigned long line;
	const char *cur; /* next byte of the line */
	const char *end; /* end of the line */
	char *err;
	size_t err_size;
	struct buf key;
	struct buf value;
};

static int parse_error(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->err_size == 0)
		return LIN_EPARSE;
	n = snprintf(ps->err, ps->err_size, "%s:%lu: ", ps->name, ps->line);
	if (n >= 0 && (size_t)n < ps->err_size) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->err_size - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return LIN_EPARSE;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void skip_blanks(struct parser *ps)
{
	while (ps->cur < ps->end && is_blank(*ps->cur))
		ps->cur++;
}

/* The next blank-separated token as [*start, return value); empty at the end of the line. */
static const char *next_token(struct parser *ps, const char **start)
{
	skip_blanks(ps);
	*start = ps->cur;
	while (ps->cur < ps->end && !is_blank(*ps->cur))
		ps->cur++;
	return ps->cur;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int parse_quoted(struct parser *ps, struct buf *out, const char *what)
{
	ps->cur++; /* the opening quote */
	while (ps->cur < ps->end && *ps->cur != '"') {
		char ch = *ps->cur++;
		if (ch == '\\') {
			int hi, lo;
			if (ps->cur == ps->end)
				break;
			ch = *ps->cur++;
			switch (ch) {
			case '\\':
			case '"':
				break;
			case 'n':
				ch = '\n';
				break;
			case 'r':
				ch = '\r';
				break;
			case 't':
				ch = '\t';
				break;
			case 'x':
				hi = ps->end - ps->cur >= 2 ? hex_digit(ps->cur[0]) : -1;
				lo = hi >= 0 ? hex_digit(ps->cur[1]) : -1;
				if (lo < 0)
					return parse_error(
					        ps, "bad \\x escape in %s (want two hex digits)",
					        what);
				ch = (char)(hi * 16 + lo);
				ps->cur += 2;
				break;
			default:
				return parse_error(ps, "unknown escape \\%c in %s", ch, what);
			}
		}
		if (buf_put(out, ch) != LIN_OK)
			return LIN_ENOMEM;
	}
	if (ps->cur == ps->end)
		return parse_error(ps, "unterminated string in %s", what);
	ps->cur++; /* the closing quote */
	if (ps->cur < ps->end && !is_blank(*ps->cur))
		return parse_error(ps, "unexpected '%c' right after the string in %s", *ps->cur,
		                   what);
	return LIN_OK;
}

static int parse_hex(struct parser *ps, struct buf *out, const char *what)
{
	const char *start, *end;

	end = next_token(ps, &start);
	start += 2; /* "x:" */
	if ((end - start) % 2 != 0)
		return parse_error(ps, "odd number of hex digits in %s", what);
	for (; start < end; start += 2) {
		int hi = hex_digit(start[0]), lo = hex_digit(start[1]);
		if (hi < 0 || lo < 0)
			return parse_error(ps, "bad hex digit in %s", what);
		if (buf_put(out, (char)(hi * 16 + lo)) != LIN_OK)
			return LIN_ENOMEM;
	}
	return LIN_OK;
}

/* A string field: "quoted" or x:HEX into out; *absent set (and out empty) for "-" when allowed. */
static int parse_string(struct parser *ps, struct buf *out, const char *what, bool *absent)
{
	const char *start, *end;

	out->len = 0;
	skip_blanks(ps);
	if (ps->cur == ps->end)
		return parse_error(ps, "missing %s", what);
	if (*ps->cur == '"')
		return parse_quoted(ps, out, what);
	if (ps->end - ps->cur >= 2 && ps->cur[0] == 'x' && ps->cur[1] == ':')
		return parse_hex(ps, out, what);
	end = next_token(ps, &start);
	if (absent && end - start == 1 && *start == '-') {
		*absent = true;
		return LIN_OK;
	}
	return parse_error(ps, "%s must be a \"quoted string\"%s or x:HEX, got '%.*s'", what,
	                   absent ? ", -" : "",
	                   (int)(end - start > LIN_TOKEN_SHOW ? LIN_TOKEN_SHOW : end - start),
	                   start);
}

/* A decimal integer in [min, max]; for "-" sets *absent when absent is not NULL. */
static int parse_int(struct parser *ps, const char *what, long long min, long long max,
                     long long *v, bool *absent)
{
	const char *start, *end;
	char tmp[32], *stop;
	size_t n;

	end = next_token(ps, &start);
	n = (size_t)(end - start);
	if (n == 0)
		return parse_error(ps, "missing %s", what);
	if (absent && n == 1 && *start == '-') {
		*absent = true;
		return LIN_OK;
	}
	if (n >= sizeof(tmp))
		goto bad;
	memcpy(tmp, start, n);
	tmp[n] = '\0';
	errno = 0;
	*v = strtoll(tmp, &stop, 10);
	if (errno != 0 || *stop != '\0' || stop == tmp || *v < min || *v > max)
		goto bad;
	return LIN_OK;
bad:
	return parse_error(ps, "bad %s '%.*s'", what,
	                   (int)(n > LIN_TOKEN_SHOW ? LIN_TOKEN_SHOW : n), start);
}

/* The index of the token in names[count], or -1 after reporting it. */
static int parse_word(struct parser *ps, const char *what, const char *const *names, int count,
                      const char *want)
{
	const char *start, *end;
	int i;

	end = next_token(ps, &start);
	if (end == start) {
		parse_error(ps, "missing %s", what);
		return -1;
	}
	for (i = 0; i < count; i++) {
		if (strlen(names[i]) == (size_t)(end - start) &&
		    memcmp(names[i], start, (size_t)(end - start)) == 0)
			return i;
	}
	parse_error(ps, "bad %s '%.*s' (want %s)", what,
	            (int)(end - start > LIN_TOKEN_SHOW ? LIN_TOKEN_SHOW : end - start), start,
	            want);
	return -1;
}

static int parse_line(struct parser *ps, struct lin_history *h)
{
	struct lin_op op;
	long long client, call, ret = 0, offset = 0;
	bool no_value = false, no_return = false;
	int kind, status, rc;

	memset(&op, 0, sizeof(op));
	rc = parse_int(ps, "client id", 0, INT_MAX, &client, NULL);
	if (rc != LIN_OK)
		return rc;
	kind = parse_word(ps, "kind", kind_names, LIN_KIND_COUNT,
	                  "put, append, get, delete, writeat or truncate");
	if (kind < 0)
		return LIN_EPARSE;
	rc = parse_string(ps, &ps->key, "key", NULL);
	if (rc != LIN_OK)
		return rc;
	if (memchr(ps->key.p, '\0', ps->key.len))
		return parse_error(ps, "key holds a NUL byte");
	if (buf_put(&ps->key, '\0') != LIN_OK)
		return LIN_ENOMEM;
	if (kind_has_offset((enum lin_kind)kind)) {
		rc = parse_int(ps, kind == LIN_TRUNCATE ? "size" : "offset", 0,
		               (long long)LIN_MAX_VALUE_BYTES, &offset, NULL);
		if (rc != LIN_OK)
			return rc;
	}
	rc = parse_string(ps, &ps->value, "value", &no_value);
	if (rc != LIN_OK)
		return rc;
	rc = parse_int(ps, "call time", INT64_MIN, INT64_MAX, &call, NULL);
	if (rc != LIN_OK)
		return rc;
	rc = parse_int(ps, "return time", INT64_MIN, INT64_MAX, &ret, &no_return);
	if (rc != LIN_OK)
		return rc;
	status = parse_word(ps, "status", status_names, 3, "ok, fail or unknown");
	if (status < 0)
		return LIN_EPARSE;
	skip_blanks(ps);
	if (ps->cur < ps->end)
		return parse_error(ps, "unexpected '%.*s' after the status",
		                   (int)(ps->end - ps->cur > LIN_TOKEN_SHOW ? LIN_TOKEN_SHOW
		                                                            : ps->end - ps->cur),
		                   ps->cur);

	op.client = (int)client;
	op.kind = (enum lin_kind)kind;
	op.status = (enum lin_status)status;
	op.key = ps->key.p;
	op.call_time = call;
	op.return_time = no_return ? LIN_TIME_INFINITY : ret;
	op.line = ps->line;
	op.offset = (uint64_t)offset;
	if (kind_has_input(op.kind) && no_value)
		return parse_error(ps, "%s needs a value", kind_names[kind]);
	if ((op.kind == LIN_DELETE || op.kind == LIN_TRUNCATE) && !no_value)
		return parse_error(ps, "%s takes no value (write -)", kind_names[kind]);
	if (op.kind == LIN_WRITE_AT && op.offset + ps->value.len > LIN_MAX_VALUE_BYTES)
		return parse_error(ps, "writeat past %" PRIu64 " bytes", LIN_MAX_VALUE_BYTES);
	if (op_has_output(&op) && no_value)
		return parse_error(ps, "a get with status ok needs its result as value");
	if (no_return && op.status != LIN_STATUS_UNKNOWN)
		return parse_error(ps, "return time - is only for status unknown");
	if (op.status != LIN_STATUS_UNKNOWN && ret < call)
		return parse_error(ps, "return time %lld is before call time %lld", ret, call);
	op.value = ps->value.p;
	op.value_len = ps->value.len;
	op.output = ps->value.p;
	op.output_len = ps->value.len;
	rc = lin_history_add(h, &op);
	if (rc != LIN_OK)
		parse_error(ps, "cannot add the operation: %s", lin_strerror(rc));
	return rc;
}

int lin_history_parse(const char *text, size_t len, const char *name, struct lin_history **out,
                      char *err, size_t err_size)
{
	struct parser ps;
	struct lin_history *h;
	const char *p = text, *end = text + len;
	int rc = LIN_OK;

	if (err_size > 0)
		err[0] = '\0';
	if (!out || (!text && len > 0))
		return LIN_EINVAL;
	*out = NULL;
	memset(&ps, 0, sizeof(ps));
	ps.name = name ? name : "history";
	ps.err = err;
	ps.err_size = err_size;
	h = lin_history_new();
	if (!h)
		return LIN_ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		ps.line++;
		ps.cur = p;
		ps.end = nl ? nl : end;
		p = nl ? nl + 1 : end;
		if (ps.end > ps.cur && ps.end[-1] == '\r')
			ps.end--;
		skip_blanks(&ps);
		if (ps.cur == ps.end || *ps.cur == '#')
			continue;
		rc = parse_line(&ps, h);
		if (rc != LIN_OK)
			break;
	}
	free(ps.key.p);
	free(ps.value.p);
	if (rc != LIN_OK) {
		if (rc == LIN_ENOMEM || rc == LIN_ETOOBIG)
			parse_error(&ps, "%s", lin_strerror(rc));
		lin_history_free(h);
		return rc;
	}
	*out = h;
	return LIN_OK;
}

int lin_history_load(const char *path, struct lin_history **out, char *err, size_t err_size)
{
	FILE *f;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int rc;

	if (err_size > 0)
		err[0] = '\0';
	if (!path || !out)
		return LIN_EINVAL;
	*out = NULL;
	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return LIN_EIO;
	}
	for (;;) {
		size_t got;
		if (len == cap) {
			char *p;
			if (cap >= LIN_MAX_FILE_BYTES) {
				snprintf(err, err_size, "%s: larger than %zu bytes", path,
				         LIN_MAX_FILE_BYTES);
				rc = LIN_ETOOBIG;
				goto out_text;
			}
			cap = cap ? cap * 2 : 65536;
			p = realloc(text, cap);
			if (!p) {
				snprintf(err, err_size, "%s: out of memory", path);
				rc = LIN_ENOMEM;
				goto out_text;
			}
			text = p;
		}
		got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, err_size, "%s: read error", path);
		rc = LIN_EIO;
		goto out_text;
	}
	rc = lin_history_parse(text, len, path, out, err, err_size);
out_text:
	free(text);
	fclose(f);
	return rc;
}

/* ---- values: polynomial hash mod 2^61-1, so the hash of a+b follows from those of a and b ---- */

#define LIN_HASH_P ((UINT64_C(1) << 61) - 1)
#define LIN_HASH_BASE UINT64_C(0x0b5ad4eceda1ce2a) /* < LIN_HASH_P */

static uint64_t mod61(uint64_t x)
{
	x = (x & LIN_HASH_P) + (x >> 61);
	return x >= LIN_HASH_P ? x - LIN_HASH_P : x;
}

/* a * b mod 2^61-1 for a, b < 2^61 without 128-bit integers. */
static uint64_t mul61(uint64_t a, uint64_t b)
{
	uint64_t au = a >> 31, ad = a & ((UINT64_C(1) << 31) - 1);
	uint64_t bu = b >> 31, bd = b & ((UINT64_C(1) << 31) - 1);
	uint64_t mid = ad * bu + au * bd;
	uint64_t midu = mid >> 30, midd = mid & ((UINT64_C(1) << 30) - 1);

	return mod61(au * bu * 2 + midu + (midd << 31) + ad * bd);
}

/* h(s) = sum of (s[i] + 1) * BASE^(n-1-i); h(a b) = h(a) * BASE^|b| + h(b); h("") = 0. */
static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 0;
	size_t i;

	for (i = 0; i < n; i++)
		h = mod61(mul61(h, LIN_HASH_BASE) + (unsigned char)p[i] + 1);
	return h;
}

static uint64_t pow61(size_t n)
{
	uint64_t r = 1, b = LIN_HASH_BASE;

	for (; n > 0; n >>= 1) {
		if (n & 1)
			r = mul61(r, b);
		b = mul61(b, b);
	}
	return r;
}

static uint64_t mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* ---- the checker of one key ---- */

/* One operation of the key being checked. */
struct kop {
	const struct lin_op *op;
	size_t index; /* in the history */
	uint64_t hash; /* of the input (Put, Append, WriteAt) or of the output (Get) */
	uint64_t pow; /* Append, WriteAt: LIN_HASH_BASE^value_len */
	uint64_t zobrist; /* random bits xored into the cache tags while linearized */
	uint32_t verified; /* Get: a value id known to equal the output, or LIN_NIL */
	uint32_t prefix_ok; /* Get: a value id known to be a prefix of the output, or LIN_NIL */
	bool poison; /* a write whose input no Get of the key read (see unobserved()) */
	uint32_t rank; /* order among the writes of a frontier: by return time, unknown ones last */
	uint32_t call_entry, return_entry;
	bool unknown;
};

/* Call and return events in one doubly linked list sorted by time (Lowe's "lifting" list). */
struct entry {
	int64_t time;
	uint32_t op;
	uint32_t prev; /* the head sentinel has no prev */
	uint32_t next; /* LIN_NIL at the end */
	bool call;
};

/*
 * An interned value: its bytes are those of parent (none if LIN_NIL) followed by the input of the
 * op tail, or, when tail is LIN_FLAT (parent LIN_NIL), the len bytes at vals.arena + flat (what a
 * WriteAt or Truncate made). Id 0 is the empty value (tail LIN_NIL). Two ids differ exactly when
 * the bytes differ: the intern table compares real bytes on every hash match.
 */
struct val {
	uint64_t hash;
	size_t len;
	uint32_t parent;
	uint32_t tail;
	size_t flat; /* tail LIN_FLAT: offset of the bytes in vals.arena */
};

struct vals {
	struct val *v;
	size_t count; /* <= cap, <= max_count */
	size_t cap;
	size_t max_count; /* from lin_options.max_state_bytes */
	uint32_t *
	        table; /* ids by hash, open addressing, LIN_NIL when empty; count <= table_cap / 2 */
	size_t table_cap;
	char *scratch; /* a value spelled out, for comparisons */
	size_t scratch_cap;
	char *build; /* the value a WriteAt or Truncate makes, before it is interned */
	size_t build_cap;
	char *arena; /* the bytes of the LIN_FLAT values: arena_len <= arena_max */
	size_t arena_len;
	size_t arena_cap;
	size_t arena_max; /* from lin_options.max_state_bytes */
};

/*
 * Memo cache of explored configurations. A configuration is stored as a record: its definite ops
 * as a window of `window` words of the definite bitset starting at word first[i] (every word
 * before it is all ones, every word after the window zero), then the whole unknown-op bitset.
 * Slot i holds tag[i] (0: empty), val[i], first[i] and rec[i * rec_words ...]. Open addressing
 * with at most LIN_CACHE_PROBES probes; once cap reaches max_cap, an insert finding no free slot
 * overwrites one (forgetting is sound: it only costs re-exploration).
 */
struct cache {
	size_t window; /* words of the definite window */
	size_t rec_words; /* window + unknown-op words */
	size_t cap; /* power of two, <= max_cap */
	size_t max_cap;
	size_t count;
	uint64_t *tag;
	uint32_t *val;
	uint32_t *first;
	uint64_t *rec;
	uint32_t victim;
	bool overflowed;
};

struct frame {
	uint32_t entry; /* call entry of the op linearized at this depth */
	uint32_t old_val; /* value before it */
	uint32_t choice; /* its place in the parent's try order; LIN_NIL for a forced Get */
	uint32_t old_hi; /* ck->hi before it */
};

struct checker {
	const struct lin_history *h;
	const char *key;
	struct kop *ops;
	uint32_t n;
	uint32_t n_unknown;
	uint32_t n_poison; /* definite writes whose value no Get read */
	struct entry *ent; /* 2 n entries, then the head sentinel */
	uint32_t head;
	uint32_t n_definite; /* ops[0 .. n_definite) are definite, sorted by call time */
	size_t dwords; /* words of the definite bitset */
	size_t uwords; /* words of the unknown bitset */
	uint64_t *bits; /* linearized: definite bits, padded with ones, then unknown bits */
	uint64_t *cand; /* the writes of the frontier in try order (sort keys, then op numbers) */
	uint32_t *gets; /* the Gets of the frontier */
	uint32_t *apps; /* scratch for get_reachable(): appends that may come before a Get */
	unsigned char *reach; /* scratch for get_reachable(): longest Get result + 1 bytes */
	uint32_t ngets;
	uint32_t first; /* first definite word not all ones (dwords when every one is placed) */
	uint32_t hi; /* highest definite op placed + 1 (0 if none): it bounds the window */
	uint64_t *rec; /* the current configuration as a cache record */
	uint64_t zdef; /* xor of the zobrist bits of the definite ops linearized */
	uint64_t zunk; /* xor of the zobrist bits of the unknown ops linearized */
	uint32_t unknown_pending; /* unknown ops not linearized */
	struct vals vals;
	struct cache cache; /* by definite ops and value, pruning by dominance */
	struct cache exact; /* by all ops and value: the overflow of cache (see memo_seen()) */
	struct frame *stack;
	uint32_t sp;

	/* budget, shared by all keys of one lin_check() */
	struct timespec start;
	int64_t timeout_ms;
	uint64_t max_steps;
	uint64_t steps;
	uint64_t next_clock_steps; /* look at the clock when steps reaches it */
	const char *out_of; /* what ran out, for a TIMEOUT */

	/* the deepest dead end, for the explanation */
	uint32_t *best;
	uint32_t best_len;
	uint32_t best_blocked; /* LIN_NIL until a dead end is seen */
	uint32_t best_val;
	uint32_t best_cand[LIN_SHOW_CANDIDATES];
	uint32_t best_ncand;
};

static int64_t elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - start->tv_sec) * 1000 +
	        (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* ---- interned values ---- */

static int vals_init(struct vals *vs, size_t max_bytes)
{
	memset(vs, 0, sizeof(*vs));
	vs->max_count = max_bytes / (sizeof(struct val) + 2 * sizeof(uint32_t));
	vs->arena_max = max_bytes;
	if (vs->max_count < 2)
		vs->max_count = 2;
	vs->cap = LIN_VALS_FIRST;
	vs->table_cap = 2 * LIN_VALS_FIRST;
	vs->v = malloc(vs->cap * sizeof(*vs->v));
	vs->table = malloc(vs->table_cap * sizeof(*vs->table));
	if (!vs->v || !vs->table)
		return LIN_ENOMEM;
	memset(vs->table, 0xff, vs->table_cap * sizeof(*vs->table));
	vs->v[0] = (struct val){.hash = 0, .len = 0, .parent = LIN_NIL, .tail = LIN_NIL};
	/* never in the table: no bytes equal it */
	vs->v[LIN_POISON] = (struct val){.len = SIZE_MAX, .parent = LIN_NIL, .tail = LIN_NIL};
	vs->count = 2;
	vs->table[mix64(0) & (vs->table_cap - 1)] = 0;
	return LIN_OK;
}

static void vals_free(struct vals *vs)
{
	free(vs->v);
	free(vs->table);
	free(vs->scratch);
	free(vs->build);
	free(vs->arena);
}

static size_t val_slot(uint64_t hash, size_t len, size_t cap)
{
	return mix64(hash ^ ((uint64_t)len * UINT64_C(0x9e3779b97f4a7c15))) & (cap - 1);
}

/* Whether value id spells exactly the len bytes at p. */
static bool val_equals_bytes(const struct checker *ck, uint32_t id, const char *p, size_t len)
{
	size_t pos = len;

	if (ck->vals.v[id].len != len)
		return false;
	while (id != LIN_NIL && ck->vals.v[id].tail != LIN_NIL) {
		const struct val *x = &ck->vals.v[id];
		const struct lin_op *t;
		if (x->tail == LIN_FLAT) /* x->len == pos: the lengths of a chain add up */
			return memcmp(p, ck->vals.arena + x->flat, pos) == 0;
		t = ck->ops[x->tail].op;
		if (t->value_len > pos ||
		    memcmp(p + pos - t->value_len, t->value, t->value_len) != 0)
			return false;
		pos -= t->value_len;
		id = ck->vals.v[id].parent;
	}
	return pos == 0;
}

/* Spells value id out into vals.scratch. */
static int val_spell(struct checker *ck, uint32_t id)
{
	struct vals *vs = &ck->vals;
	size_t pos = vs->v[id].len;

	if (pos > vs->scratch_cap) {
		char *p = realloc(vs->scratch, pos);
		if (!p)
			return LIN_ENOMEM;
		vs->scratch = p;
		vs->scratch_cap = pos;
	}
	while (id != LIN_NIL && vs->v[id].tail != LIN_NIL) {
		const struct lin_op *t;
		if (vs->v[id].tail == LIN_FLAT) { /* pos == its len */
			memcpy(vs->scratch, vs->arena + vs->v[id].flat, pos);
			break;
		}
		t = ck->ops[vs->v[id].tail].op;
		pos -= t->value_len;
		memcpy(vs->scratch + pos, t->value, t->value_len);
		id = vs->v[id].parent;
	}
	return LIN_OK;
}

/* Whether value id (of the same hash and length) spells parent's bytes then tail's input. */
static int val_equals_parts(struct checker *ck, uint32_t id, uint32_t parent, uint32_t tail)
{
	const struct val *a = &ck->vals.v[id];
	const struct lin_op *t = ck->ops[tail].op;
	int rc;

	if (a->parent == parent && a->tail != LIN_NIL && a->tail != LIN_FLAT) {
		const struct lin_op *at = ck->ops[a->tail].op;
		if (at->value_len == t->value_len)
			return memcmp(at->value, t->value, t->value_len) == 0;
	}
	rc = val_spell(ck, id);
	if (rc != LIN_OK)
		return -rc;
	if (memcmp(ck->vals.scratch + a->len - t->value_len, t->value, t->value_len) != 0)
		return 0;
	if (parent == LIN_NIL)
		return a->len == t->value_len;
	return val_equals_bytes(ck, parent, ck->vals.scratch, a->len - t->value_len);
}

static int vals_grow_table(struct vals *vs)
{
	size_t cap = vs->table_cap * 2, i;
	uint32_t *t = malloc(cap * sizeof(*t));

	if (!t)
		return LIN_ENOMEM;
	memset(t, 0xff, cap * sizeof(*t));
	for (i = 0; i < vs->count; i++) {
		size_t s = val_slot(vs->v[i].hash, vs->v[i].len, cap);
		while (t[s] != LIN_NIL)
			s = (s + 1) & (cap - 1);
		t[s] = (uint32_t)i;
	}
	free(vs->table);
	vs->table = t;
	vs->table_cap = cap;
	return LIN_OK;
}

/* Adds *nv as a new value at free table slot s; *id is its id. LIN_ETOOBIG past the budget. */
static int val_add(struct vals *vs, size_t s, const struct val *nv, uint32_t *id)
{
	if (vs->count >= vs->max_count || vs->count >= LIN_FLAT - 1)
		return LIN_ETOOBIG;
	if (vs->count == vs->cap) {
		struct val *v = realloc(vs->v, 2 * vs->cap * sizeof(*v));
		if (!v)
			return LIN_ENOMEM;
		vs->v = v;
		vs->cap *= 2;
	}
	*id = (uint32_t)vs->count;
	vs->v[vs->count++] = *nv;
	vs->table[s] = *id;
	if (vs->count * 2 > vs->table_cap)
		return vals_grow_table(vs);
	return LIN_OK;
}

/*
 * The id of the value parent + tail's input (hash and len given), interning it when new.
 * Returns LIN_OK, LIN_ENOMEM, or LIN_ETOOBIG when the value budget is spent.
 */
static int val_intern(struct checker *ck, uint32_t parent, uint32_t tail, uint64_t hash, size_t len,
                      uint32_t *id)
{
	struct vals *vs = &ck->vals;
	size_t s = val_slot(hash, len, vs->table_cap);

	for (; vs->table[s] != LIN_NIL; s = (s + 1) & (vs->table_cap - 1)) {
		uint32_t x = vs->table[s];
		int eq;
		if (vs->v[x].hash != hash || vs->v[x].len != len)
			continue;
		eq = val_equals_parts(ck, x, parent, tail);
		if (eq < 0)
			return -eq;
		if (eq) {
			*id = x;
			return LIN_OK;
		}
	}
	return val_add(vs, s,
	               &(struct val){.hash = hash, .len = len, .parent = parent, .tail = tail}, id);
}

/* Grows vs->build to hold n bytes. */
static int build_reserve(struct vals *vs, size_t n)
{
	char *p;

	if (n <= vs->build_cap)
		return LIN_OK;
	p = realloc(vs->build, n);
	if (!p)
		return LIN_ENOMEM;
	vs->build = p;
	vs->build_cap = n;
	return LIN_OK;
}

/*
 * The id of the value spelled in vals.build (len bytes), interning it as a LIN_FLAT value when
 * new. Returns LIN_OK, LIN_ENOMEM, or LIN_ETOOBIG when the value budget is spent.
 */
static int val_intern_flat(struct checker *ck, size_t len, uint32_t *id)
{
	struct vals *vs = &ck->vals;
	uint64_t hash;
	size_t s;

	if (len == 0) {
		*id = 0;
		return LIN_OK;
	}
	hash = hash_bytes(vs->build, len);
	s = val_slot(hash, len, vs->table_cap);
	for (; vs->table[s] != LIN_NIL; s = (s + 1) & (vs->table_cap - 1)) {
		uint32_t x = vs->table[s];
		if (vs->v[x].hash == hash && vs->v[x].len == len &&
		    val_equals_bytes(ck, x, vs->build, len)) {
			*id = x;
			return LIN_OK;
		}
	}
	if (len > vs->arena_max - vs->arena_len)
		return LIN_ETOOBIG;
	if (vs->arena_len + len > vs->arena_cap) {
		size_t cap = vs->arena_cap ? vs->arena_cap : 65536;
		char *p;
		while (cap < vs->arena_len + len)
			cap *= 2;
		p = realloc(vs->arena, cap);
		if (!p)
			return LIN_ENOMEM;
		vs->arena = p;
		vs->arena_cap = cap;
	}
	memcpy(vs->arena + vs->arena_len, vs->build, len);
	vs->arena_len += len;
	return val_add(vs, s,
	               &(struct val){.hash = hash,
	                             .len = len,
	                             .parent = LIN_NIL,
	                             .tail = LIN_FLAT,
	                             .flat = vs->arena_len - len},
	               id);
}

/*
 * WriteAt k on value v (not LIN_POISON: see unobserved()), as kv/store.c do_write does it: the
 * input at op->offset, zeros between the old end and the offset, the old bytes past the input
 * kept. At the end of the value it is an Append (the value shares the old one's bytes).
 */
static int model_write_at(struct checker *ck, uint32_t v, uint32_t k, uint32_t *nv)
{
	const struct kop *o = &ck->ops[k];
	const struct lin_op *op = o->op;
	struct vals *vs = &ck->vals;
	const struct val *x = &vs->v[v];
	size_t old = x->len, off = (size_t)op->offset, n = op->value_len;
	size_t len = old > off + n ? old : off + n;
	int rc;

	if (n == 0 && off <= old) {
		*nv = v;
		return LIN_OK;
	}
	if (off == old) {
		if (v == 0)
			return val_intern(ck, LIN_NIL, k, o->hash, n, nv);
		return val_intern(ck, v, k, mod61(mul61(x->hash, o->pow) + o->hash), old + n, nv);
	}
	rc = val_spell(ck, v);
	if (rc != LIN_OK)
		return rc;
	if (off + n <= old && memcmp(vs->scratch + off, op->value, n) == 0) {
		*nv = v; /* the same bytes again */
		return LIN_OK;
	}
	if (build_reserve(vs, len) != LIN_OK)
		return LIN_ENOMEM;
	if (old > 0)
		memcpy(vs->build, vs->scratch, old);
	if (off > old)
		memset(vs->build + old, 0, off - old);
	memcpy(vs->build + off, op->value, n);
	return val_intern_flat(ck, len, nv);
}

/* Truncate k on value v (not LIN_POISON): cut to op->offset bytes, or zero-filled up to it. */
static int model_truncate(struct checker *ck, uint32_t v, uint32_t k, uint32_t *nv)
{
	struct vals *vs = &ck->vals;
	size_t old = vs->v[v].len, len = (size_t)ck->ops[k].op->offset;
	int rc;

	if (len == old) {
		*nv = v;
		return LIN_OK;
	}
	rc = val_spell(ck, v);
	if (rc != LIN_OK)
		return rc;
	if (build_reserve(vs, len) != LIN_OK)
		return LIN_ENOMEM;
	if (old > 0 && len > 0)
		memcpy(vs->build, vs->scratch, old < len ? old : len);
	if (len > old)
		memset(vs->build + old, 0, len - old);
	return val_intern_flat(ck, len, nv);
}

/*
 * The model: applies op k to value v. Returns 1 with the new value in *nv, 0 when a Get does not
 * match, or -err.
 */
static int model_step(struct checker *ck, uint32_t v, uint32_t k, uint32_t *nv)
{
	struct kop *o = &ck->ops[k];
	const struct lin_op *op = o->op;
	const struct val *x = &ck->vals.v[v];
	int rc = LIN_OK;

	switch (op->kind) {
	case LIN_GET:
		if (o->verified == v) {
			*nv = v;
			return 1;
		}
		if (x->len != op->output_len || x->hash != o->hash ||
		    !val_equals_bytes(ck, v, op->output, op->output_len))
			return 0;
		o->verified = v;
		*nv = v;
		return 1;
	case LIN_DELETE:
		*nv = 0;
		return 1;
	case LIN_PUT:
		if (op->value_len == 0)
			*nv = 0;
		else if (o->poison)
			*nv = LIN_POISON;
		else
			rc = val_intern(ck, LIN_NIL, k, o->hash, op->value_len, nv);
		break;
	case LIN_APPEND:
		if (op->value_len == 0)
			*nv = v;
		else if (v == LIN_POISON || o->poison)
			*nv = LIN_POISON;
		else if (v == 0) /* Append to a missing key acts like Put */
			rc = val_intern(ck, LIN_NIL, k, o->hash, op->value_len, nv);
		else
			rc = val_intern(ck, v, k, mod61(mul61(x->hash, o->pow) + o->hash),
			                x->len + op->value_len, nv);
		break;
	case LIN_WRITE_AT:
	case LIN_TRUNCATE:
		if (o->poison) { /* a WriteAt no Get read: nothing can cut it (unobserved()) */
			*nv = LIN_POISON;
			break;
		}
		/* a poison value never meets them: checker_build() makes no write poison that
		 * one of them can follow */
		if (v == LIN_POISON)
			return -LIN_EINVAL;
		rc = op->kind == LIN_WRITE_AT ? model_write_at(ck, v, k, nv)
		                              : model_truncate(ck, v, k, nv);
		break;
	}
	return rc == LIN_OK ? 1 : -rc;
}

/* ---- memo cache ---- */

static size_t cache_slot_bytes(size_t rec_words)
{
	return sizeof(uint64_t) + 2 * sizeof(uint32_t) + rec_words * sizeof(uint64_t);
}

static int cache_alloc(struct cache *c, size_t cap)
{
	c->tag = calloc(cap, sizeof(*c->tag));
	c->val = malloc(cap * sizeof(*c->val));
	c->first = malloc(cap * sizeof(*c->first));
	c->rec = malloc(cap * c->rec_words * sizeof(*c->rec));
	if (!c->tag || !c->val || !c->first || !c->rec) {
		free(c->tag);
		free(c->val);
		free(c->first);
		free(c->rec);
		return LIN_ENOMEM;
	}
	c->cap = cap;
	c->count = 0;
	return LIN_OK;
}

static int cache_init(struct cache *c, size_t window, size_t uwords, size_t max_bytes)
{
	size_t slots;

	memset(c, 0, sizeof(*c));
	c->window = window;
	c->rec_words = window + uwords;
	slots = max_bytes / cache_slot_bytes(c->rec_words);
	c->max_cap = 2 * LIN_CACHE_PROBES;
	while (c->max_cap * 2 <= slots)
		c->max_cap *= 2;
	return cache_alloc(c,
	                   c->max_cap < LIN_CACHE_FIRST_SLOTS ? c->max_cap : LIN_CACHE_FIRST_SLOTS);
}

static void cache_free(struct cache *c)
{
	free(c->tag);
	free(c->val);
	free(c->first);
	free(c->rec);
}

static uint64_t cache_tag(uint64_t zdef, uint32_t val)
{
	uint64_t t = mix64(zdef ^ mix64((uint64_t)val + 1));
	return t ? t : 1;
}

/*
 * Spells the current configuration as a record in ck->rec. False when the definite ops placed do
 * not fit the window (the window is sized so that this cannot happen; such a configuration would
 * simply not be cached).
 */
static bool make_record(struct checker *ck)
{
	size_t j, w = ck->cache.window;

	if (ck->hi > 0 && (ck->hi - 1) / 64 >= ck->first + w)
		return false;
	for (j = 0; j < w; j++)
		ck->rec[j] = ck->first + j < ck->dwords ? ck->bits[ck->first + j] : 0;
	memcpy(ck->rec + w, ck->bits + ck->dwords, ck->uwords * sizeof(*ck->rec));
	return true;
}

/*
 * Whether slot i of c dominates the current configuration (in ck->rec): the same definite ops are
 * placed, and its unknown ops are a subset of the current ones (equal when exact). Whatever
 * completes the current configuration then completes the stored one (an unknown op may stay
 * unplaced for ever), so when the stored one failed, the current one fails too.
 */
static bool dominates(const struct checker *ck, const struct cache *c, size_t i, bool exact)
{
	const uint64_t *s = c->rec + i * c->rec_words;
	size_t j;

	if (c->first[i] != ck->first)
		return false;
	for (j = 0; j < c->window; j++) {
		if (s[j] != ck->rec[j])
			return false;
	}
	for (; j < c->rec_words; j++) {
		if (exact ? s[j] != ck->rec[j] : (s[j] & ~ck->rec[j]) != 0)
			return false;
	}
	return true;
}

static bool cache_dominated(const struct checker *ck, const struct cache *c, uint64_t tag,
                            uint32_t val, bool exact)
{
	size_t i = tag & (c->cap - 1), p;

	for (p = 0; p < LIN_CACHE_PROBES; p++, i = (i + 1) & (c->cap - 1)) {
		if (c->tag[i] == 0)
			return false;
		if (c->tag[i] == tag && c->val[i] == val && dominates(ck, c, i, exact))
			return true;
	}
	return false;
}

static void cache_set(struct cache *c, size_t i, uint64_t tag, uint32_t val, uint32_t first,
                      const uint64_t *rec)
{
	c->tag[i] = tag;
	c->val[i] = val;
	c->first[i] = first;
	memcpy(c->rec + i * c->rec_words, rec, c->rec_words * sizeof(*rec));
}

/*
 * Stores a record in a free slot near its home: LIN_PLACED, LIN_NO_ROOM, or LIN_TAG_FULL when
 * max_same (if not 0) records of this tag are there already.
 */
enum lin_place { LIN_PLACED, LIN_NO_ROOM, LIN_TAG_FULL };

static enum lin_place cache_place(struct cache *c, uint64_t tag, uint32_t val, uint32_t first,
                                  const uint64_t *rec, size_t max_same)
{
	size_t i = tag & (c->cap - 1), p, same = 0;

	for (p = 0; p < LIN_CACHE_PROBES; p++, i = (i + 1) & (c->cap - 1)) {
		if (c->tag[i] == tag && max_same > 0 && ++same >= max_same)
			return LIN_TAG_FULL;
		if (c->tag[i] == 0) {
			cache_set(c, i, tag, val, first, rec);
			c->count++;
			return LIN_PLACED;
		}
	}
	return LIN_NO_ROOM;
}

/* Doubles the table; an entry with no free slot near home is dropped (sound, see above). */
static int cache_grow(struct cache *c)
{
	struct cache old = *c;
	size_t i;

	if (cache_alloc(c, old.cap * 2) != LIN_OK) {
		*c = old;
		return LIN_ENOMEM;
	}
	for (i = 0; i < old.cap; i++) {
		if (old.tag[i] != 0 &&
		    cache_place(c, old.tag[i], old.val[i], old.first[i],
		                old.rec + i * old.rec_words, 0) != LIN_PLACED)
			c->overflowed = true;
	}
	cache_free(&old);
	return LIN_OK;
}

/* Stores the current configuration in c; false when c holds max_same records of its tag. */
static bool cache_insert(struct checker *ck, struct cache *c, uint64_t tag, uint32_t val,
                         size_t max_same)
{
	enum lin_place r;
	size_t i;

	/* growing is best effort: without it the cache forgets more, which stays sound */
	if (c->count >= c->cap / 2 && c->cap < c->max_cap)
		(void)cache_grow(c);
	r = cache_place(c, tag, val, ck->first, ck->rec, max_same);
	if (r == LIN_NO_ROOM && c->cap < c->max_cap && cache_grow(c) == LIN_OK)
		r = cache_place(c, tag, val, ck->first, ck->rec, max_same);
	if (r != LIN_NO_ROOM)
		return r == LIN_PLACED;
	i = (tag + c->victim++ % LIN_CACHE_PROBES) & (c->cap - 1);
	cache_set(c, i, tag, val, ck->first, ck->rec);
	c->overflowed = true;
	return true;
}

/*
 * Memoizes the current configuration (value val), or returns true when an explored one dominates
 * it. ck->cache is looked up by definite ops and value and prunes by dominance; configurations
 * that differ only in their unknown ops would make its probe runs long, so past
 * LIN_CACHE_SAME_TAG of one tag the others go to ck->exact, looked up by all ops.
 */
static bool memo_seen(struct checker *ck, uint32_t val)
{
	uint64_t tag = cache_tag(ck->zdef, val), xtag = cache_tag(ck->zdef ^ ck->zunk, val);

	if (!make_record(ck))
		return false;
	if (cache_dominated(ck, &ck->cache, tag, val, false))
		return true;
	if (ck->n_unknown > 0 && cache_dominated(ck, &ck->exact, xtag, val, true))
		return true;
	if (!cache_insert(ck, &ck->cache, tag, val, ck->n_unknown > 0 ? LIN_CACHE_SAME_TAG : 0))
		cache_insert(ck, &ck->exact, xtag, val, 0);
	return false;
}

/* ---- the search ---- */

static void entry_unlink(struct entry *ent, uint32_t x)
{
	ent[ent[x].prev].next = ent[x].next;
	if (ent[x].next != LIN_NIL)
		ent[ent[x].next].prev = ent[x].prev;
}

/* Undoes entry_unlink(x); unlinks must be undone in reverse order (dancing links). */
static void entry_relink(struct entry *ent, uint32_t x)
{
	ent[ent[x].prev].next = x;
	if (ent[x].next != LIN_NIL)
		ent[ent[x].next].prev = x;
}

static void set_linearized(struct checker *ck, uint32_t k, bool on)
{
	size_t w = k < ck->n_definite ? k / 64 : ck->dwords + (k - ck->n_definite) / 64;
	uint64_t bit = UINT64_C(1) << ((k < ck->n_definite ? k : k - ck->n_definite) % 64);

	if (on)
		ck->bits[w] |= bit;
	else
		ck->bits[w] &= ~bit;
	if (ck->ops[k].unknown)
		ck->zunk ^= ck->ops[k].zobrist;
	else
		ck->zdef ^= ck->ops[k].zobrist;
	if (ck->ops[k].unknown) {
		ck->unknown_pending += on ? (uint32_t)-1 : 1;
	} else if (on) {
		while (ck->first < ck->dwords && ck->bits[ck->first] == UINT64_MAX)
			ck->first++;
	} else if (w < ck->first) {
		ck->first = (uint32_t)w;
	}
}

static bool out_of_budget(struct checker *ck)
{
	ck->steps++;
	if (ck->max_steps > 0 && ck->steps > ck->max_steps) {
		ck->out_of = "the step budget";
		return true;
	}
	if (ck->steps >= ck->next_clock_steps) {
		ck->next_clock_steps = ck->steps + LIN_CLOCK_EVERY_STEPS;
		if (elapsed_ms(&ck->start) > ck->timeout_ms) {
			ck->out_of = "the time budget";
			return true;
		}
	}
	return false;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The frontier of the current configuration: every op whose call entry comes before the first
 * return entry (all ops that must precede it are placed). Fills ck->gets with its Gets and
 * ck->cand with its writes in try order, and returns how many writes; *r is the first return
 * entry (LIN_NIL when the list is empty).
 *
 * Writes are tried earliest return first, unknown ones last: the op of the first return entry
 * must be placed before anything later, so trying it first linearizes ops as late as they may be
 * ("just in time"), which is where concurrent Gets most often saw them; and unknown writes come
 * last so that the cache's dominance rule prunes the orders that place them early for nothing.
 */
static uint32_t frontier(struct checker *ck, uint32_t *r)
{
	uint32_t e, n = 0;

	ck->ngets = 0;
	for (e = ck->ent[ck->head].next; e != LIN_NIL && ck->ent[e].call; e = ck->ent[e].next) {
		const struct kop *o = &ck->ops[ck->ent[e].op];
		if (o->op->kind == LIN_GET)
			ck->gets[ck->ngets++] = ck->ent[e].op;
		else
			ck->cand[n++] = (uint64_t)o->rank << 32 | ck->ent[e].op;
	}
	*r = e;
	if (n > 1)
		qsort(ck->cand, n, sizeof(*ck->cand), u64_cmp);
	for (e = 0; e < n; e++)
		ck->cand[e] &= UINT32_MAX;
	return n;
}

/* A dead end at return entry r: remember it when it is the deepest so far. */
static void note_dead_end(struct checker *ck, uint32_t r, uint32_t state, uint32_t ncand)
{
	uint32_t i;

	if (ck->best_blocked != LIN_NIL && ck->sp <= ck->best_len)
		return;
	for (i = 0; i < ck->sp; i++)
		ck->best[i] = ck->ent[ck->stack[i].entry].op;
	ck->best_len = ck->sp;
	ck->best_blocked = ck->ent[r].op;
	ck->best_val = state;
	ck->best_ncand = 0;
	for (i = 0; i < ck->ngets + ncand && ck->best_ncand < LIN_SHOW_CANDIDATES; i++) {
		uint32_t k = i < ck->ngets ? ck->gets[i] : (uint32_t)ck->cand[i - ck->ngets];
		if (k != ck->best_blocked)
			ck->best_cand[ck->best_ncand++] = k;
	}
}

/*
 * Tries to linearize op k next. Returns 1 when it was (the search goes on from the new
 * configuration), 0 when it cannot go next, 2 when it leads to a configuration already explored
 * (or dominated by one), -err.
 */
static int try_op(struct checker *ck, uint32_t k, uint32_t *state, uint32_t choice)
{
	uint32_t nv = 0, old_hi;
	int rc;

	ck->steps++;
	rc = model_step(ck, *state, k, &nv);
	if (rc <= 0)
		return rc;
	set_linearized(ck, k, true);
	old_hi = ck->hi;
	if (k < ck->n_definite && k + 1 > ck->hi)
		ck->hi = k + 1;
	if (memo_seen(ck, nv)) {
		set_linearized(ck, k, false);
		ck->hi = old_hi;
		return 2;
	}
	ck->stack[ck->sp++] = (struct frame){.entry = ck->ops[k].call_entry,
	                                     .old_val = *state,
	                                     .choice = choice,
	                                     .old_hi = old_hi};
	*state = nv;
	entry_unlink(ck->ent, ck->ops[k].call_entry);
	entry_unlink(ck->ent, ck->ops[k].return_entry);
	return 1;
}

/* Undoes the last linearization; returns its frame. */
static struct frame pop_frame(struct checker *ck)
{
	struct frame f = ck->stack[--ck->sp];

	entry_relink(ck->ent, ck->ops[ck->ent[f.entry].op].return_entry);
	entry_relink(ck->ent, f.entry);
	set_linearized(ck, ck->ent[f.entry].op, false);
	ck->hi = f.old_hi;
	return f;
}

/* Whether the bytes of value v begin the len bytes at p. */
static bool val_is_prefix(const struct checker *ck, uint32_t v, const char *p, size_t len)
{
	return ck->vals.v[v].len <= len && val_equals_bytes(ck, v, p, ck->vals.v[v].len);
}

/* How many bytes a and b (an and bn bytes long) have in common from their starts. */
static size_t common_prefix(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i, n = an < bn ? an : bn;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	return i;
}

/* Sets reach[p] and raises *ml to p; true when that changed anything. */
static bool reach_mark(unsigned char *reach, size_t p, size_t *ml)
{
	bool changed = !reach[p] || *ml < p;

	reach[p] = 1;
	if (*ml < p)
		*ml = p;
	return changed;
}

/*
 * get_reachable() where a WriteAt or Truncate may come before Get g. It tracks what any order of
 * the ops called by g's return (each used any number of times: an over-approximation again) can
 * make of the base v, in two facts about the result out (len bytes): reach[p] when a value may
 * be exactly out's first p bytes, and ml, at least the longest common start of any such value
 * and out. Each op maps them to facts true of its results:
 *   Put x, base v: reach[|x|] if x begins out; ml >= how far x agrees with out. Delete: reach[0].
 *   Append a: from reach[p], reach[p + |a|] if a continues out there, ml >= p + agreement;
 *     on any other value the common start is unchanged.
 *   Truncate s: cutting a value that agrees with out for s bytes (ml >= s) gives reach[s];
 *     zero-filling reach[p] (p < s) agrees with out as far as out holds zeros from p.
 *   WriteAt x at off: if x is out's bytes at off, nothing is proved (the bytes around it are
 *     whatever the value held: answer true). Otherwise the result differs from out where x does
 *     (at m = off + agreement, or is longer than out): never a start of out, and ml >= m.
 * Iterated until nothing changes (reach only grows, ml only rises up to len): g can read out only
 * if reach[len] holds. Unexpected failure (no memory to spell v) proves nothing: true.
 */
static bool get_reachable_rewrites(struct checker *ck, uint32_t g, uint32_t v)
{
	const struct lin_op *gop = ck->ops[g].op;
	const char *out = gop->output;
	size_t len = gop->output_len, ml = 0, p;
	unsigned char *reach = ck->reach;
	bool changed;
	uint32_t e;

	memset(reach, 0, len + 1);
	if (v != LIN_POISON) {
		size_t vl = ck->vals.v[v].len, q;
		if (val_spell(ck, v) != LIN_OK)
			return true;
		q = common_prefix(ck->vals.scratch, vl, out, len);
		ml = q;
		if (q == vl)
			reach[q] = 1;
	}
	do {
		changed = false;
		for (e = ck->ent[ck->head].next;
		     e != LIN_NIL && ck->ent[e].time <= gop->return_time; e = ck->ent[e].next) {
			const struct kop *w = &ck->ops[ck->ent[e].op];
			const struct lin_op *wop = w->op;
			size_t n = wop->value_len, off = (size_t)wop->offset, q;
			if (!ck->ent[e].call || wop->kind == LIN_GET || w->poison)
				continue;
			switch (wop->kind) {
			case LIN_GET:
				break;
			case LIN_DELETE:
				changed |= reach_mark(reach, 0, &ml);
				break;
			case LIN_PUT:
				q = common_prefix(wop->value, n, out, len);
				if (q == n)
					changed |= reach_mark(reach, q, &ml);
				else if (q > ml)
					ml = q, changed = true;
				break;
			case LIN_APPEND:
				for (p = 0; p < len && n > 0; p++) {
					if (!reach[p])
						continue;
					q = p + common_prefix(wop->value, n, out + p, len - p);
					if (q - p == n)
						changed |= reach_mark(reach, q, &ml);
					else if (q > ml)
						ml = q, changed = true;
				}
				break;
			case LIN_TRUNCATE:
				if (off <= len && ml >= off && !reach[off])
					changed |= reach_mark(reach, off, &ml);
				for (p = 0; p < off && p < len; p++) {
					if (!reach[p])
						continue;
					for (q = p; q < off && q < len && out[q] == '\0'; q++)
						;
					if (q == off)
						changed |= reach_mark(reach, q, &ml);
					else if (q > ml)
						ml = q, changed = true;
				}
				break;
			case LIN_WRITE_AT:
				if (off <= len && n <= len - off &&
				    memcmp(out + off, wop->value, n) == 0)
					return true;
				q = off < len
				        ? off + common_prefix(wop->value, n, out + off, len - off)
				        : len;
				if (q > ml)
					ml = q, changed = true;
				break;
			}
		}
	} while (changed);
	return reach[len] != 0;
}

/*
 * Whether Get g (not placed, not matching the value v now) can still read its result. Only ops
 * called by g's return can come before it, so what g reads is a base followed by appends of such
 * ops: the base is v (no reset in between), the input of a Put, or "" after a Delete (or a Put
 * of ""). The result must split that way; the check ignores that each append is used once and
 * in an order the history allows, so it is a necessary condition: a false answer proves the
 * configuration dead. ck->reach[p] marks the result's prefixes of length p so built. When a
 * WriteAt or Truncate may come before g, get_reachable_rewrites() answers instead (a poison one is
 * skipped like the other writes: no Get reads its value, and nothing but a Put or Delete can
 * follow it, so it is never between g's base and g).
 */
static bool get_reachable(struct checker *ck, uint32_t g, uint32_t v)
{
	struct kop *o = &ck->ops[g];
	const char *out = o->op->output;
	size_t len = o->op->output_len, p;
	uint32_t e, napps = 0, i;

	memset(ck->reach, 0, len + 1);
	if (o->prefix_ok == v || val_is_prefix(ck, v, out, len)) {
		o->prefix_ok = v;
		ck->reach[ck->vals.v[v].len] = 1;
	}
	for (e = ck->ent[ck->head].next; e != LIN_NIL && ck->ent[e].time <= o->op->return_time;
	     e = ck->ent[e].next) {
		const struct kop *w = &ck->ops[ck->ent[e].op];
		const struct lin_op *wop = w->op;
		if (!ck->ent[e].call || wop->kind == LIN_GET || w->poison)
			continue;
		if (kind_rewrites(wop->kind))
			return get_reachable_rewrites(ck, g, v);
		if (wop->kind == LIN_DELETE || (wop->kind == LIN_PUT && wop->value_len == 0))
			ck->reach[0] = 1;
		else if (wop->kind == LIN_PUT && wop->value_len <= len &&
		         memcmp(wop->value, out, wop->value_len) == 0)
			ck->reach[wop->value_len] = 1;
		else if (wop->kind == LIN_APPEND && wop->value_len > 0)
			ck->apps[napps++] = ck->ent[e].op;
	}
	for (p = 0; p < len; p++) {
		if (!ck->reach[p])
			continue;
		for (i = 0; i < napps; i++) {
			const struct lin_op *a = ck->ops[ck->apps[i]].op;
			if (a->value_len <= len - p && memcmp(out + p, a->value, a->value_len) == 0)
				ck->reach[p + a->value_len] = 1;
		}
	}
	return ck->reach[len] != 0;
}

/*
 * Wing-Gong search with Lowe's memoization over the entry list, depth first.
 *
 * On entering a configuration, a Get of the frontier whose result is the value now is placed at
 * once and alone: moving a Get earlier, to a point where the value is the same, keeps a valid
 * completion valid, so if the configuration after it fails, so does the one before. A
 * configuration where a Get of the frontier can no longer read its result is a dead end at once
 * (get_reachable()), which cuts the orders of concurrent appends a later Get contradicts. Otherwise the
 * writes of the frontier are tried in order (see frontier()). When none fits, the op of the first
 * return entry cannot be linearized after the current prefix: backtrack, and try the parent's next
 * choice.
 */
static int search(struct checker *ck, enum lin_verdict *verdict)
{
	uint32_t state = 0, next_choice = 0;
	bool fresh = true; /* a configuration not visited before: try its Gets */
	struct frame f;
	int rc;

	(void)memo_seen(ck, 0);
	for (;;) {
		uint32_t r, n, i;
		if (out_of_budget(ck)) {
			*verdict = LIN_TIMEOUT;
			return LIN_OK;
		}
		n = frontier(ck, &r);
		if (r == LIN_NIL || ck->ops[ck->ent[r].op].unknown) {
			/* every definite op is placed (return entries of unknown ops sort last);
			 * the unknown ones left never took effect */
			*verdict = LIN_LINEARIZABLE;
			return LIN_OK;
		}
		if (fresh) {
			fresh = false;
			for (i = 0, rc = 0; i < ck->ngets && rc == 0; i++)
				rc = try_op(ck, ck->gets[i], &state, LIN_NIL);
			if (rc < 0)
				return -rc;
			if (rc == 1) {
				fresh = true;
				continue;
			}
			if (rc == 2) /* the forced Get leads to an explored configuration */
				goto backtrack;
			/* no Get fits now: prune when one of them never can */
			for (i = 0; i < ck->ngets; i++) {
				if (!get_reachable(ck, ck->gets[i], state))
					break;
			}
			if (i < ck->ngets) {
				note_dead_end(ck, ck->ops[ck->gets[i]].return_entry, state, n);
				goto backtrack;
			}
		}
		for (i = next_choice, rc = 0; i < n; i++) {
			rc = try_op(ck, (uint32_t)ck->cand[i], &state, i);
			if (rc < 0)
				return -rc;
			if (rc == 1)
				break;
		}
		if (rc == 1) {
			fresh = true;
			next_choice = 0;
			continue;
		}
		note_dead_end(ck, r, state, n);
	backtrack:
		do {
			if (ck->sp == 0) {
				*verdict = LIN_NOT_LINEARIZABLE;
				return LIN_OK;
			}
			f = pop_frame(ck);
		} while (f.choice == LIN_NIL);
		state = f.old_val;
		next_choice = f.choice + 1;
	}
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->call != y->call) /* at equal times, calls first: such ops count as concurrent */
		return x->call ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

/*
 * Whether no Get of the key could have seen write k: its input is not empty and occurs in no Get
 * result, and no WriteAt or Truncate but k itself can come after it (each of the key's others
 * returned before k was called: rewrite_ret is the latest return among them). After such a write
 * the value contains its input until the next Put or Delete (appends keep it), so no Get comes
 * between them in any linearization. (A WriteAt or Truncate after it could cut the input or write
 * over part of it, and a Get see the rest: Append "cd" to "ab", Truncate to 3, Get "abc" needs the
 * Append.) An unknown-outcome one can then be dropped (removing it keeps a linearization valid).
 * A definite one is a "poison" write: its value, and any append to it, is the one state
 * LIN_POISON that no Get matches, which is exact for this model and merges the orders of such
 * writes in the memo cache. *budget limits the bytes scanned; past it the answer is false
 * (always sound).
 */
static bool unobserved(const struct lin_history *h, const size_t *idx, size_t n, size_t k,
                       int64_t rewrite_ret, size_t *budget)
{
	const struct lin_op *w = &h->ops[k];
	size_t i;

	if (!kind_has_input(w->kind) || w->value_len == 0 || rewrite_ret >= w->call_time)
		return false;
	for (i = 0; i < n; i++) {
		const struct lin_op *g = &h->ops[idx[i]];
		if (g->kind != LIN_GET || g->status != LIN_STATUS_OK)
			continue;
		if (g->output_len > *budget)
			return false;
		*budget -= g->output_len;
		if (memmem(g->output, g->output_len, w->value, w->value_len))
			return false;
	}
	return true;
}

static int kop_cmp(const void *a, const void *b)
{
	const struct kop *x = a, *y = b;

	if (x->unknown != y->unknown)
		return x->unknown ? 1 : -1;
	if (!x->unknown && x->op->call_time != y->op->call_time)
		return x->op->call_time < y->op->call_time ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Words the definite window of a cache record needs. When y is the first definite op not placed,
 * every placed definite op x was called no later than y returned (else y would have had to come
 * first), and ops are sorted by call time: the placed ones lie between y and the last op called
 * by y's return.
 */
static size_t window_words(const struct checker *ck)
{
	size_t w = 1;
	uint32_t y;

	for (y = 0; y < ck->n_definite; y++) {
		int64_t ret = ck->ops[y].op->return_time;
		uint32_t lo = y, hi = ck->n_definite; /* the last op called by ret is lo */
		while (hi - lo > 1) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (ck->ops[mid].op->call_time <= ret)
				lo = mid;
			else
				hi = mid;
		}
		if (lo / 64 - y / 64 + 1 > w)
			w = lo / 64 - y / 64 + 1;
	}
	return w;
}

struct by_return {
	int64_t time;
	uint32_t op;
};

static int by_return_cmp(const void *a, const void *b)
{
	const struct by_return *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

/* kop.rank: definite ops by return time, then unknown ones by number. */
static int set_ranks(struct checker *ck)
{
	struct by_return *r = malloc((ck->n_definite ? ck->n_definite : 1) * sizeof(*r));
	uint32_t k;

	if (!r)
		return LIN_ENOMEM;
	for (k = 0; k < ck->n_definite; k++)
		r[k] = (struct by_return){.time = ck->ops[k].op->return_time, .op = k};
	qsort(r, ck->n_definite, sizeof(*r), by_return_cmp);
	for (k = 0; k < ck->n_definite; k++)
		ck->ops[r[k].op].rank = k;
	for (k = ck->n_definite; k < ck->n; k++)
		ck->ops[k].rank = k;
	free(r);
	return LIN_OK;
}

/*
 * The latest return time among the key's WriteAt and Truncate ops (idx[n]) in rets[0] and the one
 * before it in rets[1] (INT64_MIN when none), and in *latest the op of rets[0] (SIZE_MAX if none),
 * so that "the latest among all but op j" is rets[j == *latest].
 */
static void rewrite_returns(const struct lin_history *h, const size_t *idx, size_t n,
                            int64_t rets[2], size_t *latest)
{
	size_t i;

	rets[0] = rets[1] = INT64_MIN;
	*latest = SIZE_MAX;
	for (i = 0; i < n; i++) {
		const struct lin_op *op = &h->ops[idx[i]];
		if (!kind_rewrites(op->kind))
			continue;
		if (op->return_time >= rets[0]) {
			rets[1] = rets[0];
			rets[0] = op->return_time;
			*latest = idx[i];
		} else if (op->return_time > rets[1]) {
			rets[1] = op->return_time;
		}
	}
}

static int checker_build(struct checker *ck, const size_t *idx, size_t n,
                         const struct lin_options *opt, size_t *dropped)
{
	size_t i, budget = LIN_UNOBSERVED_SCAN_BYTES, max_out, w, latest;
	int64_t rets[2];
	uint32_t k = 0;

	ck->ops = calloc(n ? n : 1, sizeof(*ck->ops));
	if (!ck->ops)
		return LIN_ENOMEM;
	rewrite_returns(ck->h, idx, n, rets, &latest);
	for (i = 0; i < n; i++) {
		const struct lin_op *op = &ck->h->ops[idx[i]];
		struct kop *o = &ck->ops[k];
		int64_t rewrite_ret = rets[idx[i] == latest];
		if (op->status == LIN_STATUS_UNKNOWN &&
		    unobserved(ck->h, idx, n, idx[i], rewrite_ret, &budget)) {
			(*dropped)++;
			continue;
		}
		o->op = op;
		o->index = idx[i];
		o->unknown = op->status == LIN_STATUS_UNKNOWN;
		o->poison = !o->unknown && unobserved(ck->h, idx, n, idx[i], rewrite_ret, &budget);
		ck->n_poison += o->poison;
		o->verified = LIN_NIL;
		o->prefix_ok = LIN_NIL;
		o->zobrist = mix64(UINT64_C(0x5851f42d4c957f2d) ^ idx[i]);
		if (op->kind == LIN_GET)
			o->hash = hash_bytes(op->output, op->output_len);
		else
			o->hash = hash_bytes(op->value, op->value_len);
		if (op->kind == LIN_APPEND || op->kind == LIN_WRITE_AT)
			o->pow = pow61(op->value_len);
		ck->n_unknown += o->unknown;
		k++;
	}
	qsort(ck->ops, k, sizeof(*ck->ops), kop_cmp);
	ck->n = k;
	ck->n_definite = k - ck->n_unknown;
	ck->unknown_pending = ck->n_unknown;
	ck->head = 2 * k;
	ck->dwords = (ck->n_definite + 63) / 64;
	ck->uwords = (ck->n_unknown + 63) / 64;
	ck->ent = malloc((2 * (size_t)k + 1) * sizeof(*ck->ent));
	ck->bits = calloc(ck->dwords + ck->uwords + 1, sizeof(*ck->bits));
	ck->stack = malloc((k ? k : 1) * sizeof(*ck->stack));
	ck->best = malloc((k ? k : 1) * sizeof(*ck->best));
	ck->cand = malloc((k ? k : 1) * sizeof(*ck->cand));
	ck->gets = malloc((k ? k : 1) * sizeof(*ck->gets));
	ck->apps = malloc((k ? k : 1) * sizeof(*ck->apps));
	for (i = 0, max_out = 0; i < k; i++) {
		if (ck->ops[i].op->output_len > max_out)
			max_out = ck->ops[i].op->output_len;
	}
	ck->reach = malloc(max_out + 1);
	if (!ck->ent || !ck->bits || !ck->stack || !ck->best || !ck->cand || !ck->gets ||
	    !ck->apps || !ck->reach)
		return LIN_ENOMEM;
	if (set_ranks(ck) != LIN_OK)
		return LIN_ENOMEM;
	if (ck->n_definite % 64) /* pad: a word of only placed ops reads all ones */
		ck->bits[ck->dwords - 1] = UINT64_MAX << (ck->n_definite % 64);
	while (ck->first < ck->dwords && ck->bits[ck->first] == UINT64_MAX)
		ck->first++;
	for (k = 0; k < ck->n; k++) {
		ck->ent[2 * k] =
		        (struct entry){.time = ck->ops[k].op->call_time, .op = k, .call = true};
		ck->ent[2 * k + 1] = (struct entry){.time = ck->ops[k].op->return_time, .op = k};
	}
	qsort(ck->ent, 2 * (size_t)ck->n, sizeof(*ck->ent), entry_cmp);
	ck->ent[ck->head] = (struct entry){.next = ck->n ? 0 : LIN_NIL, .prev = LIN_NIL};
	for (i = 0; i < 2 * (size_t)ck->n; i++) {
		struct entry *en = &ck->ent[i];
		en->prev = i == 0 ? ck->head : (uint32_t)(i - 1);
		en->next = i + 1 < 2 * (size_t)ck->n ? (uint32_t)(i + 1) : LIN_NIL;
		if (en->call)
			ck->ops[en->op].call_entry = (uint32_t)i;
		else
			ck->ops[en->op].return_entry = (uint32_t)i;
	}
	ck->best_blocked = LIN_NIL;
	if (vals_init(&ck->vals, opt->max_state_bytes) != LIN_OK)
		return LIN_ENOMEM;
	w = window_words(ck);
	if (cache_init(&ck->cache, w, ck->uwords,
	               ck->n_unknown ? opt->max_cache_bytes / 2 : opt->max_cache_bytes) != LIN_OK ||
	    cache_init(&ck->exact, w, ck->uwords, ck->n_unknown ? opt->max_cache_bytes / 2 : 1) !=
	            LIN_OK)
		return LIN_ENOMEM;
	ck->rec = malloc(ck->cache.rec_words * sizeof(*ck->rec));
	return ck->rec ? LIN_OK : LIN_ENOMEM;
}

static void checker_free(struct checker *ck)
{
	free(ck->ops);
	free(ck->ent);
	free(ck->bits);
	free(ck->rec);
	free(ck->stack);
	free(ck->best);
	free(ck->cand);
	free(ck->gets);
	free(ck->apps);
	free(ck->reach);
	vals_free(&ck->vals);
	cache_free(&ck->cache);
	cache_free(&ck->exact);
}

/* ---- explanations ---- */

struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	bool failed;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap + (size_t)n + 1) * 2;
			char *p = realloc(b->p, cap);
			if (!p) {
				b->failed = true;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

/* p[0..n) quoted with escapes, cut after LIN_SHOW_VALUE_BYTES. */
static void sb_value(struct sbuf *b, const char *p, size_t n)
{
	size_t i, show = n > LIN_SHOW_VALUE_BYTES ? LIN_SHOW_VALUE_BYTES : n;

	sb_printf(b, "\"");
	for (i = 0; i < show; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '"' || ch == '\\')
			sb_printf(b, "\\%c", ch);
		else if (ch >= 0x20 && ch < 0x7f)
			sb_printf(b, "%c", ch);
		else
			sb_printf(b, "\\x%02x", ch);
	}
	sb_printf(b, show < n ? "\"... (%zu bytes)" : "\"", n);
}

static void sb_op(struct sbuf *b, const struct lin_history *h, size_t index)
{
	const struct lin_op *op = &h->ops[index];

	sb_printf(b, "op %zu", index);
	if (op->line)
		sb_printf(b, " (line %lu)", op->line);
	sb_printf(b, ": client %d %s ", op->client, kind_names[op->kind]);
	sb_value(b, op->key, strlen(op->key));
	if (op->kind == LIN_WRITE_AT)
		sb_printf(b, " at %" PRIu64, op->offset);
	else if (op->kind == LIN_TRUNCATE)
		sb_printf(b, " to %" PRIu64 " bytes", op->offset);
	if (kind_has_input(op->kind)) {
		sb_printf(b, " ");
		sb_value(b, op->value, op->value_len);
	} else if (op_has_output(op)) {
		sb_printf(b, " -> ");
		sb_value(b, op->output, op->output_len);
	}
	if (op->status == LIN_STATUS_UNKNOWN)
		sb_printf(b, " [%" PRId64 ", -] unknown\n", op->call_time);
	else
		sb_printf(b, " [%" PRId64 ", %" PRId64 "] %s\n", op->call_time, op->return_time,
		          status_names[op->status]);
}

static int explain_violation(struct checker *ck, struct lin_result *res)
{
	struct sbuf b = {0};
	uint32_t i, from;

	res->prefix = malloc((ck->best_len ? ck->best_len : 1) * sizeof(*res->prefix));
	if (!res->prefix)
		return LIN_ENOMEM;
	for (i = 0; i < ck->best_len; i++)
		res->prefix[i] = ck->ops[ck->best[i]].index;
	res->prefix_len = ck->best_len;
	res->blocked = ck->ops[ck->best_blocked].index;

	sb_printf(&b, "key ");
	sb_value(&b, ck->key, strlen(ck->key));
	sb_printf(&b, " is not linearizable (%u ops checked on it, %u with unknown outcome)\n",
	          ck->n, ck->n_unknown);
	from = ck->best_len > LIN_SHOW_PREFIX_OPS ? ck->best_len - LIN_SHOW_PREFIX_OPS : 0;
	sb_printf(&b, "longest linearizable prefix: %u ops%s\n", ck->best_len,
	          from > 0 ? ", ending with" : "");
	for (i = from; i < ck->best_len; i++) {
		sb_printf(&b, "  ");
		sb_op(&b, ck->h, ck->ops[ck->best[i]].index);
	}
	sb_printf(&b, "value after it: ");
	if (ck->best_val == LIN_POISON) {
		sb_printf(&b, "one holding the input of a write that no Get ever read");
	} else {
		if (val_spell(ck, ck->best_val) != LIN_OK)
			return LIN_ENOMEM;
		sb_value(&b, ck->vals.scratch, ck->vals.v[ck->best_val].len);
	}
	sb_printf(&b, "\nthen this op could not be placed:\n  ");
	sb_op(&b, ck->h, res->blocked);
	if (ck->best_ncand > 0)
		sb_printf(&b, "ops that could have come first but did not fit:\n");
	for (i = 0; i < ck->best_ncand; i++) {
		sb_printf(&b, "  ");
		sb_op(&b, ck->h, ck->ops[ck->best_cand[i]].index);
	}
	if (b.failed) {
		free(b.p);
		return LIN_ENOMEM;
	}
	res->explanation = b.p;
	return LIN_OK;
}

static int explain(struct lin_result *res, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return LIN_ENOMEM;
	p = malloc((size_t)n + 1);
	if (!p)
		return LIN_ENOMEM;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	free(res->explanation);
	res->explanation = p;
	return LIN_OK;
}

/* ---- the whole check ---- */

struct keyed {
	const char *key;
	size_t index;
};

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int check_key(struct checker *ck, const size_t *idx, size_t n, const struct lin_options *opt,
                     struct lin_result *res)
{
	enum lin_verdict verdict = LIN_TIMEOUT;
	int rc;

	rc = checker_build(ck, idx, n, opt, &res->ops_dropped);
	if (rc == LIN_OK)
		rc = search(ck, &verdict);
	res->configs += ck->cache.count + ck->exact.count;
	res->cache_overflowed |= ck->cache.overflowed || ck->exact.overflowed;
	if (rc == LIN_ETOOBIG) { /* the value budget: no verdict */
		ck->out_of = "the value memory budget";
		verdict = LIN_TIMEOUT;
		rc = LIN_OK;
	}
	if (rc != LIN_OK)
		return rc;
	res->verdict = verdict;
	if (verdict == LIN_LINEARIZABLE) {
		res->keys_checked++;
		return LIN_OK;
	}
	res->key = dup_bytes(ck->key, strlen(ck->key));
	if (!res->key)
		return LIN_ENOMEM;
	if (verdict == LIN_NOT_LINEARIZABLE)
		return explain_violation(ck, res);
	return explain(res,
	               "no verdict: ran out of %s on key \"%s\" (%u ops on it, %" PRIu64
	               " steps in all, %zu keys decided linearizable before it)\n",
	               ck->out_of, ck->key, ck->n, ck->steps, res->keys_checked);
}

int lin_check(const struct lin_history *h, const struct lin_options *opt, struct lin_result *res)
{
	struct lin_options o = {0};
	struct keyed *keys = NULL;
	size_t *idx = NULL;
	size_t i, n = 0, start;
	struct timespec t0;
	uint64_t steps = 0;
	int rc = LIN_OK;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!res)
		return LIN_EINVAL;
	memset(res, 0, sizeof(*res));
	res->verdict = LIN_TIMEOUT;
	res->blocked = SIZE_MAX;
	if (!h) {
		explain(res, "no history to check\n");
		return LIN_EINVAL;
	}
	if (opt)
		o = *opt;
	if (o.timeout_ms <= 0)
		o.timeout_ms = LIN_DEFAULT_TIMEOUT_MS;
	if (o.max_cache_bytes == 0)
		o.max_cache_bytes = LIN_DEFAULT_CACHE_BYTES;
	if (o.max_state_bytes == 0)
		o.max_state_bytes = LIN_DEFAULT_STATE_BYTES;

	keys = malloc((h->count ? h->count : 1) * sizeof(*keys));
	idx = malloc((h->count ? h->count : 1) * sizeof(*idx));
	if (!keys || !idx) {
		rc = LIN_ENOMEM;
		goto out_arrays;
	}
	for (i = 0; i < h->count; i++) {
		const struct lin_op *op = &h->ops[i];
		/* a failed op never took effect, and an unknown Get returned nothing to check */
		if (op->status == LIN_STATUS_FAILED ||
		    (op->status == LIN_STATUS_UNKNOWN && op->kind == LIN_GET)) {
			res->ops_dropped++;
			continue;
		}
		keys[n++] = (struct keyed){.key = op->key, .index = i};
	}
	qsort(keys, n, sizeof(*keys), keyed_cmp);
	res->verdict = LIN_LINEARIZABLE;
	for (start = 0; start < n && res->verdict == LIN_LINEARIZABLE;) {
		struct checker ck;
		size_t end = start;
		while (end < n && strcmp(keys[end].key, keys[start].key) == 0) {
			idx[end - start] = keys[end].index;
			end++;
		}
		memset(&ck, 0, sizeof(ck));
		ck.h = h;
		ck.key = keys[start].key;
		ck.start = t0;
		ck.timeout_ms = o.timeout_ms;
		ck.max_steps = o.max_steps;
		ck.steps = steps;
		rc = check_key(&ck, idx, end - start, &o, res);
		steps = ck.steps;
		checker_free(&ck);
		if (rc != LIN_OK)
			break;
		start = end;
	}
	res->steps = steps;
	if (rc == LIN_OK && res->verdict == LIN_LINEARIZABLE)
		rc = explain(res,
		             "linearizable: %zu ops on %zu keys (%zu dropped), %" PRIu64
		             " steps, %" PRIu64 " configurations\n",
		             h->count, res->keys_checked, res->ops_dropped, steps, res->configs);
out_arrays:
	free(keys);
	free(idx);
	if (rc != LIN_OK) {
		res->verdict = LIN_TIMEOUT; /* never a pass */
		explain(res, "check failed: %s\n", lin_strerror(rc));
	}
	res->elapsed_ms = elapsed_ms(&t0);
	return rc;
}

void lin_result_free(struct lin_result *res)
{
	if (!res)
		return;
	free(res->key);
	free(res->prefix);
	free(res->explanation);
	memset(res, 0, sizeof(*res));
}
