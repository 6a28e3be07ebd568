/* The SMTP client engine: session setup (greeting, EHLO, STARTTLS), the
 * byte buffers, the step function and QUIT.  AUTH is in auth.c, the mail
 * transaction in mail.c.  No sockets, no TLS calls, no clocks: bytes in,
 * bytes out (hiredis's redisReader model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "smtp/engine_int.h"

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define CMD_MAX 510
/* One reply at its largest, plus what one read may add behind it. */
#define IN_MAX ((SE_REPLY_MAX_LINE + 2) * SE_REPLY_MAX_LINES + 65536)

static char *dup_str(const char *p)
{
    return strdup(p ? p : "");
}

/* RFC 5321 4.1.1.1: the EHLO argument is a domain or an address literal;
 * never anything that could end the line or start a new command. */
static int helo_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c >= 0x7f)
            return 0;
    }
    return 1;
}

se_smtp *se_smtp_new(const se_smtp_opts *opts)
{
    se_smtp *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->state = ST_GREETING;
    s->after_quit = ST_DONE;
    s->pending = 1; /* the greeting */
    s->helo = dup_str(opts ? opts->helo_name : NULL);
    s->user = dup_str(opts ? opts->username : NULL);
    s->pass = dup_str(opts ? opts->password : NULL);
    if (opts && opts->oauth_token && !(s->token = strdup(opts->oauth_token))) {
        se_smtp_free(s);
        return NULL;
    }
    if (!s->helo || !s->user || !s->pass) {
        se_smtp_free(s);
        return NULL;
    }
    if (opts) {
        s->tls = opts->tls;
        s->mech = opts->mech;
        s->peer_is_loopback = opts->peer_is_loopback;
        s->trace = opts->trace;
        s->trace_arg = opts->trace_arg;
    }
    s->auth_used = "";
    if (!helo_ok(s->helo))
        se_smtp_fail(s, 0, SCALR_EMAIL_EINVAL, "EHLO",
                     "invalid EHLO name: it must be a domain or an address literal");
    return s;
}

static void wipe_out(se_smtp *s)
{
    if (s->out_secret && s->out.data)
        se_smtp_wipe(s->out.data, s->out.cap);
    s->out_secret = 0;
    se_buf_reset(&s->out);
}

void se_smtp_free(se_smtp *s)
{
    if (!s)
        return;
    if (s->pass)
        se_smtp_wipe(s->pass, strlen(s->pass));
    free(s->pass);
    if (s->token)
        se_smtp_wipe(s->token, strlen(s->token));
    free(s->token);
    free(s->user);
    free(s->helo);
    wipe_out(s);
    se_buf_free(&s->out);
    se_buf_free(&s->in);
    se_buf_free(&s->ext);
    se_buf_free(&s->offered);
    se_buf_free(&s->greeting);
    se_smtp_tx_clear(s);
    free(s);
}

void se_smtp_trace(se_smtp *s, char dir, const char *line, size_t len)
{
    if (s->trace)
        s->trace(s->trace_arg, dir, line, len);
}

static void trace_lines(se_smtp *s, const char *p, size_t n)
{
    while (n) {
        const char *lf = memchr(p, '\n', n);
        size_t ln = lf ? (size_t)(lf - p) : n;
        size_t shown = ln && p[ln - 1] == '\r' ? ln - 1 : ln;
        se_smtp_trace(s, 'S', p, shown);
        if (!lf)
            break;
        p += ln + 1;
        n -= ln + 1;
    }
}

static void __attribute__((format(printf, 5, 0)))
vfail(se_smtp *s, int sync, scalr_email_code code, const char *stage, const char *fmt, va_list ap)
{
    char msg[sizeof s->err.message];
    vsnprintf(msg, sizeof msg, fmt, ap);
    se_fail(&s->err, code, stage, "%s", msg);
    s->state = ST_FAILED;
    s->sync = sync;
    s->last_ok = 0;
    wipe_out(s);
}

void se_smtp_fail(se_smtp *s, int sync, scalr_email_code code, const char *stage, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(s, sync, code, stage, fmt, ap);
    va_end(ap);
}

void se_smtp_error_reply(scalr_email_error *e, scalr_email_code code, const char *stage,
                         const se_reply *r, const char *what)
{
    char text[sizeof e->server_text];
    const char *t = r->text ? r->text : "";
    se_copy_line(text, sizeof text, t, strlen(t)); /* lines joined by " " */
    se_fail(e, code, stage, "%s: %d%s%s%s%s", what, r->code, r->enhanced[0] ? " " : "", r->enhanced,
            text[0] ? " " : "", text);
    e->smtp_code = r->code;
    memcpy(e->enhanced, r->enhanced, sizeof e->enhanced);
    memcpy(e->server_text, text, sizeof e->server_text);
}

void se_smtp_fail_reply(se_smtp *s, int sync, scalr_email_code code, const char *stage,
                        const se_reply *r, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    se_smtp_error_reply(&s->err, code, stage, r, what);
    s->state = ST_FAILED;
    s->sync = sync;
    s->last_ok = 0;
    wipe_out(s);
}

static const char *stage_of(const se_smtp *s)
{
    switch (s->state) {
    case ST_GREETING: return "CONNECT";
    case ST_EHLO: return "EHLO";
    case ST_STARTTLS:
    case ST_TLS: return "TLS";
    case ST_AUTH: return "AUTH";
    case ST_TX: return se_smtp_tx_stage(s);
    case ST_RSET: return s->err.stage;
    case ST_QUIT: return "QUIT";
    case ST_NOOP: return "NOOP";
    default: return "";
    }
}

const char *se_smtp_stage(const se_smtp *s)
{
    const char *st = stage_of(s);
    return *st ? st : "SMTP";
}

/* The one place commands are written.  `shown` replaces the line in the
 * trace when it carries credentials. */
int se_smtp_cmd(se_smtp *s, const char *shown, const char *fmt, ...)
{
    const char *stage = stage_of(s);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > (shown ? SE_AUTH_LINE_MAX : CMD_MAX)) {
        se_smtp_fail(s, 0, SCALR_EMAIL_EINVAL, stage, "SMTP command line too long");
        return -1;
    }
    if (se_buf_reserve(&s->out, (size_t)n + 2) < 0) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, stage, "out of memory");
        return -1;
    }
    char *p = s->out.data + s->out.len;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (shown)
        s->out_secret = 1;
    /* RFC 5321 2.3.8: a command ends at its CRLF; an argument carrying CR
     * or LF would smuggle another command (defense in depth). */
    if (memchr(p, '\r', (size_t)n) || memchr(p, '\n', (size_t)n)) {
        se_smtp_wipe(p, (size_t)n);
        s->out.data[s->out.len] = '\0';
        se_smtp_fail(s, 0, SCALR_EMAIL_EINVAL, stage,
                     "refusing to send an SMTP command containing CR or LF");
        return -1;
    }
    memcpy(p + n, "\r\n", 3);
    s->out.len += (size_t)n + 2;
    se_smtp_trace(s, 'C', shown ? shown : p, shown ? strlen(shown) : (size_t)n);
    s->pending++;
    return 0;
}

void se_smtp_go_idle(se_smtp *s)
{
    se_smtp_tx_clear(s);
    s->state = ST_IDLE;
    s->idle_told = 0;
}

/* ---- session replies ---- */

static void send_ehlo(se_smtp *s)
{
    if (se_smtp_cmd(s, NULL, "EHLO %s", s->helo) == 0)
        s->state = ST_EHLO;
}

static void greeting_reply(se_smtp *s, const se_reply *r)
{
    se_buf_reset(&s->greeting);
    se_buf_puts(&s->greeting, r->text);
    for (size_t i = 0; i < s->greeting.len; i++)
        if (s->greeting.data[i] == '\n')
            s->greeting.data[i] = ' ';
    if (s->tls == SCALR_EMAIL_TLS_IMPLICIT && !s->tls_active) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ETLS, "TLS",
                     "implicit TLS was configured but the channel is not encrypted");
        return;
    }
    int cls = r->code / 100;
    if (r->code == 220)
        send_ehlo(s);
    else if (cls == 5) /* RFC 5321 3.1: 554 (or 521) instead of 220 */
        se_smtp_fail_reply(s, 1, SCALR_EMAIL_EREJECTED, "CONNECT", r, "server refused the session");
    else if (cls == 4)
        se_smtp_fail_reply(s, 1, SCALR_EMAIL_ETRANSIENT, "CONNECT", r,
                           "server is not accepting mail now");
    else
        se_smtp_fail_reply(s, 0, SCALR_EMAIL_EPROTOCOL, "CONNECT", r,
                           "unexpected greeting (want 220)");
}

static void after_ehlo(se_smtp *s)
{
    if (s->tls == SCALR_EMAIL_TLS_STARTTLS && !s->tls_active) {
        /* RFC 3207 4: STARTTLS is required here; never fall back to plain. */
        if (!(s->caps & SE_CAP_STARTTLS)) {
            se_smtp_fail(s, 1, SCALR_EMAIL_ETLS, "TLS",
                         "server does not offer STARTTLS; refusing to continue unencrypted");
            return;
        }
        /* RFC 2920 3.1: STARTTLS ends a pipeline group; it goes alone. */
        if (se_smtp_cmd(s, NULL, "STARTTLS") == 0)
            s->state = ST_STARTTLS;
        return;
    }
    if (s->user[0])
        se_smtp_auth_start(s);
    else
        se_smtp_go_idle(s);
}

static void ehlo_reply(se_smtp *s, const se_reply *r)
{
    int cls = r->code / 100;
    if (cls == 2) {
        if (se_smtp_parse_ehlo(s, r) == 0)
            after_ehlo(s);
    } else if (cls == 5) { /* no HELO fallback: it would lose STARTTLS and AUTH */
        se_smtp_fail_reply(s, 1, SCALR_EMAIL_EREJECTED, "EHLO", r, "server refused EHLO");
    } else if (cls == 4) {
        se_smtp_fail_reply(s, 1, SCALR_EMAIL_ETRANSIENT, "EHLO", r, "server deferred EHLO");
    } else {
        se_smtp_fail_reply(s, 0, SCALR_EMAIL_EPROTOCOL, "EHLO", r, "unexpected reply to EHLO");
    }
}

static void starttls_reply(se_smtp *s, const se_reply *r)
{
    if (r->code != 220) {
        se_smtp_fail_reply(s, r->code != 421, SCALR_EMAIL_ETLS, "TLS", r,
                           "server refused STARTTLS");
        return;
    }
    /* RFC 3207 4.2 / CVE-2021-22947: whatever came with the 220 was sent
     * before the handshake and could be an attacker's; never act on it. */
    if (s->extra) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ETLS, "TLS",
                     "server sent data after the STARTTLS reply "
                     "(possible injection, CVE-2021-22947 class)");
        return;
    }
    s->state = ST_TLS;
}

static void dispatch(se_smtp *s, const se_reply *r)
{
    /* RFC 5321 3.8: 421 may answer anything; the server is closing. */
    if (r->code == 421 && s->state != ST_QUIT && s->state != ST_STARTTLS && s->state != ST_RSET) {
        se_smtp_fail_reply(s, 0, SCALR_EMAIL_ETRANSIENT, stage_of(s), r,
                           "server is closing the connection");
        return;
    }
    switch (s->state) {
    case ST_GREETING: greeting_reply(s, r); break;
    case ST_EHLO: ehlo_reply(s, r); break;
    case ST_STARTTLS: starttls_reply(s, r); break;
    case ST_AUTH: se_smtp_auth_reply(s, r); break;
    case ST_TX: se_smtp_tx_reply(s, r); break;
    case ST_RSET: se_smtp_rset_reply(s, r); break;
    case ST_QUIT:
        s->state = s->after_quit;
        s->sync = 0;
        break;
    case ST_NOOP:
        if (r->code / 100 == 2)
            se_smtp_go_idle(s);
        else
            se_smtp_fail_reply(s, 0, SCALR_EMAIL_EPROTOCOL, "NOOP", r, "unexpected reply to NOOP");
        break;
    default: break;
    }
}

/* Parse and act on one reply.  1: handled one, 0: need more bytes. */
static int next_reply(se_smtp *s)
{
    if (!s->in_ready || !s->in.len)
        return 0;
    se_reply r;
    size_t used;
    char why[128];
    int rc = se_reply_parse(s->in.data, s->in.len, &r, &used, why, sizeof why);
    if (rc == 0) {
        s->in_ready = 0;
        return 0;
    }
    if (rc == -2) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, stage_of(s), "out of memory");
        return 1;
    }
    if (rc < 0) {
        const char *lf = memchr(s->in.data, '\n', s->in.len);
        size_t n = lf ? (size_t)(lf - s->in.data) : s->in.len;
        se_smtp_trace(s, 'S', s->in.data, n < 512 ? n : 512);
        int tlsish = s->in.len > 1 && (s->in.data[0] == 0x15 || s->in.data[0] == 0x16) &&
                     s->in.data[1] == 0x03;
        se_smtp_fail(s, 0, SCALR_EMAIL_EPROTOCOL, stage_of(s), "invalid reply from server: %s%s",
                     why, tlsish ? "; it looks like TLS: is this an implicit-TLS port?" : "");
        return 1;
    }
    trace_lines(s, s->in.data, used);
    se_buf_consume(&s->in, used);
    s->n_replies++;
    if (s->in_tail > s->in.len)
        s->in_tail = s->in.len;
    if (s->pending)
        s->pending--;
    /* Bytes behind the last reply we waited for were sent before our next
     * command: they cannot be its reply (RFC 2920 3.1 ordering). */
    s->extra = s->pending == 0 && s->in.len > 0;
    dispatch(s, &r);
    se_reply_free(&r);
    if (s->extra && s->state != ST_FAILED && s->state != ST_DONE && s->state != ST_IDLE)
        se_smtp_fail(s, 0, SCALR_EMAIL_EPROTOCOL, stage_of(s),
                     "server sent data before it was asked (%zu bytes)", s->in.len);
    return 1;
}

/* IDLE with bytes from the server: nothing was asked, so it is either the
 * server saying goodbye (421) or a broken stream. */
static void idle_input(se_smtp *s)
{
    se_reply r;
    size_t used;
    char why[128];
    if (s->in.len && se_reply_parse(s->in.data, s->in.len, &r, &used, why, sizeof why) == 1) {
        trace_lines(s, s->in.data, used);
        if (r.code == 421)
            se_smtp_fail_reply(s, 0, SCALR_EMAIL_ETRANSIENT, "", &r,
                               "server closed the idle session");
        else
            se_smtp_fail(s, 0, SCALR_EMAIL_EPROTOCOL, "",
                         "server sent data while no reply was expected");
        se_reply_free(&r);
    } else if (s->in.len) {
        se_smtp_fail(s, 0, SCALR_EMAIL_EPROTOCOL, "",
                     "server sent data while no reply was expected");
    } else {
        se_smtp_fail(s, 0, SCALR_EMAIL_EIO, "", "server closed the connection");
    }
}

static void on_eof(se_smtp *s)
{
    if (s->state == ST_QUIT) { /* RFC 5321 4.1.1.10: closing is what we asked */
        s->state = s->after_quit;
        s->sync = 0;
    } else if (s->state == ST_RSET) { /* keep the transaction's error */
        s->state = ST_FAILED;
        s->sync = 0;
    } else if (s->state == ST_GREETING) {
        se_smtp_fail(s, 0, SCALR_EMAIL_EIO, "CONNECT",
                     "server closed the connection before the greeting");
    } else {
        const char *st = stage_of(s);
        se_smtp_fail(s, 0, SCALR_EMAIL_EIO, st, "server closed the connection during %s", st);
    }
}

se_smtp_want se_smtp_step(se_smtp *s)
{
    for (;;) {
        switch (s->state) {
        case ST_FAILED: return SE_SMTP_FAILED;
        case ST_DONE: return SE_SMTP_DONE;
        default: break;
        }
        if (s->out.len)
            return SE_SMTP_WRITE;
        if (s->state == ST_TLS)
            return SE_SMTP_TLS;
        if (se_smtp_tx_fill(s)) /* the next piece of a message */
            continue;
        if (s->state == ST_IDLE) {
            /* Reported once as IDLE, so a transaction's outcome is seen
             * first; on the next step unsolicited bytes break the session. */
            if ((s->in.len || s->eof) && s->idle_told) {
                idle_input(s);
                continue;
            }
            s->idle_told = 1;
            return SE_SMTP_IDLE;
        }
        if (next_reply(s))
            continue;
        if (s->eof) {
            on_eof(s);
            continue;
        }
        return SE_SMTP_READ;
    }
}

const char *se_smtp_out(se_smtp *s, size_t *len)
{
    *len = s->out.len;
    return s->out.data ? s->out.data : "";
}

void se_smtp_sent(se_smtp *s, size_t n)
{
    se_buf_consume(&s->out, n < s->out.len ? n : s->out.len);
    if (!s->out.len)
        wipe_out(s); /* credentials do not linger in freed capacity */
}

int se_smtp_feed(se_smtp *s, const char *data, size_t n)
{
    if (s->state == ST_FAILED || s->state == ST_DONE || n == 0)
        return 0;
    if (s->state == ST_TLS) {
        /* RFC 3207 4.2: nothing from before the handshake may be used. */
        se_smtp_fail(s, 0, SCALR_EMAIL_ETLS, "TLS",
                     "server sent data after the STARTTLS reply "
                     "(possible injection, CVE-2021-22947 class)");
        return 0;
    }
    if (n > IN_MAX || s->in.len > IN_MAX - n) {
        se_smtp_fail(s, 0, SCALR_EMAIL_EPROTOCOL, stage_of(s),
                     "server sent more data than a reply may hold");
        return 0;
    }
    if (se_buf_append(&s->in, data, n) < 0) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, stage_of(s), "out of memory");
        return -1;
    }
    /* Only a line end can complete a reply; an overlong line is an error. */
    size_t i = n;
    while (i && data[i - 1] != '\n')
        i--;
    if (i) {
        s->in_tail = n - i;
        s->in_ready = 1;
    } else {
        s->in_tail += n;
    }
    if (s->in_tail > SE_REPLY_MAX_LINE + 1)
        s->in_ready = 1;
    return 0;
}

void se_smtp_eof(se_smtp *s)
{
    s->eof = 1;
    s->in_ready = 1;
}

void se_smtp_tls_started(se_smtp *s)
{
    if (s->state == ST_TLS) {
        /* RFC 3207 4.2: forget everything learnt before TLS; ask again. */
        s->tls_active = 1;
        se_smtp_forget_caps(s);
        se_buf_reset(&s->in);
        s->in_tail = 0;
        s->in_ready = 0;
        send_ehlo(s);
    } else if (s->state == ST_GREETING && s->tls == SCALR_EMAIL_TLS_IMPLICIT && !s->in.len &&
               !s->tls_active) {
        s->tls_active = 1;
    } else if (s->state != ST_FAILED && s->state != ST_DONE) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ETLS, "TLS", "TLS started at an unexpected point");
    }
}

void se_smtp_quit(se_smtp *s)
{
    if (s->state == ST_IDLE) {
        if (s->in.len || s->eof) { /* out of step or gone: just close */
            s->state = ST_DONE;
            return;
        }
        s->after_quit = ST_DONE;
    } else if (s->state == ST_FAILED && s->sync && !s->in.len && !s->eof) {
        /* A clean failure (e.g. 535): say goodbye, keep the error. */
        s->after_quit = ST_FAILED;
    } else {
        return;
    }
    se_smtp_tx_clear(s);
    scalr_email_error keep = s->err;
    s->state = ST_QUIT;
    if (se_smtp_cmd(s, NULL, "QUIT") < 0 && s->after_quit == ST_FAILED)
        s->err = keep;
}

int se_smtp_noop(se_smtp *s)
{
    if (!se_smtp_reusable(s))
        return -1;
    s->state = ST_NOOP;
    return se_smtp_cmd(s, NULL, "NOOP");
}

void se_smtp_abort(se_smtp *s, scalr_email_code code, const char *what)
{
    if (s->state == ST_DONE)
        return;
    if (s->state == ST_QUIT && s->after_quit == ST_FAILED) {
        s->state = ST_FAILED; /* the first failure is the one that matters */
        s->sync = 0;
        wipe_out(s);
        return;
    }
    se_smtp_fail(s, 0, code, stage_of(s), "%s", what ? what : scalr_email_strerror(code));
}

int se_smtp_last_ok(const se_smtp *s)
{
    return s->last_ok;
}

const scalr_email_error *se_smtp_error(const se_smtp *s)
{
    return &s->err;
}

unsigned se_smtp_caps(const se_smtp *s)
{
    return s->caps;
}

unsigned se_smtp_auth_mechs(const se_smtp *s)
{
    return s->mechs;
}

unsigned long se_smtp_size_limit(const se_smtp *s)
{
    return s->size_limit;
}

const char *se_smtp_greeting(const se_smtp *s)
{
    return s->greeting.data ? s->greeting.data : "";
}

const char *se_smtp_extensions(const se_smtp *s)
{
    return s->ext.data ? s->ext.data : "";
}

const char *se_smtp_auth_used(const se_smtp *s)
{
    return s->auth_used;
}

int se_smtp_authenticated(const se_smtp *s)
{
    return s->authenticated;
}

int se_smtp_oauth_expired(const se_smtp *s)
{
    return s->oauth_expired;
}

int se_smtp_eod_queued(const se_smtp *s)
{
    return s->eod;
}

int se_smtp_handed_over(const se_smtp *s)
{
    return s->handed;
}

int se_smtp_reusable(const se_smtp *s)
{
    return s->state == ST_IDLE && !s->in.len && !s->eof;
}

unsigned long se_smtp_replies(const se_smtp *s)
{
    return s->n_replies;
}

const char *se_smtp_partial(const se_smtp *s, size_t *len)
{
    *len = s->in.len;
    return s->in.data ? s->in.data : "";
}
