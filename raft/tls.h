/* tls.h - TLS of the node's port and of its clients: OpenSSL contexts, peer and client checks. */
#ifndef RAFT_TLS_H
#define RAFT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Mutual TLS (1.3, 1.2 allowed) with certificates in PEM files, on OpenSSL 3: nothing of TLS
 * itself is ours. The transport (raft/transport.h) runs it through libevent's bufferevent_openssl;
 * poll()-driven clients (the clerk, the benchmark, the test tools) through the raft_tls_io_*
 * calls below.
 *
 * A node (RAFT_TLS_NODE) holds two contexts:
 *   - the server's, for the connections it accepts: it presents files.cert and requires a
 *     certificate from the other side that chains to files.ca or files.client_ca. Which of the two
 *     it must chain to is known only after the hello says what the connection is: then
 *     raft_tls_check_peer (the peer CA, and the peer's address in the certificate's
 *     subjectAltName) or raft_tls_check_client (the client CA) decides;
 *   - the dialer's, for the connections to its peers: it presents files.cert as its client
 *     certificate and checks that the peer's chains to files.ca and names the peer's address.
 * A client (RAFT_TLS_CLIENT) holds only a dialer's context: files.ca is the CA of the nodes'
 * certificates, files.cert and files.key its own certificate (both or neither).
 *
 * Certificates name addresses as IP addresses in their subjectAltName (the cluster list holds
 * IPv4 addresses: raft/transport.h): a node's certificate must hold the IP of that node's address.
 *
 * Reloading (SIGHUP) builds new contexts from the same files and swaps them in only when every
 * file loaded; connections made before keep the contexts they were made with.
 *
 * Threads: a struct raft_tls is used from one thread (the loop's, or the clerk's).
 */

#define RAFT_TLS_PATH_BYTES 4096u
#define RAFT_TLS_CN_BYTES 256u /* a certificate's common name, with its NUL */
#define RAFT_TLS_ERRMSG_BYTES 256u

struct ssl_st; /* OpenSSL's SSL */
struct bufferevent;

enum raft_tls_role {
	RAFT_TLS_NODE = 1,
	RAFT_TLS_CLIENT = 2,
};

/* The files, as paths ("" when not given). */
struct raft_tls_files {
	char cert[RAFT_TLS_PATH_BYTES]; /* our certificate (with its chain), PEM */
	char key[RAFT_TLS_PATH_BYTES]; /* its private key, PEM */
	char ca[RAFT_TLS_PATH_BYTES]; /* node: the CA of peers' certificates; client: the nodes' */
	char client_ca[RAFT_TLS_PATH_BYTES]; /* node only: the CA of clients; "": none accepted */
};

struct raft_tls;

/*
 * Loads the files and makes the contexts. A node needs cert, key and ca; a client needs ca, and
 * cert and key together or not at all. 0 and *out, or -1 with a message naming the file in err
 * ("certificate /etc/raftfs/n1.pem: no such file", "key /k.pem does not match certificate
 * /c.pem"). Free with raft_tls_free().
 */
int raft_tls_new(enum raft_tls_role role, const struct raft_tls_files *files, struct raft_tls **out,
                 char *err, size_t err_len);

/* Reads the same files again; on success new connections use them. -1 with a message in err
 * when one fails to load: then nothing changes. */
int raft_tls_reload(struct raft_tls *tls, char *err, size_t err_len);

/* NULL is ignored. Connections made with it keep their own references to its contexts. */
void raft_tls_free(struct raft_tls *tls);

/* The role tls was made for. */
enum raft_tls_role raft_tls_role(const struct raft_tls *tls);

/* True when a node has a client CA (clients may connect). */
bool raft_tls_serves_clients(const struct raft_tls *tls);

/* A new SSL for a connection this node accepted (server side), or NULL (out of memory). The
 * caller owns it (SSL_free, or a bufferevent made with BEV_OPT_CLOSE_ON_FREE). */
struct ssl_st *raft_tls_accept_ssl(struct raft_tls *tls);

/* A new SSL for a connection to the node at ip (IPv4 text): the handshake fails unless that
 * node's certificate chains to the CA and names ip. NULL: out of memory. Owned as above. */
struct ssl_st *raft_tls_dial_ssl(struct raft_tls *tls, const char *ip);

/*
 * After a peer's hello on an accepted connection: 0 when ssl's certificate chains to the peer CA
 * and its subjectAltName holds ip (the address the cluster list gives the node the hello names);
 * -1 with the reason in why ("its certificate (CN=node3) does not name 127.0.0.2").
 */
int raft_tls_check_peer(struct raft_tls *tls, struct ssl_st *ssl, const char *ip, char *why,
                        size_t why_len);

/* After a client's hello: 0 and the certificate's common name in cn ("" when it has none), or
 * -1 with the reason in why (no client CA here, a chain to another CA). */
int raft_tls_check_client(struct raft_tls *tls, struct ssl_st *ssl, char *cn, size_t cn_len,
                          char *why, size_t why_len);

/* The common name of ssl's peer certificate into cn ("" when none). */
void raft_tls_peer_cn(struct ssl_st *ssl, char *cn, size_t cn_len);

/* Why a TLS bufferevent failed (its OpenSSL errors, the certificate check, the socket), as one
 * line into buf. Drains the bufferevent's error list. */
void raft_tls_bev_error(struct bufferevent *bev, char *buf, size_t len);

/* --- non-blocking I/O for poll()-driven clients ------------------------------------------------ */

/*
 * A client SSL on the connected non-blocking socket fd, to the node at ip (raft_tls_dial_ssl):
 * NULL when out of memory. Drive it with raft_tls_io_handshake, then read and write with
 * raft_tls_io_read/write. The fd stays the caller's: SSL_free does not close it.
 */
struct ssl_st *raft_tls_client_ssl(struct raft_tls *tls, int fd, const char *ip);

/* One step of the handshake: 1 done, 0 to be called again once fd has *events (POLLIN or
 * POLLOUT), -1 failed with the reason in why ("certificate verify failed: certificate has
 * expired", "tlsv1 alert unknown ca"). */
int raft_tls_io_handshake(struct ssl_st *ssl, short *events, char *why, size_t why_len);

/*
 * As recv and send on a non-blocking socket: the bytes moved (> 0); 0 from read when the node
 * closed the connection; -1 with errno EAGAIN when fd must first have *events (POLLIN or
 * POLLOUT: TLS may read to write and write to read); -1 with errno EIO and the reason in why when
 * the connection failed. A write that returned -1/EAGAIN must be repeated with the same bytes.
 */
ssize_t raft_tls_io_read(struct ssl_st *ssl, void *buf, size_t len, short *events, char *why,
                         size_t why_len);
ssize_t raft_tls_io_write(struct ssl_st *ssl, const void *buf, size_t len, short *events, char *why,
                          size_t why_len);

/* Decrypted bytes ssl holds that no read has returned yet (poll() does not see them). */
size_t raft_tls_io_pending(struct ssl_st *ssl);

/* Frees ssl (NULL ignored) after sending a close_notify if it can without waiting. */
void raft_tls_io_close(struct ssl_st *ssl);

#endif /* RAFT_TLS_H */
