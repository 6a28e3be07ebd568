/* DKIM (RFC 6376) signing and verification with OpenSSL 3: rsa-sha256 and
 * ed25519-sha256 (RFC 8463), c=relaxed/relaxed.  No I/O but key files:
 * bytes in, a header (or a verdict) out. */
#ifndef SE_DKIM_H
#define SE_DKIM_H

#include <stddef.h>
#include <time.h>

#include "mime/compose.h"
#include "scalr_email.h"
#include "util/buf.h"

#define SE_DKIM_MAX_SIGS 2

typedef struct se_dkim_key se_dkim_key; /* a private key, its domain and selector */

/* Load a private key: PEM (PKCS#8 or PKCS#1) or a raw Ed25519 seed in base64
 * as dkimpy's dknewkey writes it.  ECONFIG naming the file when it cannot be
 * read, is not RSA or Ed25519, or is RSA under 1024 bits.  *weak is set when
 * it is RSA of 1024..2047 bits (accepted; the caller warns). */
scalr_email_code se_dkim_key_load(se_dkim_key **out, const char *path, const char *domain,
                                  const char *selector, int *weak, scalr_email_error *err);
void se_dkim_key_free(se_dkim_key *k);
const char *se_dkim_key_alg(const se_dkim_key *k); /* "rsa-sha256" or "ed25519-sha256" */

/* The DNS TXT record value for k's public key: "v=DKIM1; k=rsa; p=...". */
int se_dkim_key_record(const se_dkim_key *k, se_buf *out);

/* Body hashing, streamed (RFC 6376 3.4.3/3.4.4): feed the body in any pieces. */
typedef struct se_dkim_body {
    void *md; /* EVP_MD_CTX */
    int relaxed;
    int cr;             /* the last octet fed was a CR */
    int wsp;            /* relaxed: whitespace waiting for a non-space octet */
    unsigned long crlf; /* line ends held back: trailing empty lines are dropped */
    int any;            /* some line content was hashed */
    unsigned char out[256];
    size_t n;
} se_dkim_body;

int se_dkim_body_init(se_dkim_body *b, int relaxed);
void se_dkim_body_update(se_dkim_body *b, const char *p, size_t n);
int se_dkim_body_final(se_dkim_body *b, unsigned char digest[32]); /* also frees */

/* Relaxed header canonicalization (RFC 6376 3.4.2) of one field as it
 * stands in the message (name, colon, value, folds, no final CRLF):
 * appends "name:value" (with CRLF when crlf). */
void se_dkim_canon_header(se_buf *out, const char *field, size_t n, int crlf);

/* Sign: headers is the header block (fields with their CRLFs, not the blank
 * line), bh the body hash.  Appends one folded DKIM-Signature field per key,
 * each ending in CRLF, to out. */
scalr_email_code se_dkim_sign(se_dkim_key *const *keys, size_t n_keys, const char *headers,
                              size_t hlen, const unsigned char bh[32], time_t t, se_buf *out,
                              scalr_email_error *err);

/* DMARC relaxed alignment before signing: the From domain of the header
 * block must be each key's d= (or a subdomain) unless allow_mismatch, else
 * ECONFIG; no From address: EINVAL. */
scalr_email_code se_dkim_check_aligned(se_dkim_key *const *keys, size_t n_keys, int allow_mismatch,
                                       const char *headers, size_t hlen, scalr_email_error *err);

/* Sign a composed message in place: a first pass hashes the body as it will
 * be sent (deferred attachments read and encoded block by block, so memory
 * stays flat), then the signature fields are put in front.  The From
 * domain must be each key's d= (or a subdomain) unless allow_mismatch:
 * else ECONFIG, nothing sent. */
scalr_email_code se_dkim_sign_composed(se_dkim_key *const *keys, size_t n_keys, int allow_mismatch,
                                       se_composed *c, time_t t, scalr_email_error *err);

/* Signing settings for a client: SMTP_DKIM_DOMAIN, SMTP_DKIM_SELECTOR,
 * SMTP_DKIM_KEY_FILE, optional SMTP_DKIM_SELECTOR2 + SMTP_DKIM_KEY_FILE2 (a
 * second signature), SMTP_DKIM_ALLOW_DOMAIN_MISMATCH.  None set: *out NULL.
 * over: a profile's env file winning over the rest, or NULL. */
typedef struct se_dkim_signer {
    se_dkim_key *keys[SE_DKIM_MAX_SIGS];
    size_t n;
    int allow_mismatch;
    int weak; /* a key is RSA under 2048 bits */
} se_dkim_signer;

scalr_email_code se_dkim_signer_from_env(se_dkim_signer **out, const char *over,
                                         const char *env_file, scalr_email_error *err);
void se_dkim_signer_free(se_dkim_signer *s);

/* The fields of a header block: start and length of each (with its folds,
 * without the final CRLF), at most max; `used` is the caller's. */
typedef struct se_dkim_field {
    const char *p;
    size_t n;
    int used;
} se_dkim_field;
size_t se_dkim_split_fields(const char *h, size_t len, se_dkim_field *f, size_t max);
/* 1 when f is the field name (n bytes, any case), before its colon. */
int se_dkim_field_is(const se_dkim_field *f, const char *name, size_t n);

/* Verification of every DKIM-Signature in msg (CRLF or LF line endings).
 * lookup returns the TXT record for "selector._domainkey.domain" (malloc'd)
 * or NULL. */
typedef scalr_email_dkim_lookup_fn se_dkim_lookup_fn;
typedef scalr_email_dkim_result se_dkim_result;

/* Returns the number of signatures found (results filled up to max), or -1
 * out of memory. */
int se_dkim_verify(const char *msg, size_t len, se_dkim_lookup_fn lookup, void *arg,
                   se_dkim_result *res, size_t max);

#endif
