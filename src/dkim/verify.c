/* DKIM verification (RFC 6376 6): for `scalr-email dkim verify`, the dev
 * inbox and the tests.  Accepts c=relaxed and c=simple, rsa-sha256 and
 * ed25519-sha256; l= is refused (anyone may append to such a body). */
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dkim/dkim.h"

#define MAX_FIELDS 512
#define MAX_TAGS 32

typedef struct tag {
    char name[16];
    char *value; /* whitespace removed */
} tag;

static void free_tags(tag *t, int n);

/* tag-list (RFC 6376 3.2), whitespace squeezed out of every value.  -1:
 * malformed (nothing left allocated). */
static int parse_tags(const char *s, size_t n, tag *t, size_t max)
{
    size_t nt = 0, i = 0;
    while (i < n) {
        while (i < n &&
               (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == ';'))
            i++;
        if (i >= n)
            break;
        size_t ns = i;
        while (i < n && s[i] != '=' && s[i] != ';')
            i++;
        if (i >= n || s[i] != '=')
            goto bad;
        size_t ne = i++;
        while (ne > ns &&
               (s[ne - 1] == ' ' || s[ne - 1] == '\t' || s[ne - 1] == '\r' || s[ne - 1] == '\n'))
            ne--;
        size_t vs = i;
        while (i < n && s[i] != ';')
            i++;
        if (nt >= max || ne - ns >= sizeof t->name)
            goto bad;
        memcpy(t[nt].name, s + ns, ne - ns);
        t[nt].name[ne - ns] = 0;
        char *v = malloc(i - vs + 1);
        if (!v)
            goto bad;
        size_t m = 0;
        for (size_t k = vs; k < i; k++)
            if (s[k] != ' ' && s[k] != '\t' && s[k] != '\r' && s[k] != '\n')
                v[m++] = s[k];
        v[m] = 0;
        t[nt++].value = v;
    }
    return (int)nt;
bad:
    free_tags(t, (int)nt);
    return -1;
}

static void free_tags(tag *t, int n)
{
    for (int i = 0; i < n; i++)
        free(t[i].value);
}

static const char *get(const tag *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return t[i].value;
    return NULL;
}

static int unb64(const char *s, unsigned char **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4)
        return -1;
    *out = malloc(n / 4 * 3 + 1);
    if (!*out)
        return -1;
    int w = EVP_DecodeBlock(*out, (const unsigned char *)s, (int)n);
    if (w < 0) {
        free(*out);
        *out = NULL; /* the caller frees what it holds */
        return -1;
    }
    size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    *len = (size_t)w - pad;
    return 0;
}

/* The signature field with b='s value removed (3.5, 3.7). */
static void blank_b(se_buf *out, const char *p, size_t n)
{
    size_t i = 0, colon = 0;
    while (colon < n && p[colon] != ':')
        colon++;
    i = colon + 1;
    se_buf_append(out, p, i);
    while (i < n) {
        size_t seg = i; /* one tag: up to and with the ';' */
        while (i < n && p[i] != ';')
            i++;
        size_t k = seg;
        while (k < i && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n'))
            k++;
        size_t eq = k;
        while (eq < i && p[eq] != '=')
            eq++;
        size_t ne = eq;
        while (ne > k && (p[ne - 1] == ' ' || p[ne - 1] == '\t'))
            ne--;
        if (eq < i && ne - k == 1 && p[k] == 'b')
            se_buf_append(out, p + seg, eq + 1 - seg);
        else
            se_buf_append(out, p + seg, i - seg);
        if (i < n)
            se_buf_append(out, ";", 1), i++;
    }
}

static void why(se_dkim_result *r, const char *s)
{
    snprintf(r->why, sizeof r->why, "%s", s);
}

static void verify_one(const char *hdr, size_t hlen, const char *body, size_t blen,
                       const se_dkim_field *sigf, se_dkim_field *f, size_t nf,
                       se_dkim_lookup_fn lookup, void *arg, se_dkim_result *r)
{
    memset(r, 0, sizeof *r);
    tag t[MAX_TAGS];
    size_t colon = 0;
    while (colon < sigf->n && sigf->p[colon] != ':')
        colon++;
    int nt = parse_tags(sigf->p + colon + 1, sigf->n - colon - 1, t, MAX_TAGS);
    if (nt < 0)
        return why(r, "the DKIM-Signature field is malformed");
    (void)hdr;
    (void)hlen;
    const char *v = get(t, nt, "v"), *a = get(t, nt, "a"), *b = get(t, nt, "b"),
               *bh = get(t, nt, "bh"), *d = get(t, nt, "d"), *h = get(t, nt, "h"),
               *s = get(t, nt, "s"), *c = get(t, nt, "c");
    snprintf(r->domain, sizeof r->domain, "%s", d ? d : "");
    snprintf(r->selector, sizeof r->selector, "%s", s ? s : "");
    snprintf(r->alg, sizeof r->alg, "%s", a ? a : "");
    unsigned char *sig = NULL, *bhv = NULL, *pub = NULL;
    size_t siglen = 0, bhlen = 0, publen = 0;
    char *rec = NULL;
    se_buf canon = {0};
    tag kt[MAX_TAGS];
    int nk = 0;
    int ed = a && !strcmp(a, "ed25519-sha256");
    if (!v || strcmp(v, "1") || !a || !b || !bh || !d || !h || !s) {
        why(r, "a required tag (v=1, a, b, bh, d, h, s) is missing");
        goto done;
    }
    if (!ed && strcmp(a, "rsa-sha256")) {
        why(r, "unsupported algorithm (only rsa-sha256 and ed25519-sha256)");
        goto done;
    }
    if (get(t, nt, "l")) {
        why(r, "l= (a body length limit) is refused: content could be appended");
        goto done;
    }
    /* RFC 6376 3.5: past x= the signature may be treated as invalid; we do,
     * so a developer sees an expiry set too short before a receiver does. */
    const char *x = get(t, nt, "x");
    if (x) {
        char *end;
        unsigned long long xv = strtoull(x, &end, 10);
        const char *ts = get(t, nt, "t");
        if (!*x || *end || strlen(x) > 12 || (ts && strtoull(ts, NULL, 10) > xv)) {
            why(r, "bad x= (not a time after t=)");
            goto done;
        }
        if ((unsigned long long)time(NULL) > xv) {
            time_t xt = (time_t)xv;
            struct tm tm;
            char when[40];
            gmtime_r(&xt, &tm);
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
            snprintf(r->why, sizeof r->why, "the signature expired at %s (x=)", when);
            goto done;
        }
    }
    int hrelaxed = 0, brelaxed = 0;
    if (c) {
        char hc[16] = "", bc[16] = "simple";
        const char *slash = strchr(c, '/');
        size_t hn = slash ? (size_t)(slash - c) : strlen(c);
        if (hn >= sizeof hc || (slash && strlen(slash + 1) >= sizeof bc)) {
            why(r, "bad c=");
            goto done;
        }
        memcpy(hc, c, hn);
        hc[hn] = 0;
        if (slash)
            snprintf(bc, sizeof bc, "%s", slash + 1);
        hrelaxed = !strcmp(hc, "relaxed");
        brelaxed = !strcmp(bc, "relaxed");
        if ((!hrelaxed && strcmp(hc, "simple")) || (!brelaxed && strcmp(bc, "simple"))) {
            why(r, "bad c=");
            goto done;
        }
    }
    /* h= must name From (5.4). */
    {
        int has_from = 0;
        for (const char *p = h; *p;) {
            const char *e = strchr(p, ':');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            has_from |= n == 4 && !strncasecmp(p, "from", 4);
            p += n + (e ? 1 : 0);
        }
        if (!has_from) {
            why(r, "h= does not sign From");
            goto done;
        }
    }
    /* Body hash. */
    se_dkim_body bb;
    unsigned char got[32];
    if (se_dkim_body_init(&bb, brelaxed) < 0) {
        why(r, "out of memory");
        goto done;
    }
    se_dkim_body_update(&bb, body, blen);
    se_dkim_body_final(&bb, got);
    if (unb64(bh, &bhv, &bhlen) < 0 || bhlen != 32 || memcmp(bhv, got, 32)) {
        why(r, "body hash mismatch: the body changed after signing");
        goto done;
    }
    /* Header hash. */
    for (size_t i = 0; i < nf; i++)
        f[i].used = 0;
    for (const char *p = h; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        for (size_t i = nf; i-- > 0;)
            if (!f[i].used && &f[i] != sigf && se_dkim_field_is(&f[i], p, n)) {
                f[i].used = 1;
                if (hrelaxed)
                    se_dkim_canon_header(&canon, f[i].p, f[i].n, 1);
                else {
                    se_buf_append(&canon, f[i].p, f[i].n);
                    se_buf_append(&canon, "\r\n", 2);
                }
                break;
            }
        p += n + (e ? 1 : 0);
    }
    se_buf blanked = {0};
    blank_b(&blanked, sigf->p, sigf->n);
    if (hrelaxed)
        se_dkim_canon_header(&canon, blanked.data, blanked.len, 0);
    else
        se_buf_append(&canon, blanked.data, blanked.len);
    se_buf_free(&blanked);
    /* The key. */
    char name[400];
    snprintf(name, sizeof name, "%s._domainkey.%s", s, d);
    rec = lookup ? lookup(arg, name) : NULL;
    if (!rec) {
        snprintf(r->why, sizeof r->why, "no key record for %.120s", name);
        goto done;
    }
    nk = parse_tags(rec, strlen(rec), kt, MAX_TAGS);
    const char *p = nk > 0 ? get(kt, nk, "p") : NULL, *k = nk > 0 ? get(kt, nk, "k") : NULL;
    if (!p) {
        why(r, "the key record has no p=");
        goto done;
    }
    if (!*p) {
        why(r, "the key was revoked (empty p=)");
        goto done;
    }
    if ((k && strcmp(k, ed ? "ed25519" : "rsa")) || (!k && ed)) {
        why(r, "the key record's k= does not match a=");
        goto done;
    }
    if (unb64(p, &pub, &publen) < 0 || unb64(b, &sig, &siglen) < 0) {
        why(r, "bad base64 in p= or b=");
        goto done;
    }
    unsigned char digest[32];
    EVP_Digest(canon.data, canon.len, digest, NULL, EVP_sha256(), NULL);
    EVP_PKEY *pk = NULL;
    if (ed) {
        pk = publen == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32) : NULL;
    } else {
        const unsigned char *q = pub;
        pk = d2i_PUBKEY(NULL, &q, (long)publen);
        if (pk && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
    }
    if (!pk) {
        why(r, "the key record's p= is not a usable public key");
        goto done;
    }
    int ok = 0;
    if (ed) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestVerify(md, sig, siglen, digest, sizeof digest) == 1;
        EVP_MD_CTX_free(md);
    } else {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pk, NULL);
        ok = pc && EVP_PKEY_verify_init(pc) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_verify(pc, sig, siglen, digest, sizeof digest) == 1;
        EVP_PKEY_CTX_free(pc);
    }
    EVP_PKEY_free(pk);
    if (ok)
        r->ok = 1;
    else
        why(r, "signature mismatch: a signed header changed, or the wrong key");
done:
    if (nk > 0)
        free_tags(kt, nk);
    free_tags(t, nt);
    free(sig);
    free(bhv);
    free(pub);
    free(rec);
    se_buf_free(&canon);
}

int se_dkim_verify(const char *msg, size_t len, se_dkim_lookup_fn lookup, void *arg,
                   se_dkim_result *res, size_t max)
{
    /* Bare LF line ends (a file saved on disk) count as CRLF. */
    se_buf m = {0};
    se_buf_reserve(&m, len + len / 16 + 2);
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            se_buf_append(&m, "\r", 1);
        se_buf_append(&m, msg + i, 1);
    }
    if (m.oom) {
        se_buf_free(&m);
        return -1;
    }
    size_t hlen = m.len, bstart = m.len;
    if (m.len >= 2 && !memcmp(m.data, "\r\n", 2))
        hlen = 0, bstart = 2;
    for (size_t i = 0; i + 3 < m.len && hlen == m.len; i++)
        if (!memcmp(m.data + i, "\r\n\r\n", 4))
            hlen = i + 2, bstart = i + 4;
    se_dkim_field *f = calloc(MAX_FIELDS, sizeof *f);
    if (!f) {
        se_buf_free(&m);
        return -1;
    }
    size_t nf = se_dkim_split_fields(m.data, hlen, f, MAX_FIELDS);
    int found = 0;
    for (size_t i = 0; i < nf; i++) {
        if (!se_dkim_field_is(&f[i], "DKIM-Signature", 14))
            continue;
        if ((size_t)found < max)
            verify_one(m.data, hlen, m.data + bstart, m.len - bstart, &f[i], f, nf, lookup, arg,
                       &res[found]);
        found++;
    }
    free(f);
    se_buf_free(&m);
    return found;
}
