/* certs.c - certificates for the TLS tests (certs.h). */
#include "tests/lib/certs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DAY_S (24L * 3600L)

struct issued {
	X509 *cert;
	EVP_PKEY *key;
};

const char *certs_pem(const struct certs *c, const char *name, char *out)
{
	snprintf(out, CERTS_PATH_BYTES, "%s/%s.pem", c->dir, name);
	return out;
}

const char *certs_key(const struct certs *c, const char *name, char *out)
{
	snprintf(out, CERTS_PATH_BYTES, "%s/%s.key", c->dir, name);
	return out;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static int write_pair(const struct certs *c, const char *name, const struct issued *is)
{
	char path[CERTS_PATH_BYTES];
	FILE *f;
	int ok;

	f = fopen(certs_pem(c, name, path), "w");
	if (!f)
		return -1;
	ok = PEM_write_X509(f, is->cert);
	if (fclose(f) != 0 || !ok)
		return -1;
	f = fopen(certs_key(c, name, path), "w");
	if (!f)
		return -1;
	ok = PEM_write_PrivateKey(f, is->key, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0 || !ok)
		return -1;
	return 0;
}

/*
 * A certificate for cn, valid from `from` to `to` days from now, signed by issuer (NULL: a
 * self-signed CA), with the subjectAltName san (NULL: none) and extended key usage eku. Written
 * as name.pem / name.key; *out keeps it (to sign others) when out is not NULL.
 */
static int issue(const struct certs *c, const char *name, const char *cn, const char *san,
                 const char *eku, const struct issued *issuer, long from, long to,
                 struct issued *out)
{
	static long serial = 1;
	struct issued is = {X509_new(), EVP_EC_gen("P-256")};
	X509_NAME *subject;
	int rc = -1;

	if (!is.cert || !is.key)
		goto out;
	subject = X509_get_subject_name(is.cert);
	if (X509_set_version(is.cert, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(is.cert), serial++) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(is.cert), from * DAY_S) ||
	    !X509_gmtime_adj(X509_getm_notAfter(is.cert), to * DAY_S) ||
	    X509_set_pubkey(is.cert, is.key) != 1 ||
	    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
	                               -1, 0) != 1 ||
	    X509_set_issuer_name(is.cert, issuer ? X509_get_subject_name(issuer->cert) : subject) !=
	            1)
		goto out;
	if (!issuer) {
		if (add_ext(is.cert, NULL, NID_basic_constraints, "critical,CA:TRUE") ||
		    add_ext(is.cert, NULL, NID_key_usage, "critical,keyCertSign,cRLSign"))
			goto out;
	} else {
		if (add_ext(is.cert, issuer->cert, NID_basic_constraints, "CA:FALSE") ||
		    add_ext(is.cert, issuer->cert, NID_key_usage, "critical,digitalSignature") ||
		    add_ext(is.cert, issuer->cert, NID_ext_key_usage, eku) ||
		    (san && add_ext(is.cert, issuer->cert, NID_subject_alt_name, san)))
			goto out;
	}
	if (!X509_sign(is.cert, issuer ? issuer->key : is.key, EVP_sha256()))
		goto out;
	if (write_pair(c, name, &is) != 0)
		goto out;
	rc = 0;
	if (out) {
		*out = is;
		return 0;
	}
out:
	if (rc != 0)
		fprintf(stderr, "certs: cannot make %s\n", name);
	X509_free(is.cert);
	EVP_PKEY_free(is.key);
	return rc;
}

int certs_make(struct certs *c)
{
	static const char *const node_eku = "serverAuth,clientAuth",
	                         *const client_eku = "clientAuth";
	struct issued ca = {NULL, NULL}, other = {NULL, NULL};
	char path[CERTS_PATH_BYTES];
	FILE *f;
	int rc = -1;

	snprintf(c->dir, sizeof(c->dir), "/tmp/raftfs-certs.XXXXXX");
	if (!mkdtemp(c->dir)) {
		perror("certs: mkdtemp");
		return -1;
	}
	if (issue(c, "ca", "test CA", NULL, NULL, NULL, -1, 3650, &ca) ||
	    issue(c, "other-ca", "other CA", NULL, NULL, NULL, -1, 3650, &other))
		goto out;
	for (int i = 1; i <= 3; i++) {
		char name[16], san[32];

		snprintf(name, sizeof(name), "node%d", i);
		snprintf(san, sizeof(san), "IP:127.0.0.%d", i);
		if (issue(c, name, name, san, node_eku, &ca, -1, 365, NULL))
			goto out;
	}
	if (issue(c, "client", "client", NULL, client_eku, &ca, -1, 365, NULL) ||
	    issue(c, "alice", "alice", NULL, client_eku, &ca, -1, 365, NULL) ||
	    issue(c, "node2-new", "node2", "IP:127.0.0.2", node_eku, &ca, -1, 365, NULL) ||
	    issue(c, "expired-client", "client", NULL, client_eku, &ca, -30, -1, NULL) ||
	    issue(c, "expired-node2", "node2", "IP:127.0.0.2", node_eku, &ca, -30, -1, NULL) ||
	    issue(c, "other-client", "client", NULL, client_eku, &other, -1, 365, NULL) ||
	    issue(c, "other-node2", "node2", "IP:127.0.0.2", node_eku, &other, -1, 365, NULL))
		goto out;
	f = fopen(certs_pem(c, "garbage", path), "w");
	if (!f || fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n", f) < 0 ||
	    fclose(f) != 0)
		goto out;
	rc = 0;
out:
	X509_free(ca.cert);
	EVP_PKEY_free(ca.key);
	X509_free(other.cert);
	EVP_PKEY_free(other.key);
	if (rc != 0)
		certs_remove(c);
	return rc;
}

void certs_remove(struct certs *c)
{
	DIR *d;
	struct dirent *de;
	char path[CERTS_PATH_BYTES];

	if (!c->dir[0])
		return;
	d = opendir(c->dir);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", c->dir, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(c->dir);
	c->dir[0] = '\0';
}
