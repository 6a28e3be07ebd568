/* libFuzzer target: the SMTP engine signing in with an OAuth2 token
 * (XOAUTH2, OAUTHBEARER) against arbitrary server bytes.
 *
 * Input: byte 0 picks the mechanism (auto, xoauth2, oauthbearer), TLS and
 * loopback; the rest is what the server says, fed in pieces whose sizes
 * come from the input.  Invariants (abort on breach):
 *   - the token never appears in the client's trace lines or (unless the
 *     server sent it) an error, in clear or as the base64 of either SASL
 *     string;
 *   - the SASL string is only written once the channel is encrypted or the
 *     peer is loopback, and only on an AUTH command line;
 *   - after the error challenge the client answers with the dummy response
 *     ("AQ==" for OAUTHBEARER, an empty line for XOAUTH2) and nothing else. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/engine.h"

#define TOKEN "ya29.FuzzTok3n"
/* base64("user=u@x.test\1auth=Bearer ya29.FuzzTok3n\1\1") and the OAUTHBEARER one */
#define B64_X "dXNlcj11QHgudGVzdAFhdXRoPUJlYXJlciB5YTI5LkZ1enpUb2szbgEB"
#define B64_B "bixhPXVAeC50ZXN0LAFhdXRoPUJlYXJlciB5YTI5LkZ1enpUb2szbgEB"

static int has(const char *p, size_t n, const char *s)
{
    size_t l = strlen(s);
    for (size_t i = 0; i + l <= n; i++)
        if (memcmp(p + i, s, l) == 0)
            return 1;
    return 0;
}

static void check_free(const char *p, size_t n, const char *where)
{
    if (has(p, n, TOKEN) || has(p, n, B64_X) || has(p, n, B64_B)) {
        fprintf(stderr, "the token leaked into %s\n", where);
        abort();
    }
}

/* Only the client's lines: a server may well echo anything back. */
static void on_trace(void *arg, char dir, const char *line, size_t len)
{
    (void)arg;
    if (dir == 'C')
        check_free(line, len, "the trace");
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1)
        return 0;
    static const se_smtp_mech mechs[] = {SE_MECH_AUTO, SE_MECH_XOAUTH2, SE_MECH_OAUTHBEARER,
                                         SE_MECH_AUTO};
    int tls = (d[0] >> 2) & 1, loopback = (d[0] >> 3) & 1;
    se_smtp_opts o = {
        .helo_name = "client.test",
        .tls = tls ? SCALR_EMAIL_TLS_IMPLICIT : SCALR_EMAIL_TLS_NONE,
        .username = "u@x.test",
        .mech = mechs[d[0] & 3],
        .oauth_token = TOKEN,
        .peer_is_loopback = loopback,
        .trace = on_trace,
    };
    se_smtp *s = se_smtp_new(&o);
    if (!s)
        abort();
    if (tls)
        se_smtp_tls_started(s);
    size_t pos = 1;
    int sasl_sent = 0, dummy_expected = 0;
    /* What the server said, without the piece sizes between its bytes. */
    char *said = malloc(n);
    size_t said_len = 0;
    if (!said)
        abort();
    for (int steps = 0; steps < 10000; steps++) {
        se_smtp_want w = se_smtp_step(s);
        if (w == SE_SMTP_WRITE) {
            size_t len;
            const char *p = se_smtp_out(s, &len);
            int is_sasl = has(p, len, B64_X) || has(p, len, B64_B);
            if (is_sasl) {
                if (!tls && !loopback)
                    abort(); /* a bearer token over cleartext */
                if (len < 5 || memcmp(p, "AUTH ", 5) != 0)
                    abort();
                sasl_sent++;
            } else if (dummy_expected) {
                if (!(len == 6 && !memcmp(p, "AQ==\r\n", 6)) &&
                    !(len == 2 && !memcmp(p, "\r\n", 2)) && !(len >= 4 && !memcmp(p, "QUIT", 4)))
                    abort();
            }
            dummy_expected = 0;
            se_smtp_sent(s, len);
        } else if (w == SE_SMTP_READ) {
            if (pos >= n) {
                se_smtp_eof(s);
                continue;
            }
            size_t k = 1 + d[pos] % 64;
            pos++;
            if (k > n - pos)
                k = n - pos;
            /* a 334 right after the SASL line is the error challenge */
            if (sasl_sent && k >= 3 && !memcmp(d + pos, "334", 3))
                dummy_expected = 1;
            if (se_smtp_feed(s, (const char *)d + pos, k) < 0)
                abort();
            memcpy(said + said_len, d + pos, k);
            said_len += k;
            pos += k;
        } else if (w == SE_SMTP_TLS) {
            se_smtp_tls_started(s);
            tls = 1;
        } else if (w == SE_SMTP_IDLE) {
            se_smtp_quit(s);
        } else {
            break; /* DONE or FAILED */
        }
    }
    /* The error may quote the server; check it when the server did not
     * send the token itself. */
    const scalr_email_error *e = se_smtp_error(s);
    if (!has(said, said_len, TOKEN) && !has(said, said_len, B64_X) && !has(said, said_len, B64_B)) {
        check_free(e->message, strlen(e->message), "the error message");
        check_free(e->server_text, strlen(e->server_text), "the error's server text");
    }
    if (sasl_sent > 2)
        abort(); /* one sign-in per session */
    free(said);
    se_smtp_free(s);
    return 0;
}
