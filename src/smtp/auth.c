/* SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) or LOGIN.
 *
 * Credentials never reach the trace or an error message: the trace shows
 * "<redacted>" in their place, and every buffer that held them is wiped. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "smtp/engine_int.h"

enum { A_PLAIN = 1, A_LOGIN, A_USER, A_PASS, A_CANCEL };

/* base64 of raw/n, as a NUL-terminated malloc'd string. */
static char *b64(const unsigned char *raw, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
    return out;
}

void se_smtp_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

/* Send a line made of base64(raw), shown as `shown` in the trace. */
static int send_secret(se_smtp *s, const char *prefix, const unsigned char *raw, size_t n,
                       const char *shown)
{
    /* RFC 4954 4: an AUTH line is at most 12288 octets. */
    if (n > SE_AUTH_LINE_MAX || strlen(prefix) + 4 * ((n + 2) / 3) > SE_AUTH_LINE_MAX) {
        se_smtp_fail(s, 1, SCALR_EMAIL_EAUTH, "AUTH", "credentials too long for SMTP AUTH");
        return -1;
    }
    char *enc = b64(raw, n);
    if (!enc) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, "AUTH", "out of memory");
        return -1;
    }
    int rc = se_smtp_cmd(s, shown, "%s%s", prefix, enc);
    se_smtp_wipe(enc, strlen(enc));
    free(enc);
    return rc;
}

static void start_plain(se_smtp *s)
{
    /* RFC 4616 2: message = [authzid] NUL authcid NUL passwd */
    size_t ul = strlen(s->user), pl = strlen(s->pass);
    size_t n = ul + pl + 2;
    unsigned char *raw = malloc(n);
    if (!raw) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, "AUTH", "out of memory");
        return;
    }
    raw[0] = '\0';
    memcpy(raw + 1, s->user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, s->pass, pl);
    /* RFC 4954 4: the initial response saves a round trip. */
    int rc = send_secret(s, "AUTH PLAIN ", raw, n, "AUTH PLAIN <redacted>");
    se_smtp_wipe(raw, n);
    free(raw);
    if (rc == 0)
        s->auth_step = A_PLAIN;
}

void se_smtp_auth_start(se_smtp *s)
{
    s->state = ST_AUTH;
    /* RFC 4954 4 / RFC 8314: never hand a password to an eavesdropper.
     * Checked before anything of AUTH is written. */
    if (!s->tls_active && !s->peer_is_loopback) {
        se_smtp_fail(s, 1, SCALR_EMAIL_EINSECURE, "AUTH",
                     "refusing to send credentials over an unencrypted connection to a "
                     "non-loopback host");
        return;
    }
    if (!(s->caps & SE_CAP_AUTH)) {
        se_smtp_fail(s, 1, SCALR_EMAIL_EAUTH, "AUTH", "server does not offer AUTH");
        return;
    }
    if (s->mechs & SE_AUTH_PLAIN) {
        s->auth_used = "PLAIN";
        start_plain(s);
    } else if (s->mechs & SE_AUTH_LOGIN) {
        s->auth_used = "LOGIN";
        if (se_smtp_cmd(s, NULL, "AUTH LOGIN") == 0)
            s->auth_step = A_LOGIN;
    } else {
        se_smtp_fail(s, 1, SCALR_EMAIL_EAUTH, "AUTH",
                     "server offers no supported AUTH mechanism (offered: %s; supported: PLAIN "
                     "LOGIN)",
                     s->offered.len ? s->offered.data : "none");
    }
}

static void auth_failed(se_smtp *s, const se_reply *r)
{
    int cls = r->code / 100;
    if (cls == 5)
        se_smtp_fail_reply(s, 1, SCALR_EMAIL_EAUTH, "AUTH", r, "authentication failed");
    else if (cls == 4)
        se_smtp_fail_reply(s, 1, SCALR_EMAIL_ETRANSIENT, "AUTH", r,
                           "authentication temporarily failed");
    else
        se_smtp_fail_reply(s, 0, SCALR_EMAIL_EPROTOCOL, "AUTH", r, "unexpected reply to AUTH");
}

void se_smtp_auth_reply(se_smtp *s, const se_reply *r)
{
    switch (s->auth_step) {
    case A_PLAIN:
    case A_PASS:
        if (r->code == 235) {
            s->authenticated = 1;
            se_smtp_go_idle(s);
        } else if (r->code == 334 && s->auth_step == A_PLAIN) {
            /* The initial response was complete; a challenge now is bogus.
             * RFC 4954 4: "*" cancels the exchange. */
            if (se_smtp_cmd(s, NULL, "*") == 0)
                s->auth_step = A_CANCEL;
        } else {
            auth_failed(s, r);
        }
        break;
    case A_LOGIN:
        if (r->code == 334) {
            if (send_secret(s, "", (const unsigned char *)s->user, strlen(s->user), "<redacted>") ==
                0)
                s->auth_step = A_USER;
        } else {
            auth_failed(s, r);
        }
        break;
    case A_USER:
        if (r->code == 334) {
            if (send_secret(s, "", (const unsigned char *)s->pass, strlen(s->pass), "<redacted>") ==
                0)
                s->auth_step = A_PASS;
        } else {
            auth_failed(s, r);
        }
        break;
    case A_CANCEL:
        se_smtp_fail_reply(s, r->code / 100 == 5, SCALR_EMAIL_EAUTH, "AUTH", r,
                           "server asked for more than AUTH PLAIN's initial response "
                           "(exchange cancelled)");
        break;
    default:
        se_smtp_fail(s, 0, SCALR_EMAIL_EPROTOCOL, "AUTH", "reply without an AUTH command");
        break;
    }
}
