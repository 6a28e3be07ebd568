/* The inbox's SMTP server session (smtpd.h): one explicit state machine
 * over byte buffers, in the manner of OpenSMTPD's smtp_session.c.
 *
 * Input is parsed in place from `in` (consumed up to in_off); replies are
 * appended to `out`.  Each command is handled whole or not at all, so that a
 * chaos delay can hold it and run it again after the wait.  A chaos reply
 * answers the command instead of performing it.
 *
 * The commands with more to them live beside this file, over the same
 * session (smtpd_int.h): MAIL and RCPT in smtpd_addr.c, AUTH in
 * smtpd_auth.c, DATA and BDAT in smtpd_data.c. */
#include "smtpd_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERROR_MAX 100           /* syntax errors before we hang up                */
#define OUT_HIGH 65536          /* flush early: a client that never reads stalls  */
#define KEEP_MSG_CAP (1u << 20) /* larger message buffers are freed after use     */

void ib_smtpd_reply(ib_smtpd *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || se_buf_reserve(&s->out, (size_t)n + 2) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(s->out.data + s->out.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->out.len += (size_t)n;
    se_buf_append(&s->out, "\r\n", 2);
}

/* A 5xx for bad input; too many and we hang up (as Postfix's hard error limit). */
void ib_smtpd_error(ib_smtpd *s, const char *text)
{
    ib_smtpd_reply(s, "%s", text);
    if (++s->errors >= ERROR_MAX) {
        ib_smtpd_reply(s, "421 4.7.0 %s Error: too many errors", s->conf->hostname);
        s->closing = 1;
    }
}

void ib_smtpd_reset(ib_smtpd *s)
{
    for (size_t i = 0; i < s->n_rcpt; i++)
        free(s->rcpt[i]);
    s->n_rcpt = s->rcpt_tried = 0;
    free(s->mail_from);
    s->mail_from = NULL;
    s->in_mail = s->smtputf8 = s->used_bdat = 0;
    if (s->msg.cap > KEEP_MSG_CAP)
        se_buf_free(&s->msg);
    else
        se_buf_reset(&s->msg);
    s->msg.oom = 0;
    if (s->spill_fd >= 0)
        close(s->spill_fd);
    s->spill_fd = -1;
    s->spill_len = 0;
    s->msg_size = 0;
    s->too_big = s->msg_oom = 0;
    s->bare_lf = 0;
    s->bare_cr = 0;
    s->prev = 0;
}

ib_smtpd *ib_smtpd_new(const ib_smtpd_conf *conf, const char *peer, int in_tls)
{
    ib_smtpd *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conf = conf;
    s->spill_fd = -1;
    s->in_tls = in_tls;
    s->st = S_GREETING;
    s->peer = strdup(peer ? peer : "");
    s->rcpt = malloc(RCPT_MAX * sizeof *s->rcpt);
    if (!s->peer || !s->rcpt || se_buf_reserve(&s->in, CMD_MAX) < 0) { /* in.data never NULL */
        ib_smtpd_free(s);
        return NULL;
    }
    return s;
}

void ib_smtpd_free(ib_smtpd *s)
{
    if (!s)
        return;
    if (s->rcpt)
        ib_smtpd_reset(s);
    free(s->rcpt);
    free(s->peer);
    free(s->helo);
    free(s->login_user);
    se_buf_free(&s->in);
    se_buf_free(&s->out);
    se_buf_free(&s->msg);
    free(s);
}

/* --- chaos ------------------------------------------------------------ */

/* The verdict for this stage.  HELD when a delay must come first: the
 * command is left unconsumed and runs again, with the same verdict, after
 * the driver has waited. */
int ib_smtpd_chaos(ib_smtpd *s, ib_stage stage, const char *arg, ib_verdict *v)
{
    if (s->have_held) {
        *v = s->held;
        s->have_held = 0;
        return DONE;
    }
    *v = ib_chaos_check(s->conf->chaos, stage, arg);
    if (v->delay_ms) {
        s->held = *v;
        s->held.delay_ms = 0;
        s->have_held = 1;
        s->delay_ms = v->delay_ms;
        return HELD;
    }
    return DONE;
}

/* Carry out a reply or a disconnect; 1 if the verdict answered the command. */
int ib_smtpd_chaos_acts(ib_smtpd *s, const ib_verdict *v)
{
    if (v->act == 2) {
        s->closing = s->abrupt = 1;
        s->st = S_DEAD;
        return 1;
    }
    if (v->act == 1) {
        ib_smtpd_reply(s, "%d %s", v->code, v->text);
        if (v->code == 421) /* RFC 5321 3.8: 421 closes the channel */
            s->closing = 1;
        return 1;
    }
    return 0;
}

/* --- commands --------------------------------------------------------- */

static void greeting(ib_smtpd *s)
{
    ib_verdict v;
    if (ib_smtpd_chaos(s, IB_STAGE_CONNECT, NULL, &v) == HELD)
        return;
    if (v.act == 2) {
        ib_smtpd_chaos_acts(s, &v);
        return;
    }
    if (v.act == 1) {
        ib_smtpd_reply(s, "%d %s", v.code, v.text);
        if (v.code == 421)
            s->closing = 1;
        s->st = v.code / 100 == 2 ? S_CMD : S_REFUSED;
        return;
    }
    ib_smtpd_reply(s, "220 %s ESMTP scalr-email inbox", s->conf->hostname);
    s->st = S_CMD;
}

static int cmd_helo(ib_smtpd *s, const char *args, size_t n, int esmtp)
{
    if (n == 0) {
        ib_smtpd_error(s, esmtp ? "501 5.5.4 Syntax: EHLO hostname"
                                : "501 5.5.4 Syntax: HELO hostname");
        return DONE;
    }
    if (!ib_smtpd_valid_utf8((const unsigned char *)args, n)) {
        ib_smtpd_error(s, "501 5.5.4 Error: invalid hostname");
        return DONE;
    }
    ib_verdict v;
    if (ib_smtpd_chaos(s, IB_STAGE_EHLO, NULL, &v) == HELD)
        return HELD;
    if (ib_smtpd_chaos_acts(s, &v))
        return DONE;
    char *h = malloc(n + 1);
    if (!h) {
        ib_smtpd_reply(s, "421 4.3.0 Error: out of memory");
        s->closing = 1;
        return DONE;
    }
    memcpy(h, args, n);
    h[n] = '\0';
    free(s->helo);
    s->helo = h;
    s->esmtp = esmtp;
    ib_smtpd_reset(s); /* RFC 5321 4.1.4: EHLO resets like RSET */
    if (!esmtp) {
        ib_smtpd_reply(s, "250 %s", s->conf->hostname);
        return DONE;
    }
    ib_smtpd_reply(s, "250-%s", s->conf->hostname);
    ib_smtpd_reply(s, "250-PIPELINING");                  /* RFC 2920 */
    ib_smtpd_reply(s, "250-SIZE %zu", s->conf->max_size); /* RFC 1870 */
    ib_smtpd_reply(s, "250-8BITMIME");                    /* RFC 6152 */
    ib_smtpd_reply(s, "250-SMTPUTF8");                    /* RFC 6531 */
    ib_smtpd_reply(s, "250-CHUNKING");                    /* RFC 3030 */
    ib_smtpd_reply(s, "250-ENHANCEDSTATUSCODES");         /* RFC 2034 */
    if (s->conf->starttls && !s->in_tls)
        ib_smtpd_reply(s, "250-STARTTLS"); /* RFC 3207 */
    if (s->conf->auth)
        /* RFC 4954; RFC 7628 and XOAUTH2 when a token can be accepted */
        ib_smtpd_reply(s, !strcmp(s->conf->auth, "any") ? "250-AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER"
                          : !strncmp(s->conf->auth, "token:", 6) ? "250-AUTH XOAUTH2 OAUTHBEARER"
                                                                 : "250-AUTH PLAIN LOGIN");
    ib_smtpd_reply(s, "250 HELP");
    return DONE;
}

static int cmd_starttls(ib_smtpd *s, size_t n)
{
    if (!s->conf->starttls) {
        ib_smtpd_error(s, "502 5.5.1 Error: STARTTLS not available");
    } else if (s->in_tls) {
        ib_smtpd_error(s, "503 5.5.1 Error: TLS already active");
    } else if (n) {
        ib_smtpd_error(s, "501 5.5.4 Syntax: STARTTLS");
    } else {
        ib_smtpd_reply(s, "220 2.0.0 Ready to start TLS");
        s->tls_pending = 1;
        s->discard_input = 1; /* CVE-2011-0411: nothing sent in clear may survive */
    }
    return DONE;
}

static int http_verb(const char *v, size_t n)
{
    static const char *const verbs[] = {"GET",    "POST",    "HEAD",   "PUT",
                                        "DELETE", "OPTIONS", "CONNECT"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (ci_eq(v, n, verbs[i]))
            return 1;
    return n > 1 && v[n - 1] == ':'; /* a header line: "Host:" */
}

static int command(ib_smtpd *s, const char *line, size_t n, size_t full)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            ib_smtpd_error(s, "500 5.5.2 Error: invalid character in command");
            return DONE;
        }
    }
    size_t vl = 0;
    while (vl < n && line[vl] != ' ')
        vl++;
    const char *args = line + vl;
    size_t al = n - vl;
    while (al && *args == ' ')
        args++, al--;
    while (al && (args[al - 1] == ' ' || args[al - 1] == '\t'))
        al--;
    if (full > CMD_MAX && !ci_eq(line, vl, "AUTH")) {
        ib_smtpd_error(s, "500 5.5.2 Error: line too long");
        return DONE;
    }
    if (s->st == S_REFUSED) {
        if (ci_eq(line, vl, "QUIT")) {
            ib_smtpd_reply(s, "221 2.0.0 Bye");
            s->closing = 1;
        } else {
            ib_smtpd_error(s, "503 5.5.1 Error: service refused, only QUIT");
        }
        return DONE;
    }
    if (ci_eq(line, vl, "EHLO"))
        return cmd_helo(s, args, al, 1);
    if (ci_eq(line, vl, "HELO"))
        return cmd_helo(s, args, al, 0);
    if (ci_eq(line, vl, "MAIL"))
        return ib_smtpd_cmd_mail(s, args, al);
    if (ci_eq(line, vl, "RCPT"))
        return ib_smtpd_cmd_rcpt(s, args, al);
    if (ci_eq(line, vl, "DATA"))
        ib_smtpd_cmd_data(s, al);
    else if (ci_eq(line, vl, "BDAT"))
        ib_smtpd_cmd_bdat(s, args, al);
    else if (ci_eq(line, vl, "AUTH"))
        return ib_smtpd_cmd_auth(s, args, al);
    else if (ci_eq(line, vl, "STARTTLS"))
        return cmd_starttls(s, al);
    else if (ci_eq(line, vl, "RSET")) {
        if (al) {
            ib_smtpd_error(s, "501 5.5.4 Syntax: RSET");
        } else {
            ib_smtpd_reset(s);
            ib_smtpd_reply(s, "250 2.0.0 Ok");
        }
    } else if (ci_eq(line, vl, "NOOP")) {
        ib_smtpd_reply(s, "250 2.0.0 Ok");
    } else if (ci_eq(line, vl, "QUIT")) {
        ib_smtpd_reply(s, "221 2.0.0 Bye");
        s->closing = 1;
    } else if (ci_eq(line, vl, "VRFY")) {
        if (al)
            ib_smtpd_reply(s, "252 2.1.5 Cannot VRFY user, but will accept message");
        else
            ib_smtpd_error(s, "501 5.5.4 Syntax: VRFY address");
    } else if (ci_eq(line, vl, "HELP")) {
        ib_smtpd_reply(
            s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s%s",
            s->conf->starttls ? " STARTTLS" : "", s->conf->auth ? " AUTH" : "");
    } else if (http_verb(line, vl)) {
        /* A browser tricked into posting to this port: hang up before any
         * line of the request body can run as a command. */
        ib_smtpd_reply(s, "500 5.5.2 Error: this is an SMTP server, not HTTP");
        s->closing = 1;
    } else {
        ib_smtpd_error(s, "500 5.5.2 Error: command not recognized");
    }
    return DONE;
}

/* --- input ------------------------------------------------------------ */

/* One line of command or AUTH input.  0 when a full line is not there yet. */
static int line_input(ib_smtpd *s)
{
    const char *p = s->in.data + s->in_off;
    size_t avail = s->in.len - s->in_off;
    const char *lf = avail ? memchr(p, '\n', avail) : NULL;
    if (s->skipping) { /* the rest of an over-long line */
        if (!lf) {
            s->in_off = s->in.len;
            return 0;
        }
        s->in_off += (size_t)(lf - p) + 1;
        s->skipping = 0;
        ib_smtpd_error(s, "500 5.5.2 Error: line too long");
        return 1;
    }
    if (!lf) {
        if (avail > AUTH_MAX) { /* drop it now rather than buffer it */
            s->skipping = 1;
            s->in_off = s->in.len;
        }
        return 0;
    }
    size_t full = (size_t)(lf - p) + 1, n = full - 1;
    if (n && p[n - 1] == '\r')
        n--;
    if (full > AUTH_MAX) {
        s->in_off += full;
        ib_smtpd_error(s, "500 5.5.2 Error: line too long");
        return 1;
    }
    int r = DONE;
    if (s->st == S_AUTH_PLAIN || s->st == S_AUTH_USER || s->st == S_AUTH_PASS ||
        s->st == S_AUTH_OAUTH || s->st == S_AUTH_OAUTH_ERR)
        ib_smtpd_auth_response(s, p, n);
    else
        r = command(s, p, n, full);
    if (r == HELD)
        return 1;
    s->in_off += full;
    if (s->discard_input) {
        s->in_off = s->in.len;
        s->discard_input = 0;
    }
    return 1;
}

static int advance(ib_smtpd *s)
{
    switch (s->st) {
    case S_GREETING: greeting(s); return 1;
    case S_DATA: return ib_smtpd_data_input(s);
    case S_BDAT: return ib_smtpd_bdat_input(s);
    case S_MSG_END: return ib_smtpd_msg_end(s);
    case S_DEAD: return 0;
    default: return line_input(s);
    }
}

/* --- the driver's interface ------------------------------------------- */

ib_smtpd_want ib_smtpd_step(ib_smtpd *s)
{
    for (;;) {
        if (s->out.oom || s->in.oom) /* nothing sensible is left to say */
            return IB_SMTPD_CLOSE;
        if (s->closing)
            return s->out.len ? IB_SMTPD_WRITE : IB_SMTPD_CLOSE;
        if (s->tls_pending) {
            if (s->out.len)
                return IB_SMTPD_WRITE;
            s->tls_pending = 0;
            s->st = S_DEAD; /* until ib_smtpd_tls_started() */
            return IB_SMTPD_TLS;
        }
        if (s->delay_ms) {
            if (s->out.len)
                return IB_SMTPD_WRITE;
            s->delay_out = s->delay_ms;
            s->delay_ms = 0;
            return IB_SMTPD_DELAY;
        }
        if (s->msg_ready)
            return IB_SMTPD_MESSAGE;
        if (s->out.len >= OUT_HIGH)
            return IB_SMTPD_WRITE;
        if (!advance(s))
            return s->out.len ? IB_SMTPD_WRITE : IB_SMTPD_READ;
    }
}

int ib_smtpd_feed(ib_smtpd *s, const void *p, size_t n)
{
    if (s->in_off) {
        se_buf_consume(&s->in, s->in_off);
        s->in_off = 0;
    }
    if (s->closing || s->st == S_DEAD)
        return 0; /* nothing more is read after QUIT or a drop */
    return se_buf_append(&s->in, p, n);
}

void ib_smtpd_eof(ib_smtpd *s)
{
    s->closing = s->abrupt = 1;
    s->st = S_DEAD;
}

int ib_smtpd_between_commands(const ib_smtpd *s)
{
    return s->st == S_CMD;
}

void ib_smtpd_timeout(ib_smtpd *s)
{
    if (!s->closing)
        ib_smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->hostname);
    s->closing = 1;
    s->st = S_DEAD;
}

void ib_smtpd_shutdown(ib_smtpd *s)
{
    if (!s->closing)
        ib_smtpd_reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
    s->closing = 1;
    s->st = S_DEAD;
}

const char *ib_smtpd_out(const ib_smtpd *s, size_t *len)
{
    *len = s->out.len;
    return s->out.data ? s->out.data : "";
}

void ib_smtpd_sent(ib_smtpd *s, size_t n)
{
    se_buf_consume(&s->out, n);
}

void ib_smtpd_message(const ib_smtpd *s, ib_envelope *env, const char **raw, size_t *len)
{
    env->mail_from = s->mail_from ? s->mail_from : "";
    env->rcpt = (const char *const *)s->rcpt;
    env->n_rcpt = s->n_rcpt;
    env->helo = s->helo ? s->helo : "";
    env->peer = s->peer;
    env->bare_lf = s->bare_lf;
    env->bare_cr = s->bare_cr;
    *raw = s->msg.data ? s->msg.data : "";
    *len = s->msg.len;
}

int ib_smtpd_message_file(const ib_smtpd *s, uint64_t *len)
{
    *len = s->spill_len;
    return s->spill_fd;
}

void ib_smtpd_stored(ib_smtpd *s, int64_t id)
{
    if (!s->msg_ready)
        return;
    s->msg_ready = 0;
    s->st = S_CMD;
    if (id >= 0)
        ib_smtpd_reply(s, "250 2.0.0 Ok: queued as %" PRId64, id);
    else
        ib_smtpd_reply(s, "451 4.3.0 Error: could not store the message");
    ib_smtpd_reset(s);
}

int ib_smtpd_linger(const ib_smtpd *s)
{
    return !s->abrupt && !s->out.oom && !s->in.oom;
}

unsigned ib_smtpd_delay_ms(const ib_smtpd *s)
{
    return s->delay_out;
}

/* RFC 3207 4.2: after the handshake the session starts over. */
void ib_smtpd_tls_started(ib_smtpd *s)
{
    s->in_tls = 1;
    s->st = S_CMD;
    se_buf_reset(&s->in);
    s->in_off = 0;
    free(s->helo);
    s->helo = NULL;
    s->esmtp = s->authed = 0;
    ib_smtpd_reset(s);
}
