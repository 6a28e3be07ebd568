/* SMTP AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN, XOAUTH2 (Google's and
 * Microsoft's bearer-token mechanism) or OAUTHBEARER (RFC 7628).
 *
 * Credentials never reach the trace or an error message: the trace shows
 * "<redacted>" in their place, and every buffer that held them is wiped. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "smtp/engine_int.h"

enum { A_PLAIN = 1, A_LOGIN, A_USER, A_PASS, A_CANCEL, A_OAUTH, A_OAUTH_ERR };

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

/* XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A.
 * RFC 7628 3.1: OAUTHBEARER: gs2 header "n,a=" user "," then
 * ^A "auth=Bearer " token ^A ^A.  Both go as the initial response, so a
 * token costs the same one round trip as PLAIN. */
static void start_oauth(se_smtp *s, int bearer)
{
    size_t ul = strlen(s->user), tl = strlen(s->token);
    size_t cap = ul + tl + 32;
    unsigned char *raw = malloc(cap);
    if (!raw) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, "AUTH", "out of memory");
        return;
    }
    int n =
        bearer ? snprintf((char *)raw, cap, "n,a=%s,\001auth=Bearer %s\001\001", s->user, s->token)
               : snprintf((char *)raw, cap, "user=%s\001auth=Bearer %s\001\001", s->user, s->token);
    int rc = send_secret(s, bearer ? "AUTH OAUTHBEARER " : "AUTH XOAUTH2 ", raw, (size_t)n,
                         bearer ? "AUTH OAUTHBEARER <redacted>" : "AUTH XOAUTH2 <redacted>");
    se_smtp_wipe(raw, cap);
    free(raw);
    if (rc == 0)
        s->auth_step = A_OAUTH;
}

static void no_mech(se_smtp *s, const char *wanted)
{
    se_smtp_fail(s, 1, SCALR_EMAIL_EAUTH, "AUTH",
                 "server does not offer the AUTH mechanism needed (offered: %s; needed: %s)",
                 s->offered.len ? s->offered.data : "none", wanted);
}

void se_smtp_auth_start(se_smtp *s)
{
    s->state = ST_AUTH;
    /* RFC 4954 4 / RFC 8314: never hand a password or a bearer token to an
     * eavesdropper.  Checked before anything of AUTH is written. */
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
    se_smtp_mech m = s->mech;
    if (s->token) {
        if (m == SE_MECH_AUTO)
            m = (s->mechs & SE_AUTH_OAUTHBEARER) ? SE_MECH_OAUTHBEARER
                : (s->mechs & SE_AUTH_XOAUTH2)   ? SE_MECH_XOAUTH2
                                                 : SE_MECH_AUTO;
        if (m == SE_MECH_OAUTHBEARER && (s->mechs & SE_AUTH_OAUTHBEARER)) {
            s->auth_used = "OAUTHBEARER";
            start_oauth(s, 1);
        } else if (m == SE_MECH_XOAUTH2 && (s->mechs & SE_AUTH_XOAUTH2)) {
            s->auth_used = "XOAUTH2";
            start_oauth(s, 0);
        } else {
            no_mech(s, m == SE_MECH_XOAUTH2       ? "XOAUTH2"
                       : m == SE_MECH_OAUTHBEARER ? "OAUTHBEARER"
                                                  : "XOAUTH2 or OAUTHBEARER");
        }
        return;
    }
    if ((m == SE_MECH_AUTO || m == SE_MECH_PLAIN) && (s->mechs & SE_AUTH_PLAIN)) {
        s->auth_used = "PLAIN";
        start_plain(s);
    } else if ((m == SE_MECH_AUTO || m == SE_MECH_LOGIN) && (s->mechs & SE_AUTH_LOGIN)) {
        s->auth_used = "LOGIN";
        if (se_smtp_cmd(s, NULL, "AUTH LOGIN") == 0)
            s->auth_step = A_LOGIN;
    } else if (m == SE_MECH_AUTO) {
        se_smtp_fail(s, 1, SCALR_EMAIL_EAUTH, "AUTH",
                     "server offers no supported AUTH mechanism (offered: %s; supported: PLAIN "
                     "LOGIN)",
                     s->offered.len ? s->offered.data : "none");
    } else {
        no_mech(s, m == SE_MECH_PLAIN ? "PLAIN" : "LOGIN");
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
    case A_OAUTH:
        if (r->code == 235) {
            s->authenticated = 1;
            se_smtp_go_idle(s);
        } else if (r->code == 334) {
            /* RFC 7628 3.2.2: the error challenge (base64 JSON with the
             * status) is answered with a dummy ^A, and the server then says
             * 535.  XOAUTH2 expects an empty line instead. */
            int bearer = strcmp(s->auth_used, "OAUTHBEARER") == 0;
            if (se_smtp_cmd(s, NULL, "%s", bearer ? "AQ==" : "") == 0)
                s->auth_step = A_OAUTH_ERR;
        } else {
            auth_failed(s, r);
        }
        break;
    case A_OAUTH_ERR:
        /* The token was refused after the error challenge: expired or
         * revoked; the driver may fetch a new one and try once more. */
        if (r->code / 100 == 5)
            s->oauth_expired = 1;
        if (r->code == 235) { /* not per the RFCs, but harmless */
            s->authenticated = 1;
            se_smtp_go_idle(s);
        } else {
            se_smtp_fail_reply(s, r->code / 100 == 5,
                               r->code / 100 == 4 ? SCALR_EMAIL_ETRANSIENT : SCALR_EMAIL_EAUTH,
                               "AUTH", r,
                               "the server refused the OAuth2 access token (expired or revoked)");
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
