/* DKIM signing (RFC 6376 5, RFC 8463): keys, the signature field, and
 * signing a composed message before it is sent. */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim/dkim.h"
#include "error.h"

#define STAGE "CONFIG"
#define KEY_FILE_MAX (64 * 1024)

struct se_dkim_key {
    EVP_PKEY *pkey;
    int ed25519;
    char domain[254], selector[64];
};

/* RFC 6376 3.5: the headers signed.  Those in the first list are oversigned
 * (named once more than they occur) so nobody can add another. */
static const char *const OVERSIGN[] = {"From", "To",         "Cc",      "Subject",
                                       "Date", "Message-ID", "Reply-To"};
static const char *const SIGN_ONCE[] = {
    "MIME-Version", "Content-Type",     "Content-Transfer-Encoding", "In-Reply-To",
    "References",   "List-Unsubscribe", "List-Unsubscribe-Post"};

void se_dkim_key_free(se_dkim_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

const char *se_dkim_key_alg(const se_dkim_key *k)
{
    return k->ed25519 ? "ed25519-sha256" : "rsa-sha256";
}

static int valid_label_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return s[0] != '.' && s[n - 1] != '.';
}

/* dkimpy's dknewkey writes an Ed25519 key as the base64 of its 32-byte seed. */
static EVP_PKEY *raw_ed25519(const char *text, size_t n)
{
    unsigned char raw[64];
    char clean[128];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] != '\r' && text[i] != '\n' && text[i] != ' ') {
            if (m + 1 >= sizeof clean)
                return NULL;
            clean[m++] = text[i];
        }
    if (m != 44)
        return NULL;
    int got = EVP_DecodeBlock(raw, (const unsigned char *)clean, (int)m);
    if (got != 33) /* 32 octets and one padding */
        return NULL;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32);
    OPENSSL_cleanse(raw, sizeof raw);
    return k;
}

scalr_email_code se_dkim_key_load(se_dkim_key **out, const char *path, const char *domain,
                                  const char *selector, int *weak, scalr_email_error *err)
{
    *out = NULL;
    if (weak)
        *weak = 0;
    if (!domain || !valid_label_text(domain, 253))
        return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE, "DKIM domain '%.80s' is not a domain name",
                       domain ? domain : "");
    if (!selector || !valid_label_text(selector, 63))
        return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE,
                       "DKIM selector '%.63s' is not a valid selector", selector ? selector : "");
    FILE *f = fopen(path, "rb");
    if (!f)
        return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE, "DKIM key file '%s': %s", path,
                       strerror(errno));
    char *text = malloc(KEY_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, KEY_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!text)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    if (n > KEY_FILE_MAX) {
        free(text);
        return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE, "DKIM key file '%s' is too large", path);
    }
    text[n] = 0;
    EVP_PKEY *pk = NULL;
    if (strstr(text, "-----BEGIN")) {
        BIO *bio = BIO_new_mem_buf(text, (int)n);
        pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
        BIO_free(bio);
    } else {
        pk = raw_ed25519(text, n);
    }
    OPENSSL_cleanse(text, n);
    free(text);
    if (!pk)
        return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE,
                       "DKIM key file '%s' holds no readable private key (PEM PKCS#8 or "
                       "PKCS#1 without a passphrase, or an Ed25519 seed)",
                       path);
    int id = EVP_PKEY_get_base_id(pk);
    if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pk);
        return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE,
                       "DKIM key file '%s' is neither RSA nor Ed25519", path);
    }
    if (id == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < 1024) { /* RFC 8301 3.2 */
            EVP_PKEY_free(pk);
            return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE,
                           "DKIM key file '%s' is RSA of %d bits; at least 1024 (better 2048)",
                           path, bits);
        }
        if (bits < 2048 && weak)
            *weak = 1;
    }
    se_dkim_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pk);
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    }
    k->pkey = pk;
    k->ed25519 = id == EVP_PKEY_ED25519;
    snprintf(k->domain, sizeof k->domain, "%s", domain);
    snprintf(k->selector, sizeof k->selector, "%s", selector);
    for (char *p = k->domain; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    *out = k;
    return SCALR_EMAIL_OK;
}

static int b64(se_buf *out, const unsigned char *p, size_t n)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (se_buf_reserve(out, need) < 0)
        return -1;
    int w = EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
    out->len += (size_t)w;
    return 0;
}

int se_dkim_key_record(const se_dkim_key *k, se_buf *out)
{
    unsigned char *der = NULL;
    int rc = -1;
    if (k->ed25519) {
        unsigned char raw[32];
        size_t len = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &len) && len == 32) {
            se_buf_puts(out, "v=DKIM1; k=ed25519; p=");
            rc = b64(out, raw, len);
        }
    } else {
        int len = i2d_PUBKEY(k->pkey, &der); /* RFC 6376 3.6.1: SubjectPublicKeyInfo */
        if (len > 0) {
            se_buf_puts(out, "v=DKIM1; k=rsa; p=");
            rc = b64(out, der, (size_t)len);
        }
        OPENSSL_free(der);
    }
    return rc < 0 || out->oom ? -1 : 0;
}

#define MAX_FIELDS 512

/* Appends the folded field value text: "tag=value;" pieces, a new line when
 * one would pass 76 columns. */
typedef struct folder {
    se_buf *b;
    size_t col;
} folder;

static void fold_put(folder *fo, const char *s, size_t n, int space)
{
    if (fo->col + n + (space ? 1 : 0) > 76) {
        se_buf_append(fo->b, "\r\n\t", 3);
        fo->col = 1;
    } else if (space) {
        se_buf_append(fo->b, " ", 1);
        fo->col++;
    }
    se_buf_append(fo->b, s, n);
    fo->col += n;
}

static scalr_email_code sign_one(se_dkim_key *k, se_dkim_field *f, size_t nf,
                                 const unsigned char bh[32], time_t t, se_buf *out,
                                 scalr_email_error *err)
{
    se_buf sig = {0}, canon = {0}, tmp = {0};
    scalr_email_code rc = SCALR_EMAIL_ENOMEM;
    folder fo = {&sig, 15};
    se_buf_puts(&sig, "DKIM-Signature:");
    se_buf_printf(&tmp, "v=1; a=%s; c=relaxed/relaxed;", se_dkim_key_alg(k));
    fold_put(&fo, tmp.data, tmp.len, 1);
    se_buf_reset(&tmp);
    se_buf_printf(&tmp, "d=%s;", k->domain);
    fold_put(&fo, tmp.data, tmp.len, 1);
    se_buf_reset(&tmp);
    se_buf_printf(&tmp, "s=%s;", k->selector);
    fold_put(&fo, tmp.data, tmp.len, 1);
    se_buf_reset(&tmp);
    se_buf_printf(&tmp, "t=%lld;", (long long)t);
    fold_put(&fo, tmp.data, tmp.len, 1);

    /* h=: each signed name as often as it occurs (+1 when oversigned); the
     * fields go into the hash from the bottom up (RFC 6376 5.4.2). */
    for (size_t i = 0; i < nf; i++)
        f[i].used = 0;
    int first = 1;
    for (int list = 0; list < 2; list++) {
        size_t cnt =
            list ? sizeof SIGN_ONCE / sizeof *SIGN_ONCE : sizeof OVERSIGN / sizeof *OVERSIGN;
        for (size_t j = 0; j < cnt; j++) {
            const char *name = list ? SIGN_ONCE[j] : OVERSIGN[j];
            size_t occurs = 0;
            for (size_t i = 0; i < nf; i++)
                occurs += se_dkim_field_is(&f[i], name, strlen(name));
            size_t times = occurs + (list == 0 ? 1 : 0);
            if (!occurs)
                continue; /* only headers present are listed */
            for (size_t m = 0; m < times; m++) {
                se_buf_reset(&tmp);
                se_buf_printf(&tmp, "%s%s", first ? "h=" : ":", name);
                /* the first name sticks to "h=" */
                fold_put(&fo, tmp.data, tmp.len, first);
                first = 0;
                for (size_t i = nf; i-- > 0;)
                    if (!f[i].used && se_dkim_field_is(&f[i], name, strlen(name))) {
                        f[i].used = 1;
                        se_dkim_canon_header(&canon, f[i].p, f[i].n, 1);
                        break;
                    }
            }
        }
    }
    fold_put(&fo, ";", 1, 0);
    se_buf_reset(&tmp);
    se_buf_puts(&tmp, "bh=");
    b64(&tmp, bh, 32);
    se_buf_puts(&tmp, ";");
    fold_put(&fo, tmp.data, tmp.len, 1);
    fold_put(&fo, "b=", 2, 1);
    size_t b_at = sig.len;
    /* RFC 6376 3.7: the signature field itself, b= empty, no final CRLF. */
    se_dkim_canon_header(&canon, sig.data, sig.len, 0);
    if (sig.oom || canon.oom || tmp.oom)
        goto done;

    unsigned char digest[32], s[1024];
    size_t slen = sizeof s;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int ok = md && EVP_Digest(canon.data, canon.len, digest, NULL, EVP_sha256(), NULL);
    if (ok && k->ed25519) {
        /* RFC 8463 3: Ed25519 over the SHA-256 of the canonical data. */
        ok = EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(md, s, &slen, digest, sizeof digest) == 1;
    } else if (ok) {
        pc = EVP_PKEY_CTX_new(k->pkey, NULL);
        ok = pc && EVP_PKEY_sign_init(pc) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_sign(pc, s, &slen, digest, sizeof digest) == 1;
    }
    EVP_PKEY_CTX_free(pc);
    EVP_MD_CTX_free(md);
    if (!ok) {
        rc = se_fail(err, SCALR_EMAIL_ECONFIG, STAGE, "DKIM signing with %s failed",
                     se_dkim_key_alg(k));
        goto done;
    }
    (void)b_at;
    se_buf_reset(&tmp);
    b64(&tmp, s, slen);
    /* b= may be folded anywhere (FWS is allowed in base64, 3.5). */
    for (size_t i = 0; i < tmp.len;) {
        size_t room = fo.col < 76 ? 76 - fo.col : 0;
        if (!room) {
            se_buf_append(&sig, "\r\n\t", 3);
            fo.col = 1;
            continue;
        }
        size_t take = tmp.len - i < room ? tmp.len - i : room;
        se_buf_append(&sig, tmp.data + i, take);
        fo.col += take;
        i += take;
    }
    se_buf_append(&sig, "\r\n", 2);
    if (sig.oom)
        goto done;
    se_buf_append(out, sig.data, sig.len);
    rc = out->oom ? SCALR_EMAIL_ENOMEM : SCALR_EMAIL_OK;
done:
    if (rc == SCALR_EMAIL_ENOMEM)
        se_fail(err, rc, STAGE, "out of memory");
    se_buf_free(&sig);
    se_buf_free(&canon);
    se_buf_free(&tmp);
    return rc;
}

scalr_email_code se_dkim_sign(se_dkim_key *const *keys, size_t n_keys, const char *headers,
                              size_t hlen, const unsigned char bh[32], time_t t, se_buf *out,
                              scalr_email_error *err)
{
    se_dkim_field *f = calloc(MAX_FIELDS, sizeof *f);
    if (!f)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    size_t nf = se_dkim_split_fields(headers, hlen, f, MAX_FIELDS);
    scalr_email_code rc = SCALR_EMAIL_OK;
    for (size_t i = 0; i < n_keys && rc == SCALR_EMAIL_OK; i++)
        rc = sign_one(keys[i], f, nf, bh, t, out, err);
    free(f);
    return rc;
}

/* The domain of the From field's address (the last '@' up to '>'). */
static int from_domain(const char *h, size_t hlen, char *out, size_t outlen)
{
    se_dkim_field f[MAX_FIELDS / 4];
    size_t nf = se_dkim_split_fields(h, hlen, f, sizeof f / sizeof *f);
    for (size_t i = 0; i < nf; i++) {
        if (!se_dkim_field_is(&f[i], "From", sizeof "From" - 1))
            continue;
        const char *at = NULL, *end = f[i].p + f[i].n;
        for (const char *p = f[i].p; p < end; p++)
            if (*p == '@')
                at = p;
        if (!at)
            return -1;
        size_t n = 0;
        for (const char *p = at + 1; p < end && *p != '>' && *p != ' ' && *p != '\r'; p++)
            if (n + 1 < outlen)
                out[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        out[n] = 0;
        return 0;
    }
    return -1;
}

/* DMARC relaxed alignment: the same domain or a subdomain of d=. */
static int aligned(const char *from, const char *d)
{
    size_t a = strlen(from), b = strlen(d);
    if (a == b)
        return !strcmp(from, d);
    return a > b && from[a - b - 1] == '.' && !strcmp(from + a - b, d);
}

scalr_email_code se_dkim_check_aligned(se_dkim_key *const *keys, size_t n_keys, int allow_mismatch,
                                       const char *headers, size_t hlen, scalr_email_error *err)
{
    char dom[256];
    if (from_domain(headers, hlen, dom, sizeof dom) < 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "DKIM: the message has no From address");
    for (size_t i = 0; i < n_keys && !allow_mismatch; i++)
        if (!aligned(dom, keys[i]->domain))
            return se_fail(err, SCALR_EMAIL_ECONFIG, STAGE,
                           "DKIM domain %s does not match the From domain %s (set "
                           "SMTP_DKIM_ALLOW_DOMAIN_MISMATCH=true to sign anyway); nothing was sent",
                           keys[i]->domain, dom);
    return SCALR_EMAIL_OK;
}

scalr_email_code se_dkim_sign_composed(se_dkim_key *const *keys, size_t n_keys, int allow_mismatch,
                                       se_composed *c, time_t t, scalr_email_error *err)
{
    if (!n_keys)
        return SCALR_EMAIL_OK;
    /* The header block always sits in memory: deferred parts come later. */
    const char *d = c->data.data;
    size_t hlen = 0, lim = c->n_parts ? c->parts[0].at : c->data.len;
    for (size_t i = 0; i + 3 < lim; i++)
        if (!memcmp(d + i, "\r\n\r\n", 4)) {
            hlen = i + 2;
            break;
        }
    if (!hlen)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "DKIM: the message has no header end");
    scalr_email_code rc = se_dkim_check_aligned(keys, n_keys, allow_mismatch, d, hlen, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;

    /* First pass: the body as it will go on the wire, hashed. */
    se_dkim_body body;
    if (se_dkim_body_init(&body, 1) < 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
    se_reader r = {0};
    se_reader_init(&r, c);
    size_t pos = 0, skip = hlen + 2;
    for (;;) {
        const char *p;
        size_t n;
        if (se_reader_next(&r, &p, &n, err) < 0) {
            se_reader_free(&r);
            unsigned char dummy[32];
            se_dkim_body_final(&body, dummy);
            return err ? err->code : SCALR_EMAIL_EFILE;
        }
        if (!n)
            break;
        size_t off = pos < skip ? (skip - pos < n ? skip - pos : n) : 0;
        se_dkim_body_update(&body, p + off, n - off);
        pos += n;
    }
    se_reader_free(&r);
    unsigned char bh[32];
    if (se_dkim_body_final(&body, bh) < 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");

    se_buf sig = {0};
    rc = se_dkim_sign(keys, n_keys, d, hlen, bh, t, &sig, err);
    if (rc == SCALR_EMAIL_OK) {
        /* Put the signatures first; deferred parts move along. */
        se_buf all = {0};
        se_buf_reserve(&all, sig.len + c->data.len);
        se_buf_append(&all, sig.data, sig.len);
        se_buf_append(&all, c->data.data, c->data.len);
        if (all.oom) {
            se_buf_free(&all);
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, STAGE, "out of memory");
        } else {
            se_buf_free(&c->data);
            c->data = all;
            for (size_t i = 0; i < c->n_parts; i++)
                c->parts[i].at += sig.len;
            c->size += sig.len;
        }
    }
    se_buf_free(&sig);
    return rc;
}
