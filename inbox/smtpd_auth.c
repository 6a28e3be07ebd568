/* AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN, XOAUTH2 and OAUTHBEARER
 * (RFC 7628), on the server side: strict base64, and credentials compared
 * without an early exit.  With --auth token:T the OAuth mechanisms accept
 * access token T; --auth-expired T2 answers T2 as an expired token (error
 * challenge, then 535), so apps can test their refresh locally. */
#include "smtpd_int.h"

#include <stdlib.h>
#include <string.h>

/* RFC 4648 base64, strict: padding only at the end, no other bytes.
 * Returns the decoded length, or -1.  out holds at least n*3/4 bytes. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (size_t j = 0; j < 4; j++) {
            char c = in[i + j];
            unsigned d;
            if (c >= 'A' && c <= 'Z')
                d = (unsigned)(c - 'A');
            else if (c >= 'a' && c <= 'z')
                d = (unsigned)(c - 'a' + 26);
            else if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0' + 52);
            else if (c == '+')
                d = 62;
            else if (c == '/')
                d = 63;
            else if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || in[i + 3] == '='))
                d = 0, pad++;
            else
                return -1;
            if (pad && c != '=')
                return -1;
            v = v << 6 | d;
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)v;
    }
    return (long)o;
}

static int same(const unsigned char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    unsigned diff = an != bn;
    for (size_t i = 0; i < an; i++) /* no early exit on the password */
        diff |= a[i] ^ (unsigned char)(i < bn ? b[i] : 0);
    return diff == 0;
}

static int credentials_ok(const ib_smtpd *s, const unsigned char *user, size_t ul,
                          const unsigned char *pass, size_t pl)
{
    if (!strcmp(s->conf->auth, "any"))
        return ul > 0;
    if (!strncmp(s->conf->auth, "token:", 6)) /* OAuth only: no password */
        return 0;
    const char *colon = strchr(s->conf->auth, ':');
    size_t want_ul = colon ? (size_t)(colon - s->conf->auth) : strlen(s->conf->auth);
    int u = ul == want_ul && !memcmp(user, s->conf->auth, ul);
    int p = same(pass, pl, colon ? colon + 1 : "");
    return u & p;
}

static void auth_result(ib_smtpd *s, int ok)
{
    s->st = S_CMD;
    if (ok) {
        s->authed = 1;
        ib_smtpd_reply(s, "235 2.7.0 Authentication successful");
    } else {
        ib_smtpd_error(s, "535 5.7.8 Error: authentication failed");
    }
}

/* PLAIN (RFC 4616): authzid NUL authcid NUL passwd. */
static void auth_plain(ib_smtpd *s, const char *b64, size_t n)
{
    unsigned char buf[AUTH_MAX];
    long dl = ci_eq(b64, n, "=") ? 0 : b64_decode(b64, n, buf);
    if (dl < 0) {
        s->st = S_CMD;
        ib_smtpd_error(s, "501 5.5.2 Error: cannot decode response");
        return;
    }
    unsigned char *a = memchr(buf, 0, (size_t)dl);
    unsigned char *b = a ? memchr(a + 1, 0, (size_t)(buf + dl - a - 1)) : NULL;
    if (!b || memchr(b + 1, 0, (size_t)(buf + dl - b - 1))) {
        s->st = S_CMD;
        ib_smtpd_error(s, "501 5.5.2 Error: malformed PLAIN response");
        return;
    }
    size_t zl = (size_t)(a - buf), ul = (size_t)(b - a - 1);
    int ok = credentials_ok(s, a + 1, ul, b + 1, (size_t)(buf + dl - b - 1));
    /* An authorization identity other than the user's own is not granted. */
    if (zl && (zl != ul || memcmp(buf, a + 1, ul)))
        ok = 0;
    auth_result(s, ok);
}

/* The bearer token in an XOAUTH2 ("user=U^Aauth=Bearer T^A^A") or
 * OAUTHBEARER ("n,a=U,^Aauth=Bearer T^A^A", RFC 7628 3.1) response.
 * Returns its length and start, or -1 when malformed. */
static long bearer_of(const unsigned char *m, size_t n, int bearer, const unsigned char **tok)
{
    static const char key[] = "\001auth=Bearer ";
    if (n < 2 || m[n - 1] != 1 || m[n - 2] != 1)
        return -1;
    if (bearer ? (n < 3 || memcmp(m, "n,", 2) != 0) : (n < 5 || memcmp(m, "user=", 5) != 0))
        return -1;
    for (size_t i = 0; i + sizeof key - 1 <= n - 2; i++) {
        if (memcmp(m + i, key, sizeof key - 1) != 0)
            continue;
        const unsigned char *t = m + i + sizeof key - 1;
        const unsigned char *end = memchr(t, 1, (size_t)(m + n - t));
        if (!end || end == t)
            return -1;
        *tok = t;
        return (long)(end - t);
    }
    return -1;
}

static void auth_oauth(ib_smtpd *s, const char *b64, size_t n)
{
    unsigned char buf[AUTH_MAX];
    long dl = b64_decode(b64, n, buf);
    const unsigned char *tok = NULL;
    long tl = dl < 0 ? -1 : bearer_of(buf, (size_t)dl, s->oauth_bearer, &tok);
    if (tl < 0) {
        s->st = S_CMD;
        ib_smtpd_error(s, s->oauth_bearer ? "501 5.5.2 Error: malformed OAUTHBEARER response"
                                          : "501 5.5.2 Error: malformed XOAUTH2 response");
        return;
    }
    if (s->conf->auth_expired && same(tok, (size_t)tl, s->conf->auth_expired)) {
        /* RFC 7628 3.2.2: the error challenge; the client answers ^A (or,
         * for XOAUTH2, an empty line) and then gets 535. */
        s->st = S_AUTH_OAUTH_ERR;
        ib_smtpd_reply(s, s->oauth_bearer
                              ? "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJpbmJveCJ9"
                              : "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=");
        return;
    }
    int ok = !strcmp(s->conf->auth, "any") ||
             (!strncmp(s->conf->auth, "token:", 6) && same(tok, (size_t)tl, s->conf->auth + 6));
    auth_result(s, ok);
}

int ib_smtpd_cmd_auth(ib_smtpd *s, const char *args, size_t n)
{
    if (!s->conf->auth) {
        ib_smtpd_error(s, "503 5.5.1 Error: authentication not enabled");
        return DONE;
    }
    if (!s->helo) {
        ib_smtpd_error(s, "503 5.5.1 Error: send HELO/EHLO first");
        return DONE;
    }
    if (s->authed) {
        ib_smtpd_error(s, "503 5.5.1 Error: already authenticated"); /* RFC 4954 4 */
        return DONE;
    }
    if (s->in_mail) {
        ib_smtpd_error(s, "503 5.5.1 Error: MAIL transaction in progress");
        return DONE;
    }
    size_t i = 0;
    const char *mech, *init;
    size_t ml = ib_smtpd_next_word(args, n, &i, &mech);
    size_t il = ib_smtpd_next_word(args, n, &i, &init);
    if (ml == 0 || i < n) {
        ib_smtpd_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return DONE;
    }
    ib_verdict v;
    if (ib_smtpd_chaos(s, IB_STAGE_AUTH, NULL, &v) == HELD)
        return HELD;
    if (ib_smtpd_chaos_acts(s, &v))
        return DONE;
    if (ci_eq(mech, ml, "PLAIN")) {
        if (il) {
            auth_plain(s, init, il);
        } else {
            ib_smtpd_reply(s, "334 ");
            s->st = S_AUTH_PLAIN;
        }
    } else if (ci_eq(mech, ml, "LOGIN")) {
        s->st = S_AUTH_USER;
        if (il) {
            s->st = S_AUTH_PASS;
            unsigned char buf[AUTH_MAX];
            long dl = b64_decode(init, il, buf);
            /* a NUL would cut the name short in the comparison */
            if (dl < 0 || memchr(buf, 0, (size_t)dl)) {
                s->st = S_CMD;
                ib_smtpd_error(s, "501 5.5.2 Error: cannot decode response");
                return DONE;
            }
            free(s->login_user);
            s->login_user = malloc((size_t)dl + 1);
            if (s->login_user) {
                memcpy(s->login_user, buf, (size_t)dl);
                s->login_user[dl] = '\0';
            }
        }
        ib_smtpd_reply(s, s->st == S_AUTH_USER ? "334 VXNlcm5hbWU6" : "334 UGFzc3dvcmQ6");
    } else if (ci_eq(mech, ml, "XOAUTH2") || ci_eq(mech, ml, "OAUTHBEARER")) {
        s->oauth_bearer = ci_eq(mech, ml, "OAUTHBEARER");
        if (il) {
            auth_oauth(s, init, il);
        } else {
            ib_smtpd_reply(s, "334 ");
            s->st = S_AUTH_OAUTH;
        }
    } else {
        ib_smtpd_error(s, "504 5.5.4 Error: unsupported authentication mechanism");
    }
    return DONE;
}

void ib_smtpd_auth_response(ib_smtpd *s, const char *line, size_t n)
{
    if (ci_eq(line, n, "*")) { /* RFC 4954 4: the client cancels */
        s->st = S_CMD;
        ib_smtpd_error(s, "501 5.7.0 Error: authentication cancelled");
        return;
    }
    if (s->st == S_AUTH_PLAIN) {
        auth_plain(s, line, n);
        return;
    }
    if (s->st == S_AUTH_OAUTH) {
        auth_oauth(s, line, n);
        return;
    }
    if (s->st == S_AUTH_OAUTH_ERR) {
        s->st = S_CMD;
        ib_smtpd_error(s, "535 5.7.8 Error: access token expired");
        return;
    }
    unsigned char buf[AUTH_MAX];
    long dl = b64_decode(line, n, buf);
    if (dl < 0) {
        s->st = S_CMD;
        ib_smtpd_error(s, "501 5.5.2 Error: cannot decode response");
        return;
    }
    if (s->st == S_AUTH_USER) {
        if (memchr(buf, 0, (size_t)dl)) { /* "user\0junk" must not pass as "user" */
            s->st = S_CMD;
            ib_smtpd_error(s, "501 5.5.2 Error: cannot decode response");
            return;
        }
        free(s->login_user);
        s->login_user = malloc((size_t)dl + 1);
        if (s->login_user) {
            memcpy(s->login_user, buf, (size_t)dl);
            s->login_user[dl] = '\0';
        }
        s->st = S_AUTH_PASS;
        ib_smtpd_reply(s, "334 UGFzc3dvcmQ6");
        return;
    }
    const char *u = s->login_user ? s->login_user : "";
    int ok =
        s->login_user && credentials_ok(s, (const unsigned char *)u, strlen(u), buf, (size_t)dl);
    free(s->login_user);
    s->login_user = NULL;
    auth_result(s, ok);
}
