/* certs.h - certificates for the TLS tests, made with OpenSSL's API in a temporary directory. */
#ifndef TESTS_LIB_CERTS_H
#define TESTS_LIB_CERTS_H

#include <stddef.h>

#define CERTS_DIR_BYTES 256
#define CERTS_PATH_BYTES 512

/*
 * certs_make() writes, as NAME.pem and NAME.key (PEM, ECDSA P-256) in a new directory:
 *   ca                 a CA ("test CA")
 *   node1 .. node3     signed by ca, CN=nodeN, subjectAltName IP:127.0.0.N, server + client auth
 *   client, alice      signed by ca, CN=client / CN=alice, client auth only
 *   node2-new          as node2, another key and serial (a rotated certificate)
 *   expired-client     signed by ca, CN=client, expired yesterday
 *   expired-node2      as node2, expired yesterday
 *   other-ca           another CA ("other CA")
 *   other-client       signed by other-ca, CN=client
 *   other-node2        signed by other-ca, as node2
 * and garbage.pem, a file that holds no certificate.
 */
struct certs {
	char dir[CERTS_DIR_BYTES];
};

/* 0, or -1 with a message on stderr. */
int certs_make(struct certs *c);

/* dir/NAME.pem or dir/NAME.key into out (CERTS_PATH_BYTES). */
const char *certs_pem(const struct certs *c, const char *name, char *out);
const char *certs_key(const struct certs *c, const char *name, char *out);

/* Removes the directory and what is in it. */
void certs_remove(struct certs *c);

#endif /* TESTS_LIB_CERTS_H */
