/* DKIM (src/dkim): canonicalization, signing and verification with byte
 * strings.  Interoperability with dkimpy and OpenDKIM is tests/dkim/. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim/dkim.h"
#include "harness.h"
#include "raw_int.h"

static void body_hash(const char *body, size_t chunk, int relaxed, char out[64])
{
    se_dkim_body b;
    unsigned char d[32];
    CHECK(se_dkim_body_init(&b, relaxed) == 0);
    size_t n = strlen(body);
    for (size_t i = 0; i < n; i += chunk)
        se_dkim_body_update(&b, body + i, n - i < chunk ? n - i : chunk);
    CHECK(se_dkim_body_final(&b, d) == 0);
    EVP_EncodeBlock((unsigned char *)out, d, 32);
}

static void sha_b64(const char *s, char out[64])
{
    unsigned char d[32];
    EVP_Digest(s, strlen(s), d, NULL, EVP_sha256(), NULL);
    EVP_EncodeBlock((unsigned char *)out, d, 32);
}

TEST(dkim_body_empty)
{
    char got[64], want[64];
    body_hash("", 1, 1, got);
    sha_b64("", want); /* RFC 6376 3.4.4: relaxed empty body is empty */
    CHECK_STR(got, want);
    body_hash("\r\n\r\n", 1, 1, got);
    CHECK_STR(got, want);
    body_hash("", 1, 0, got);
    sha_b64("\r\n", want); /* 3.4.3: simple empty body is one CRLF */
    CHECK_STR(got, want);
}

TEST(dkim_body_relaxed_rules)
{
    char got[64], want[64];
    /* WSP runs to one SP, none at line ends, trailing empty lines gone,
     * a last line without CRLF gets one. */
    sha_b64(" C\r\nD E\r\n", want);
    body_hash(" C \r\nD \t E\r\n\r\n\r\n", 1000, 1, got);
    CHECK_STR(got, want);
    body_hash(" C \r\nD \t E", 1000, 1, got);
    CHECK_STR(got, want);
    for (size_t chunk = 1; chunk < 6; chunk++) { /* any split gives the same */
        body_hash(" C \r\nD \t E\r\n\r\n\r\n", chunk, 1, got);
        CHECK_STR(got, want);
    }
    /* RFC 6376 3.4.6's example body. */
    sha_b64(" C\r\nD E\r\n", want);
    body_hash(" C \r\nD \t E \r\n\r\n\r\n", 3, 1, got);
    CHECK_STR(got, want);
    /* simple keeps whitespace, drops only trailing empty lines */
    sha_b64(" C \r\nD \t E\r\n", want);
    body_hash(" C \r\nD \t E\r\n\r\n", 2, 0, got);
    CHECK_STR(got, want);
    /* a dot line is hashed as is: signing comes before dot-stuffing */
    sha_b64(".dot\r\n", want);
    body_hash(".dot\r\n", 1, 1, got);
    CHECK_STR(got, want);
}

TEST(dkim_header_relaxed)
{
    se_buf b = {0};
    const char *f = "SUBJect \t:  A \r\n\t b  c ";
    se_dkim_canon_header(&b, f, strlen(f), 1);
    CHECK_MEM(b.data, b.len, "subject:A b c\r\n");
    se_buf_free(&b);
}

static char keydir[64];

static char *write_key(const char *name, EVP_PKEY *pk)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", keydir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return path;
}

typedef struct one_record {
    char *rec;
} one_record;

static char *lookup(void *arg, const char *name)
{
    one_record *r = arg;
    (void)name;
    return strdup(r[!strncmp(name, "ed.", 3)].rec);
}

static const char MSG_HEAD[] = "From: A <a@example.com>\r\n"
                               "To: b@example.net\r\n"
                               "Subject: hello  there\r\n"
                               "Date: Fri, 04 Dec 2026 05:00:00 +0000\r\n"
                               "Message-ID: <1@example.com>\r\n"
                               "MIME-Version: 1.0\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n";
static const char MSG_BODY[] = "Hi  \r\n.dot\r\n\r\n";

static void sign_msg(se_dkim_key *const *keys, size_t n, se_buf *out)
{
    se_dkim_body b;
    unsigned char bh[32];
    se_dkim_body_init(&b, 1);
    se_dkim_body_update(&b, MSG_BODY, strlen(MSG_BODY));
    se_dkim_body_final(&b, bh);
    scalr_email_error err;
    CHECK_INT(se_dkim_sign(keys, n, MSG_HEAD, strlen(MSG_HEAD), bh, 1796360000, out, &err),
              SCALR_EMAIL_OK);
    se_buf_puts(out, MSG_HEAD);
    se_buf_puts(out, "\r\n");
    se_buf_puts(out, MSG_BODY);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

TEST(dkim_sign_verify_rsa_ed25519_dual)
{
    snprintf(keydir, sizeof keydir, "/tmp/se-dkim-unit-XXXXXX");
    CHECK(mkdtemp(keydir) != NULL);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    se_dkim_key *k[2] = {NULL, NULL};
    scalr_email_error err;
    int weak = -1;
    CHECK_INT(se_dkim_key_load(&k[0], write_key("rsa.pem", rsa), "Example.com", "rs", &weak, &err),
              SCALR_EMAIL_OK);
    CHECK_INT(weak, 0);
    CHECK_INT(se_dkim_key_load(&k[1], write_key("ed.pem", ed), "example.com", "ed", NULL, &err),
              SCALR_EMAIL_OK);
    CHECK_STR(se_dkim_key_alg(k[0]), "rsa-sha256");
    CHECK_STR(se_dkim_key_alg(k[1]), "ed25519-sha256");
    se_buf r0 = {0}, r1 = {0};
    CHECK(se_dkim_key_record(k[0], &r0) == 0 && se_buf_append(&r0, "", 1) == 0);
    CHECK(se_dkim_key_record(k[1], &r1) == 0 && se_buf_append(&r1, "", 1) == 0);
    one_record recs[2] = {{r0.data}, {r1.data}};

    se_buf m = {0};
    sign_msg(k, 2, &m);
    CHECK(se_buf_append(&m, "", 1) == 0);
    m.len--;
    /* every line of the signature fields within 78 columns, folded */
    for (const char *p = m.data, *e; (e = strstr(p, "\r\n")); p = e + 2)
        CHECK(e - p <= 78);
    CHECK(strstr(m.data, "c=relaxed/relaxed;") != NULL);
    CHECK(strstr(m.data, " l=") == NULL);
    CHECK(strstr(m.data, "t=1796360000;") != NULL);
    /* oversigned: From once more than it occurs; Reply-To absent: unlisted */
    CHECK_INT(count(m.data, "From:From:"), 2);
    CHECK(strstr(m.data, "Reply-To") == NULL);
    se_dkim_result res[2];
    CHECK_INT(se_dkim_verify(m.data, m.len, lookup, recs, res, 2), 2);
    CHECK(res[0].ok);
    CHECK(res[1].ok);
    CHECK_STR(res[0].alg, "rsa-sha256");
    CHECK_STR(res[1].alg, "ed25519-sha256");

    /* One body byte, one header, a second From: each breaks both. */
    const char *from_to[][2] = {{".dot", ".dou"},
                                {"hello  there", "hello  thera"},
                                {"From: A", "From: evil@example.org\r\nFrom: A"}};
    for (size_t t = 0; t < 3; t++) {
        char *at = strstr(m.data, from_to[t][0]);
        CHECK(at != NULL);
        if (!at)
            continue;
        se_buf x = {0};
        se_buf_append(&x, m.data, (size_t)(at - m.data));
        se_buf_puts(&x, from_to[t][1]);
        se_buf_puts(&x, at + strlen(from_to[t][0]));
        CHECK_INT(se_dkim_verify(x.data, x.len, lookup, recs, res, 2), 2);
        CHECK(!res[0].ok);
        CHECK(!res[1].ok);
        CHECK(strstr(res[0].why, t == 0 ? "body hash" : "signature mismatch") != NULL);
        se_buf_free(&x);
    }
    /* LF line ends (a saved file) verify too: whitespace folds stay. */
    se_buf lf = {0};
    for (size_t i = 0; i < m.len; i++)
        if (m.data[i] != '\r')
            se_buf_append(&lf, m.data + i, 1);
    CHECK_INT(se_dkim_verify(lf.data, lf.len, lookup, recs, res, 2), 2);
    CHECK(res[0].ok && res[1].ok);
    se_buf_free(&lf);
    /* a revoked key */
    one_record revoked[2] = {{"v=DKIM1; p="}, {"v=DKIM1; k=ed25519; p="}};
    CHECK_INT(se_dkim_verify(m.data, m.len, lookup, revoked, res, 2), 2);
    CHECK(!res[0].ok && strstr(res[0].why, "revoked"));

    se_buf_free(&m);
    se_buf_free(&r0);
    se_buf_free(&r1);
    se_dkim_key_free(k[0]);
    se_dkim_key_free(k[1]);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    char path[160];
    snprintf(path, sizeof path, "%s/rsa.pem", keydir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ed.pem", keydir);
    unlink(path);
    rmdir(keydir);
}

TEST(dkim_key_load_refuses)
{
    char dir[] = "/tmp/se-dkim-bad-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/junk.pem", dir);
    FILE *f = fopen(path, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    se_dkim_key *k = NULL;
    scalr_email_error err;
    CHECK_INT(se_dkim_key_load(&k, path, "example.com", "s", NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK(strstr(err.message, "no readable private key") != NULL);
    CHECK_INT(se_dkim_key_load(&k, "/nonexistent/key", "example.com", "s", NULL, &err),
              SCALR_EMAIL_ECONFIG);
    CHECK_INT(se_dkim_key_load(&k, path, "bad domain", "s", NULL, &err), SCALR_EMAIL_ECONFIG);
    /* RSA-512 is refused, RSA-1024 accepted as weak */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
    EVP_PKEY *k1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    snprintf(path, sizeof path, "%s/small.pem", dir);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, small, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    CHECK_INT(se_dkim_key_load(&k, path, "example.com", "s", NULL, &err), SCALR_EMAIL_ECONFIG);
    CHECK(strstr(err.message, "512 bits") != NULL);
    unlink(path);
    snprintf(path, sizeof path, "%s/k1024.pem", dir);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, k1024, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    int weak = 0;
    CHECK_INT(se_dkim_key_load(&k, path, "example.com", "s", &weak, &err), SCALR_EMAIL_OK);
    CHECK_INT(weak, 1);
    se_dkim_key_free(k);
    unlink(path);
    snprintf(path, sizeof path, "%s/junk.pem", dir);
    unlink(path);
    rmdir(dir);
    EVP_PKEY_free(small);
    EVP_PKEY_free(k1024);
}

static char *ed_record(void *arg, const char *name)
{
    (void)arg;
    (void)name;
    return strdup("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
}

/* Found by fuzz_dkim: a b= that is not base64 was freed twice. */
TEST(dkim_verify_bad_base64_signature)
{
    const char msg[] = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=x.test;\r\n"
                       " s=e; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=!!!!\r\n"
                       "From: a@x.test\r\n\r\n";
    se_dkim_result res[1];
    CHECK_INT(se_dkim_verify(msg, strlen(msg), ed_record, NULL, res, 1), 1);
    CHECK(!res[0].ok);
    CHECK(strstr(res[0].why, "base64") != NULL);
    const char bad_tag[] = "DKIM-Signature: v=1; a=ed25519-sha256; junk\r\nFrom: a@x.test\r\n\r\n";
    CHECK_INT(se_dkim_verify(bad_tag, strlen(bad_tag), ed_record, NULL, res, 1), 1);
    CHECK(strstr(res[0].why, "malformed") != NULL);
}

/* The sendmail mode's signing: a caller's message, its body spooled to a
 * file (hashed in a first pass read back from it), the header signed as
 * se_ingest_header makes it; the whole verifies, a changed body does not,
 * and a foreign From domain is ECONFIG. */
TEST(dkim_raw_spooled_message)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/se-dkim-raw-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    snprintf(keydir, sizeof keydir, "%s", dir);
    char *path = write_key("ed.pem", ed);
    se_dkim_signer s = {.n = 1};
    scalr_email_error err;
    CHECK_INT(se_dkim_key_load(&s.keys[0], path, "example.com", "ed", NULL, &err), SCALR_EMAIL_OK);
    se_buf rec = {0};
    CHECK(se_dkim_key_record(s.keys[0], &rec) == 0 && se_buf_append(&rec, "", 1) == 0);
    one_record recs[2] = {{rec.data}, {rec.data}};

    static const char *const froms[] = {"From: A <a@example.com>\n", "From: x@other.test\n"};
    for (int f = 0; f < 2; f++) {
        struct scalr_email_raw raw = {0};
        const se_ingest_opts io = {.mem_body = 64, .spool_dir = dir};
        se_ingest_init(&raw.in, &io);
        se_ingest_feed(&raw.in, froms[f], strlen(froms[f]));
        const char rest[] = "To: b@example.net\nBcc: hidden@example.net\nSubject: big\n\n";
        CHECK_INT(se_ingest_feed(&raw.in, rest, strlen(rest)), 0);
        for (int i = 0; i < 2000; i++) {
            char line[64];
            int n = snprintf(line, sizeof line, "line %d  \t of the report\n%s", i,
                             i % 100 ? "" : ".\n");
            CHECK_INT(se_ingest_feed(&raw.in, line, (size_t)n), 0);
        }
        CHECK_INT(se_ingest_finish(&raw.in), 0);
        CHECK(raw.in.fd >= 0); /* spooled */
        unsigned char bh[32];
        CHECK_INT(se_raw_body_hash(&raw, bh, &err), SCALR_EMAIL_OK);
        se_buf msg = {0};
        CHECK_INT(
            se_ingest_header(&raw.in, 0, "Date: Fri, 04 Dec 2026 05:00:00 +0000\r\n", &msg, &err),
            0);
        scalr_email_code rc = se_raw_dkim_sign(&s, bh, &msg, &err);
        if (f == 1) {
            CHECK_INT(rc, SCALR_EMAIL_ECONFIG);
            CHECK(strstr(err.message, "does not match the From domain") != NULL);
        } else {
            CHECK_INT(rc, SCALR_EMAIL_OK);
            CHECK(!strncmp(msg.data, "DKIM-Signature:", 15));
            se_ibody b = {0};
            CHECK_INT(se_ingest_rewind(&b, &raw.in), 0);
            const char *p;
            size_t n;
            while (se_ingest_body_next(&b, &p, &n, &err) == 0 && n)
                se_buf_append(&msg, p, n);
            se_ibody_free(&b);
            CHECK(strstr(msg.data, "hidden@") == NULL);
            se_dkim_result res[1];
            CHECK_INT(se_dkim_verify(msg.data, msg.len, lookup, recs, res, 1), 1);
            CHECK(res[0].ok);
            msg.data[msg.len - 5] ^= 1; /* one body byte */
            CHECK_INT(se_dkim_verify(msg.data, msg.len, lookup, recs, res, 1), 1);
            CHECK(!res[0].ok);
        }
        se_buf_free(&msg);
        se_ingest_free(&raw.in);
    }
    se_buf_free(&rec);
    se_dkim_key_free(s.keys[0]);
    EVP_PKEY_free(ed);
    unlink(path);
    rmdir(dir);
}
