/* tls.c - OpenSSL contexts from PEM files, the peer and client checks, non-blocking I/O (tls.h). */
#include "raft/tls.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

/* What one load of the files makes. */
struct tls_set {
	SSL_CTX *server; /* node only */
	SSL_CTX *dialer;
	X509_STORE *peer_store; /* node only: files.ca, for raft_tls_check_peer */
	X509_STORE *client_store; /* node only: files.client_ca, NULL when none */
};

struct raft_tls {
	enum raft_tls_role role;
	struct raft_tls_files files;
	struct tls_set set;
};

static void errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The oldest error on this thread's OpenSSL queue, as its reason ("no such file", "tlsv1 alert
 * unknown ca"), or fallback; the queue is cleared. */
static const char *queue_reason(const char *fallback, char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *r;

	ERR_clear_error();
	if (!e)
		return fallback;
	r = ERR_reason_error_string(e);
	if (r)
		return r;
	ERR_error_string_n(e, buf, len);
	return buf;
}

static void set_free(struct tls_set *s)
{
	SSL_CTX_free(s->server);
	SSL_CTX_free(s->dialer);
	X509_STORE_free(s->peer_store);
	X509_STORE_free(s->client_store);
	memset(s, 0, sizeof(*s));
}

/* TLS 1.2 at least; no compression, renegotiation or session tickets (nothing resumes). A close
 * without close_notify is an end like another: every message is framed and checked above TLS. */
static SSL_CTX *ctx_new(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (!ctx)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx,
	                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                            SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* AES-128-GCM first (OpenSSL's default puts AES-256 first): as safe for this use, cheaper
	 * per record, and what Go's TLS (etcd's clients) picks too */
	if (SSL_CTX_set_ciphersuites(ctx,
	                             "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
	                             "TLS_CHACHA20_POLY1305_SHA256") != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* no read-ahead: libevent 2.1 asks SSL_pending() whether to read on, which does not count
	 * records read ahead, and would wait on a socket that has nothing more to say */
	return ctx;
}

static int load_identity(SSL_CTX *ctx, const struct raft_tls_files *f, char *err, size_t err_len)
{
	char rb[160];

	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1) {
		errf(err, err_len, "certificate %s: %s", f->cert,
		     queue_reason("cannot be loaded", rb, sizeof(rb)));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1) {
		errf(err, err_len, "key %s: %s", f->key,
		     queue_reason("cannot be loaded", rb, sizeof(rb)));
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		errf(err, err_len, "key %s does not match certificate %s", f->key, f->cert);
		return -1;
	}
	return 0;
}

static int load_ca(SSL_CTX *ctx, const char *path, char *err, size_t err_len)
{
	char rb[160];

	if (SSL_CTX_load_verify_file(ctx, path) != 1) {
		errf(err, err_len, "CA %s: %s", path,
		     queue_reason("holds no certificate", rb, sizeof(rb)));
		return -1;
	}
	return 0;
}

static X509_STORE *store_new(const char *path, char *err, size_t err_len)
{
	X509_STORE *st = X509_STORE_new();
	char rb[160];

	if (!st) {
		errf(err, err_len, "out of memory");
		return NULL;
	}
	if (X509_STORE_load_file(st, path) != 1) {
		errf(err, err_len, "CA %s: %s", path,
		     queue_reason("holds no certificate", rb, sizeof(rb)));
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

static int set_load(enum raft_tls_role role, const struct raft_tls_files *f, struct tls_set *s,
                    char *err, size_t err_len)
{
	bool identity = f->cert[0] || f->key[0];
	int verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;

	memset(s, 0, sizeof(*s));
	ERR_clear_error();
	if (!f->ca[0]) {
		errf(err, err_len, "no CA file");
		return -1;
	}
	if (identity && (!f->cert[0] || !f->key[0])) {
		errf(err, err_len, "a certificate needs its key and a key its certificate");
		return -1;
	}
	if (role == RAFT_TLS_NODE && !identity) {
		errf(err, err_len, "a node needs a certificate and its key");
		return -1;
	}
	s->dialer = ctx_new(TLS_client_method());
	if (!s->dialer)
		goto nomem;
	SSL_CTX_set_verify(s->dialer, SSL_VERIFY_PEER, NULL);
	if ((identity && load_identity(s->dialer, f, err, err_len) != 0) ||
	    load_ca(s->dialer, f->ca, err, err_len) != 0)
		goto fail;
	if (role != RAFT_TLS_NODE)
		return 0;
	s->server = ctx_new(TLS_server_method());
	if (!s->server)
		goto nomem;
	SSL_CTX_set_verify(s->server, verify, NULL);
	if (load_identity(s->server, f, err, err_len) != 0 ||
	    load_ca(s->server, f->ca, err, err_len) != 0 ||
	    (f->client_ca[0] && load_ca(s->server, f->client_ca, err, err_len) != 0))
		goto fail;
	s->peer_store = store_new(f->ca, err, err_len);
	if (!s->peer_store)
		goto fail;
	if (f->client_ca[0]) {
		s->client_store = store_new(f->client_ca, err, err_len);
		if (!s->client_store)
			goto fail;
	}
	return 0;
nomem:
	errf(err, err_len, "TLS: out of memory");
fail:
	ERR_clear_error();
	set_free(s);
	return -1;
}

int raft_tls_new(enum raft_tls_role role, const struct raft_tls_files *files, struct raft_tls **out,
                 char *err, size_t err_len)
{
	struct raft_tls *tls;

	if (role != RAFT_TLS_NODE && role != RAFT_TLS_CLIENT) {
		errf(err, err_len, "TLS: unknown role");
		return -1;
	}
	tls = calloc(1, sizeof(*tls));
	if (!tls) {
		errf(err, err_len, "TLS: out of memory");
		return -1;
	}
	tls->role = role;
	tls->files = *files;
	if (set_load(role, &tls->files, &tls->set, err, err_len) != 0) {
		free(tls);
		return -1;
	}
	*out = tls;
	return 0;
}

int raft_tls_reload(struct raft_tls *tls, char *err, size_t err_len)
{
	struct tls_set s;

	if (set_load(tls->role, &tls->files, &s, err, err_len) != 0)
		return -1;
	set_free(&tls->set); /* live SSLs hold references to the old contexts */
	tls->set = s;
	return 0;
}

void raft_tls_free(struct raft_tls *tls)
{
	if (!tls)
		return;
	set_free(&tls->set);
	free(tls);
}

enum raft_tls_role raft_tls_role(const struct raft_tls *tls)
{
	return tls->role;
}

bool raft_tls_serves_clients(const struct raft_tls *tls)
{
	return tls->set.client_store != NULL;
}

struct ssl_st *raft_tls_accept_ssl(struct raft_tls *tls)
{
	if (!tls->set.server)
		return NULL;
	return SSL_new(tls->set.server);
}

struct ssl_st *raft_tls_dial_ssl(struct raft_tls *tls, const char *ip)
{
	SSL *ssl = SSL_new(tls->set.dialer);

	if (!ssl)
		return NULL;
	/* the name check is the handshake's: it fails unless the certificate holds this IP */
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

void raft_tls_peer_cn(struct ssl_st *ssl, char *cn, size_t cn_len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	int n;

	if (cn_len == 0)
		return;
	cn[0] = '\0';
	if (!cert)
		return;
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
	                              (int)(cn_len > INT_MAX ? INT_MAX : cn_len));
	if (n < 0)
		cn[0] = '\0';
	ERR_clear_error();
}

/* Whether ssl's peer certificate chains to the CAs of st (checked again here: the handshake
 * accepted a chain to either of the node's CAs). 0, or -1 with why. */
static int verify_against(X509_STORE *st, SSL *ssl, const char *what, char *why, size_t why_len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_STORE_CTX *vc;
	int ok;

	if (!cert) {
		errf(why, why_len, "no certificate");
		return -1;
	}
	vc = X509_STORE_CTX_new();
	if (!vc || X509_STORE_CTX_init(vc, st, cert, SSL_get_peer_cert_chain(ssl)) != 1) {
		X509_STORE_CTX_free(vc);
		ERR_clear_error();
		errf(why, why_len, "out of memory checking the certificate");
		return -1;
	}
	X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_CLIENT);
	ok = X509_verify_cert(vc) == 1;
	if (!ok)
		errf(why, why_len, "its certificate does not chain to the %s: %s", what,
		     X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
	X509_STORE_CTX_free(vc);
	ERR_clear_error();
	return ok ? 0 : -1;
}

int raft_tls_check_peer(struct raft_tls *tls, struct ssl_st *ssl, const char *ip, char *why,
                        size_t why_len)
{
	char cn[RAFT_TLS_CN_BYTES];

	if (!tls->set.peer_store) {
		errf(why, why_len, "no peer CA");
		return -1;
	}
	if (verify_against(tls->set.peer_store, ssl, "peer CA", why, why_len) != 0)
		return -1;
	if (X509_check_ip_asc(SSL_get0_peer_certificate(ssl), ip, 0) != 1) {
		ERR_clear_error();
		raft_tls_peer_cn(ssl, cn, sizeof(cn));
		errf(why, why_len, "its certificate (CN=%s) does not name %s in its subjectAltName",
		     cn, ip);
		return -1;
	}
	return 0;
}

int raft_tls_check_client(struct raft_tls *tls, struct ssl_st *ssl, char *cn, size_t cn_len,
                          char *why, size_t why_len)
{
	if (!tls->set.client_store) {
		errf(why, why_len, "this node takes no clients (no --trusted-ca-file)");
		return -1;
	}
	if (verify_against(tls->set.client_store, ssl, "client CA", why, why_len) != 0)
		return -1;
	raft_tls_peer_cn(ssl, cn, cn_len);
	return 0;
}

/* Appends text to buf (a line of reasons separated by "; "). */
static void add_reason(char *buf, size_t len, const char *text)
{
	size_t have = strlen(buf);

	if (have + 1 >= len)
		return;
	snprintf(buf + have, len - have, "%s%s", have ? "; " : "", text);
}

/* The verify result of ssl when its certificate check failed, else nothing. */
static void add_verify_reason(SSL *ssl, char *buf, size_t len)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	char t[160];

	if (v == X509_V_OK)
		return;
	snprintf(t, sizeof(t), "certificate: %s", X509_verify_cert_error_string(v));
	add_reason(buf, len, t);
}

void raft_tls_bev_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e;
	bool verify_added = false;

	if (len == 0)
		return;
	buf[0] = '\0';
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		const char *r = ERR_reason_error_string(e);
		char t[160];

		if (ERR_GET_LIB(e) == 0)
			continue; /* not OpenSSL's: libevent's own record of the SSL_get_error kind */
		if (!r) {
			ERR_error_string_n(e, t, sizeof(t));
			r = t;
		}
		add_reason(buf, len, r);
		if (!verify_added && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
			add_verify_reason(bufferevent_openssl_get_ssl(bev), buf, len);
			verify_added = true;
		}
	}
	if (!buf[0]) {
		int se = EVUTIL_SOCKET_ERROR();
		snprintf(buf, len, "%s",
		         se ? evutil_socket_error_to_string(se) : "connection closed");
	}
}

/* --- non-blocking I/O ------------------------------------------------------------------------ */

/*
 * The clients' socket BIO: OpenSSL's own writes with write(2), which raises SIGPIPE on a
 * connection the node closed; a library must not kill its caller for that (the clerk promises
 * MSG_NOSIGNAL: kv/clerk.h). This one sends with MSG_NOSIGNAL; it never closes the socket.
 */
static int nsp_fd(BIO *b)
{
	return (int)(intptr_t)BIO_get_data(b);
}

static int nsp_write(BIO *b, const char *buf, int len)
{
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(nsp_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

static int nsp_read(BIO *b, char *buf, int len)
{
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(nsp_fd(b), buf, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	return (int)n;
}

static long nsp_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = nsp_fd(b);
		return nsp_fd(b);
	default:
		return 0;
	}
}

static BIO_METHOD *nsp_method;
static pthread_once_t nsp_once = PTHREAD_ONCE_INIT;

static void nsp_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "raftfs socket");

	if (m &&
	    (BIO_meth_set_write(m, nsp_write) != 1 || BIO_meth_set_read(m, nsp_read) != 1 ||
	     BIO_meth_set_ctrl(m, nsp_ctrl) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	nsp_method = m; /* lives as long as the process */
}

static BIO *nsp_new(int fd)
{
	BIO *b;

	pthread_once(&nsp_once, nsp_init);
	if (!nsp_method)
		return NULL;
	b = BIO_new(nsp_method);
	if (!b)
		return NULL;
	BIO_set_data(b, (void *)(intptr_t)fd);
	BIO_set_init(b, 1);
	return b;
}

struct ssl_st *raft_tls_client_ssl(struct raft_tls *tls, int fd, const char *ip)
{
	SSL *ssl = raft_tls_dial_ssl(tls, ip);
	BIO *bio;

	if (!ssl)
		return NULL;
	bio = nsp_new(fd);
	if (!bio) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_bio(ssl, bio, bio);
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_connect_state(ssl);
	return ssl;
}

/* The reason of a failed call that returned r with SSL_get_error e. */
static void io_reason(SSL *ssl, int e, char *why, size_t why_len)
{
	char rb[160];

	if (!why || why_len == 0)
		return;
	why[0] = '\0';
	add_verify_reason(ssl, why, why_len);
	if (why[0]) {
		ERR_clear_error();
		return;
	}
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		snprintf(why, why_len, "%s", errno ? strerror(errno) : "connection closed");
		return;
	}
	snprintf(why, why_len, "%s", queue_reason("TLS error", rb, sizeof(rb)));
}

/* -1/EAGAIN with *events for a WANT, else 0 (a real failure). */
static int io_want(int e, short *events)
{
	if (e == SSL_ERROR_WANT_READ) {
		*events = POLLIN;
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		*events = POLLOUT;
		errno = EAGAIN;
		return -1;
	}
	return 0;
}

int raft_tls_io_handshake(struct ssl_st *ssl, short *events, char *why, size_t why_len)
{
	int r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(ssl);
	if (r == 1)
		return 1;
	e = SSL_get_error(ssl, r);
	if (io_want(e, events) < 0)
		return 0;
	io_reason(ssl, e, why, why_len);
	return -1;
}

ssize_t raft_tls_io_read(struct ssl_st *ssl, void *buf, size_t len, short *events, char *why,
                         size_t why_len)
{
	int r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0)
		return r;
	e = SSL_get_error(ssl, r);
	if (io_want(e, events) < 0)
		return -1;
	/* a close_notify, or a close without one: either way the node is gone */
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
	     (errno == 0 || errno == ECONNRESET))) {
		ERR_clear_error();
		return 0;
	}
	io_reason(ssl, e, why, why_len);
	errno = EIO;
	return -1;
}

ssize_t raft_tls_io_write(struct ssl_st *ssl, const void *buf, size_t len, short *events, char *why,
                          size_t why_len)
{
	int r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0)
		return r;
	e = SSL_get_error(ssl, r);
	if (io_want(e, events) < 0)
		return -1;
	io_reason(ssl, e, why, why_len);
	errno = EIO;
	return -1;
}

size_t raft_tls_io_pending(struct ssl_st *ssl)
{
	int n = SSL_pending(ssl);

	return n > 0 ? (size_t)n : 0;
}

void raft_tls_io_close(struct ssl_st *ssl)
{
	if (!ssl)
		return;
	/* one attempt on the non-blocking socket: a peer that does not take it loses nothing */
	if (SSL_is_init_finished(ssl))
		(void)SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}
