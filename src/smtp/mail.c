/* The mail transaction: MAIL, RCPT..., then DATA + dot-stuffed body or
 * BDAT + payload (RFC 5321 3.3, RFC 2920 PIPELINING, RFC 3030 CHUNKING,
 * RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8).
 *
 * Recipients are all or nothing: when any RCPT is refused the message is
 * never committed, either by RSET or, when DATA already got its 354, by
 * leaving the data unterminated for the driver to drop the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "smtp/engine_int.h"

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its brackets. */
#define ADDR_MAX 254

/* Copy a piece of the message into out (when not NULL) the way it goes on
 * the wire; return the length.  RFC 5321 2.3.8: only CRLF ends a line, so
 * a bare CR or bare LF becomes CRLF (SMTP smuggling, CVE-2023-51764 class);
 * a message that does not end with CRLF gets one.  With `stuff`, RFC 5321
 * 4.5.2: a line that starts with "." gets another, the first line
 * included.  *bol and *cr carry the state from one piece to the next (a CR
 * at the end of a piece waits for the next one); `last` ends the message. */
static size_t canon(const char *m, size_t len, int stuff, int last, int *bol, int *cr, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = m[i];
        if (*cr) {
            *cr = 0;
            if (out)
                memcpy(out + o, "\r\n", 2);
            o += 2;
            *bol = 1;
            if (c == '\n')
                continue;
        }
        if (c == '\r') {
            *cr = 1;
            continue;
        }
        if (c == '\n') {
            if (out)
                memcpy(out + o, "\r\n", 2);
            o += 2;
            *bol = 1;
            continue;
        }
        if (*bol && stuff && c == '.') {
            if (out)
                out[o] = '.';
            o++;
        }
        if (out)
            out[o] = c;
        o++;
        *bol = 0;
    }
    if (last && (*cr || !*bol)) {
        if (out)
            memcpy(out + o, "\r\n", 2);
        o += 2;
        *cr = 0;
        *bol = 1;
    }
    return o;
}

/* The size of a whole message on the wire. */
static size_t canon_size(const char *m, size_t len, int stuff)
{
    int bol = 1, cr = 0;
    return canon(m, len, stuff, 1, &bol, &cr, NULL);
}

/* Defense in depth: the composer validated the addresses, but nothing that
 * can end a command or leave the angle brackets may reach the wire. */
static int addr_ok(const char *a, int utf8, int may_be_empty)
{
    size_t n = strlen(a);
    if ((!n && !may_be_empty) || n > ADDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
            return 0;
        if (c >= 0x80 && !utf8) /* RFC 6531 3.4: only with SMTPUTF8 */
            return 0;
    }
    return 1;
}

static void tx_free(struct se_tx *t)
{
    if (t->rcpt) {
        for (size_t i = 0; i < t->n_rcpt; i++)
            free(t->rcpt[i]);
        free(t->rcpt);
    }
    free(t->from);
    free(t->dsn_mail);
    free(t->notify);
    memset(t, 0, sizeof *t);
}

void se_smtp_tx_clear(se_smtp *s)
{
    tx_free(&s->tx);
    tx_free(&s->next);
    s->has_next = 0;
}

const char *se_smtp_tx_stage(const se_smtp *s)
{
    if (s->tx.phase != PH_FRONT)
        return "DATA";
    if (s->tx.replied == 0)
        return "MAIL";
    return s->tx.replied <= s->tx.n_rcpt ? "RCPT" : "DATA";
}

/* se_smtp_mail's message as a source of one piece. */
static int whole_next(void *arg, const char **p, size_t *n, scalr_email_error *err)
{
    se_smtp *s = arg;
    (void)err;
    *p = s->tx.msg_given ? "" : s->tx.msg;
    *n = s->tx.msg_given ? 0 : s->tx.len;
    s->tx.msg_given = 1;
    return 0;
}

/* The next piece from the source; *last once the message is complete.
 * -1: the engine failed (the source's error, or a source that broke its
 * size promise: the data is never ended, so nothing is committed). */
static int next_piece(se_smtp *s, const char **p, size_t *n, int *last)
{
    *p = "";
    *n = 0;
    if (s->tx.consumed < s->tx.src.size) {
        scalr_email_error e;
        se_error_clear(&e);
        if (s->tx.src.next(s->tx.src.arg, p, n, &e) < 0) {
            if (e.code == SCALR_EMAIL_OK)
                se_fail(&e, SCALR_EMAIL_EFILE, "DATA", "the message could not be read");
            s->err = e;
            se_smtp_fail(s, 0, e.code, e.stage[0] ? e.stage : "DATA", "%s", e.message);
            return -1;
        }
        if (*n == 0 || *n > s->tx.src.size - s->tx.consumed) {
            se_smtp_fail(s, 0, SCALR_EMAIL_EFILE, "DATA",
                         "the message changed size while it was being sent");
            return -1;
        }
        s->tx.consumed += *n;
    }
    *last = s->tx.consumed == s->tx.src.size;
    return 0;
}

/* Queue one piece, canonicalised (and dot-stuffed for DATA); with `bdat`
 * preceded by its BDAT command (LAST on the final piece when the
 * transaction commits with it). */
static int put_piece(se_smtp *s, int bdat)
{
    const char *p;
    size_t n;
    int last;
    if (next_piece(s, &p, &n, &last) < 0)
        return -1;
    int dot = !bdat;
    int bol = s->tx.bol, cr = s->tx.cr;
    size_t out_n = canon(p, n, dot, last, &bol, &cr, NULL);
    if (bdat) { /* RFC 3030 2: exact octet count, no dot-stuffing */
        int rc = last && s->tx.final == FIN_BDAT_LAST ? se_smtp_cmd(s, NULL, "BDAT %zu LAST", out_n)
                                                      : se_smtp_cmd(s, NULL, "BDAT %zu", out_n);
        if (rc < 0)
            return -1;
        s->tx.chunks_sent++;
    }
    if (se_buf_reserve(&s->out, out_n + 3) < 0) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, "DATA", "out of memory");
        return -1;
    }
    s->handed = 1; /* from here on the message may reach the server */
    canon(p, n, dot, last, &s->tx.bol, &s->tx.cr, s->out.data + s->out.len);
    s->out.len += out_n;
    if (last && dot) { /* RFC 5321 4.1.1.4: end of data */
        memcpy(s->out.data + s->out.len, ".\r\n", 3);
        s->out.len += 3;
        s->tx.phase = PH_DOT;
        s->pending++; /* its reply, like a command's */
    }
    if (last && (dot || s->tx.final == FIN_BDAT_LAST))
        s->eod = 1;
    s->out.data[s->out.len] = '\0';
    s->tx.all_sent = last;
    char shown[64];
    int sl = snprintf(shown, sizeof shown, "<message: %zu bytes>", out_n);
    se_smtp_trace(s, 'C', shown, (size_t)sl); /* never the content */
    return 0;
}

/* RFC 3030 4.2 allows BDATs in a row; bound how many go unanswered, so a
 * server that refused the first does not get the whole message first. */
#define CHUNKS_IN_FLIGHT 16

int se_smtp_tx_fill(se_smtp *s)
{
    if (s->state != ST_TX || s->out.len || s->tx.all_sent)
        return 0;
    if (s->tx.phase == PH_BODY) {
        put_piece(s, 0); /* on failure the state changed: also progress */
        return 1;
    }
    if (s->tx.phase != PH_FRONT || s->tx.final == FIN_DATA || !s->tx.chunks_sent || s->tx.failed)
        return 0;
    size_t open = s->tx.chunks_sent - s->tx.chunks_replied;
    if (open >= CHUNKS_IN_FLIGHT || (!s->tx.pipelining && open))
        return 0;
    put_piece(s, 1);
    return 1;
}

/* RFC 3461 4.2: ORCPT=rfc822;xtext, or RFC 6533 3: utf-8;addr with
 * \x{HH} for '+', '=', '\\' and controls.  Written to out (cap n). */
static void orcpt(char *out, size_t n, const char *addr)
{
    int utf8 = 0;
    for (const char *p = addr; *p; p++)
        utf8 |= (unsigned char)*p >= 0x80;
    size_t o = (size_t)snprintf(out, n, " ORCPT=%s;", utf8 ? "utf-8" : "rfc822");
    for (const unsigned char *p = (const unsigned char *)addr; *p && o + 8 < n; p++) {
        int esc = *p < 33 || *p == 127 || *p == '+' || *p == '=' || (utf8 && *p == '\\');
        if (!esc || (!utf8 && *p >= 0x80))
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, n - o, utf8 ? "\\x{%02X}" : "+%02X", *p);
    }
    out[o] = '\0';
}

/* Write front command k: 0 MAIL, 1..n RCPT, n+1 DATA or BDAT. */
static int send_front(se_smtp *s, size_t k)
{
    size_t n = s->tx.n_rcpt;
    s->tx.sent = k + 1;
    if (k == 0) {
        char size[40] = "";
        if (s->caps & SE_CAP_SIZE) /* RFC 1870 3 */
            snprintf(size, sizeof size, " SIZE=%zu", s->tx.size);
        return se_smtp_cmd(s, NULL, "MAIL FROM:<%s>%s%s%s%s", s->tx.from, size,
                           s->tx.is8bit ? " BODY=8BITMIME" : "", s->tx.smtputf8 ? " SMTPUTF8" : "",
                           s->tx.dsn_mail ? s->tx.dsn_mail : "");
    }
    if (k <= n) {
        char notify[64] = "", orc[1100] = "";
        if (s->tx.notify)
            snprintf(notify, sizeof notify, " NOTIFY=%s", s->tx.notify);
        if (s->tx.orcpt)
            orcpt(orc, sizeof orc, s->tx.rcpt[k - 1]);
        return se_smtp_cmd(s, NULL, "RCPT TO:<%s>%s%s", s->tx.rcpt[k - 1], notify, orc);
    }
    if (s->tx.final == FIN_DATA)
        return se_smtp_cmd(s, NULL, "DATA");
    return put_piece(s, 1); /* the first chunk, in the same flight */
}

static int copy_envelope(se_smtp *s, const se_smtp_envelope *env)
{
    s->tx.from = strdup(env->mail_from);
    s->tx.rcpt = calloc(env->n_rcpt, sizeof *s->tx.rcpt);
    if (!s->tx.from || !s->tx.rcpt)
        return -1;
    s->tx.n_rcpt = env->n_rcpt;
    if (env->dsn && (s->caps & SE_CAP_DSN)) {
        char mail[300];
        snprintf(mail, sizeof mail, "%s%s%s%s", env->dsn_ret ? " RET=" : "",
                 env->dsn_ret ? env->dsn_ret : "", env->dsn_envid ? " ENVID=" : "",
                 env->dsn_envid ? env->dsn_envid : "");
        s->tx.orcpt = 1;
        if (!(s->tx.dsn_mail = strdup(mail)) ||
            (env->dsn_notify && !(s->tx.notify = strdup(env->dsn_notify))))
            return -1;
    } else if (env->dsn) {
        static const char why[] =
            "the server does not advertise DSN: sending without NOTIFY, RET, ENVID and ORCPT";
        se_smtp_trace(s, '*', why, sizeof why - 1);
    }
    for (size_t i = 0; i < env->n_rcpt; i++)
        if (!(s->tx.rcpt[i] = strdup(env->rcpt[i])))
            return -1;
    return 0;
}

/* Checks that need no server round trip; 0 when the transaction may start,
 * else err is filled and the session stays IDLE and reusable. */
static int preflight(se_smtp *s, const se_smtp_envelope *env, const char *msg, size_t len)
{
    scalr_email_error *e = &s->err;
    if (!env || !env->mail_from || !env->n_rcpt || !env->rcpt || (!msg && len)) {
        se_fail(e, SCALR_EMAIL_EINVAL, "MAIL", "no sender, recipient or message to send");
        return -1;
    }
    if (!addr_ok(env->mail_from, env->needs_smtputf8, 1)) {
        se_fail(e, SCALR_EMAIL_EINVAL, "MAIL",
                "sender address not usable in MAIL FROM (control character, angle bracket, "
                "length, or non-ASCII without SMTPUTF8)");
        return -1;
    }
    for (size_t i = 0; i < env->n_rcpt; i++) {
        if (!env->rcpt[i] || !addr_ok(env->rcpt[i], env->needs_smtputf8, 0)) {
            se_fail(e, SCALR_EMAIL_EINVAL, "RCPT",
                    "recipient address not usable in RCPT TO (empty, control character, angle "
                    "bracket, length, or non-ASCII without SMTPUTF8)");
            if (env->rcpt[i])
                se_copy_line(e->recipient, sizeof e->recipient, env->rcpt[i], strlen(env->rcpt[i]));
            return -1;
        }
    }
    /* RFC 1870 4: do not send what the server announced it would refuse. */
    if (s->size_limit && s->tx.size > s->size_limit) {
        se_fail(e, SCALR_EMAIL_ETOOBIG, "MAIL",
                "message of %zu bytes exceeds the server's SIZE limit of %lu bytes", s->tx.size,
                s->size_limit);
        return -1;
    }
    /* RFC 6531 3.4 / RFC 6530: there is no downgrade; refuse before MAIL. */
    if (env->needs_smtputf8 && !(s->caps & SE_CAP_SMTPUTF8)) {
        se_fail(e, SCALR_EMAIL_EUNSUPPORTED, "MAIL",
                "the message needs SMTPUTF8 (non-ASCII address) but the server does not offer it");
        return -1;
    }
    if (env->is_8bit && !(s->caps & SE_CAP_8BITMIME)) { /* RFC 6152 3 */
        se_fail(e, SCALR_EMAIL_EUNSUPPORTED, "MAIL",
                "the message is 8-bit but the server does not offer 8BITMIME");
        return -1;
    }
    return 0;
}

/* Start a transaction with the message from src; size is the SIZE= value. */
static int start_tx(se_smtp *s, const se_smtp_envelope *env, const se_smtp_source *src, size_t size,
                    const char *msg, size_t len)
{
    int chunking = (s->caps & SE_CAP_CHUNKING) != 0;
    s->tx.size = size;
    if (preflight(s, env, msg, len) < 0) {
        s->tx.size = 0;
        return 0;
    }
    if (copy_envelope(s, env) < 0) {
        se_smtp_fail(s, 0, SCALR_EMAIL_ENOMEM, "MAIL", "out of memory");
        return -1;
    }
    s->tx.src = *src;
    if (src->next == whole_next)
        s->tx.src.arg = s;
    s->tx.msg = msg ? msg : "";
    s->tx.len = len;
    s->tx.bol = 1;
    s->tx.smtputf8 = env->needs_smtputf8;
    s->tx.is8bit = env->is_8bit;
    s->tx.pipelining = (s->caps & SE_CAP_PIPELINING) != 0;
    if (!chunking)
        s->tx.final = FIN_DATA;
    else if (s->tx.pipelining && env->n_rcpt > 1)
        s->tx.final = FIN_BDAT_MORE; /* commit only once every RCPT is known good */
    else
        s->tx.final = FIN_BDAT_LAST; /* one round trip */
    s->tx.phase = PH_FRONT;
    s->state = ST_TX;
    if (s->tx.pipelining) {
        /* RFC 2920 3.1: MAIL, RCPT... and the group's last command (DATA
         * or the first BDAT) in one write. */
        for (size_t k = 0; k <= env->n_rcpt + 1; k++)
            if (send_front(s, k) < 0)
                break;
    } else {
        send_front(s, 0);
    }
    return s->state == ST_FAILED && s->err.code == SCALR_EMAIL_ENOMEM ? -1 : 0;
}

/* 1 when a transaction may not start: not idle, or the stream is out of
 * step (then the engine fails on its own and the caller sees it). */
static int begin(se_smtp *s, int *refused)
{
    *refused = 0;
    if (!s || s->state != ST_IDLE)
        return 1;
    se_smtp_tx_clear(s);
    se_error_clear(&s->err);
    s->last_ok = 0;
    s->handed = 0;
    s->eod = 0;
    s->idle_told = 0;
    if (s->in.len || s->eof) { /* unsolicited bytes: the stream is not in step */
        s->idle_told = 1;
        se_smtp_step(s);
        *refused = 1;
        return 1;
    }
    return 0;
}

int se_smtp_mail(se_smtp *s, const se_smtp_envelope *env, const char *msg, size_t len)
{
    int refused;
    if (begin(s, &refused))
        return refused ? 0 : -1;
    int chunking = (s->caps & SE_CAP_CHUNKING) != 0;
    const se_smtp_source whole = {.next = whole_next, .size = msg ? len : 0};
    return start_tx(s, env, &whole, msg ? canon_size(msg, len, !chunking) : 0, msg, len);
}

int se_smtp_mail_source(se_smtp *s, const se_smtp_envelope *env, const se_smtp_source *src)
{
    int refused;
    if (begin(s, &refused))
        return refused ? 0 : -1;
    if (!src || !src->next)
        return start_tx(s, env, &(se_smtp_source){.next = whole_next}, 0, NULL, 1);
    /* RFC 1870 3: the size before dot-stuffing; the source is canonical. */
    return start_tx(s, env, src, src->size, NULL, 0);
}

int se_smtp_can_queue(const se_smtp *s)
{
    return s && s->state == ST_TX && s->tx.phase == PH_DOT && s->tx.final == FIN_DATA &&
           s->tx.pipelining && !s->has_next && !(s->caps & SE_CAP_CHUNKING);
}

int se_smtp_mail_next(se_smtp *s, const se_smtp_envelope *env, const char *msg, size_t len,
                      scalr_email_error *why)
{
    if (!se_smtp_can_queue(s))
        return -1;
    /* Build the queued transaction in s->tx, so the helpers apply, with
     * the current one and its outcome so far set aside. */
    struct se_tx cur = s->tx;
    scalr_email_error cur_err = s->err;
    memset(&s->tx, 0, sizeof s->tx);
    se_error_clear(&s->err);
    s->tx.size = msg ? canon_size(msg, len, 1) : 0;
    int rc = 0;
    if (preflight(s, env, msg, len) < 0) {
        if (why)
            *why = s->err;
        rc = 1;
    } else if (copy_envelope(s, env) < 0) {
        rc = -1;
    } else {
        s->tx.src = (se_smtp_source){.next = whole_next, .arg = s, .size = msg ? len : 0};
        s->tx.msg = msg ? msg : "";
        s->tx.len = len;
        s->tx.bol = 1;
        s->tx.smtputf8 = env->needs_smtputf8;
        s->tx.is8bit = env->is_8bit;
        s->tx.pipelining = 1;
        s->tx.final = FIN_DATA;
        s->tx.phase = PH_FRONT;
        /* RFC 2920 3.1: they follow the end of data in the same flight. */
        for (size_t k = 0; k <= env->n_rcpt + 1 && s->state == ST_TX; k++)
            send_front(s, k);
        if (s->state != ST_TX)
            rc = -1; /* a command could not be written: the session failed */
    }
    if (rc == 0) {
        s->next = s->tx;
        s->has_next = 1;
    } else {
        tx_free(&s->tx);
    }
    s->tx = cur;
    if (s->state == ST_TX)
        s->err = cur_err;
    return rc;
}

int se_smtp_take_done(se_smtp *s, int *ok, scalr_email_error *e)
{
    if (!s->done_ready)
        return 0;
    s->done_ready = 0;
    *ok = s->done_ok;
    if (e)
        *e = s->done_err;
    return 1;
}

static scalr_email_code code_for(const se_reply *r)
{
    if (r->code / 100 == 4)
        return SCALR_EMAIL_ETRANSIENT;
    /* RFC 1870 / RFC 3463: 552 or 5.3.4 is "too big" */
    if (r->code == 552 || strcmp(r->enhanced, "5.3.4") == 0)
        return SCALR_EMAIL_ETOOBIG;
    return SCALR_EMAIL_EREJECTED;
}

/* Remember the first failure; the transaction then ends without a message. */
static void note_failure(se_smtp *s, const se_reply *r, size_t k)
{
    if (s->tx.failed)
        return;
    s->tx.failed = 1;
    scalr_email_error *e = &s->tx.saved;
    char what[400];
    if (k == 0) {
        snprintf(what, sizeof what, "sender <%s> refused", s->tx.from);
        se_smtp_error_reply(e, code_for(r), "MAIL", r, what);
    } else if (k <= s->tx.n_rcpt) {
        const char *a = s->tx.rcpt[k - 1];
        snprintf(what, sizeof what, "recipient <%s> refused", a);
        se_smtp_error_reply(e, code_for(r), "RCPT", r, what);
        se_copy_line(e->recipient, sizeof e->recipient, a, strlen(a));
    } else {
        scalr_email_code c = code_for(r);
        se_smtp_error_reply(e, c, "DATA", r,
                            c == SCALR_EMAIL_ETOOBIG      ? "message too big for the server"
                            : c == SCALR_EMAIL_ETRANSIENT ? "server deferred the message"
                                                          : "server rejected the message");
    }
}

/* End a failed transaction with RSET; the saved error is the outcome. */
static void start_rset(se_smtp *s)
{
    s->err = s->tx.saved;
    if (se_smtp_cmd(s, NULL, "RSET") == 0)
        s->state = ST_RSET;
    else
        s->err = s->tx.saved; /* FAILED, but with the transaction's reason */
}

void se_smtp_rset_reply(se_smtp *s, const se_reply *r)
{
    if (r->code / 100 == 2 && !s->extra) {
        se_smtp_go_idle(s); /* in step again: reusable */
    } else {
        s->state = ST_FAILED; /* keep the transaction's error */
        s->sync = 0;
    }
}

/* A transaction is over: IDLE, or on with the one queued behind it. */
static void finish(se_smtp *s)
{
    if (!s->has_next) {
        se_smtp_go_idle(s);
        return;
    }
    s->done_ready = 1;
    s->done_ok = s->last_ok;
    s->done_err = s->err;
    tx_free(&s->tx);
    s->tx = s->next;
    memset(&s->next, 0, sizeof s->next);
    s->has_next = 0;
    s->last_ok = 0;
    s->handed = 0;
    s->eod = 0;
    se_error_clear(&s->err);
}

static void success(se_smtp *s, const se_reply *r)
{
    se_smtp_error_reply(&s->err, SCALR_EMAIL_OK, "", r, "message accepted");
    s->last_ok = 1;
    finish(s);
}

static void unexpected(se_smtp *s, const se_reply *r, const char *stage)
{
    se_smtp_fail_reply(s, 0, SCALR_EMAIL_EPROTOCOL, stage, r, "unexpected reply in %s", stage);
}

static void final_cmd_reply(se_smtp *s, const se_reply *r)
{
    int cls = r->code / 100;
    switch (s->tx.final) {
    case FIN_DATA:
        if (r->code == 354 && s->tx.failed) {
            /* RFC 2920 3.1 / RFC 5321 3.3: the server would deliver to the
             * accepted recipients; never send the data or its ".".  The
             * driver drops the connection, which aborts the transaction. */
            s->err = s->tx.saved;
            s->state = ST_FAILED;
            s->sync = 0;
            s->last_ok = 0;
        } else if (r->code == 354) {
            s->tx.phase = PH_BODY; /* se_smtp_tx_fill sends it piece by piece */
        } else if (cls == 4 || cls == 5) {
            note_failure(s, r, s->tx.n_rcpt + 1);
            start_rset(s);
        } else {
            unexpected(s, r, "DATA");
        }
        break;
    case FIN_BDAT_LAST:
    case FIN_BDAT_MORE:
        s->tx.chunks_replied++;
        if (cls != 2 && cls != 4 && cls != 5) {
            unexpected(s, r, "DATA");
            break;
        }
        if (s->tx.failed || cls != 2)
            note_failure(s, r, s->tx.n_rcpt + 1);
        if (s->tx.chunks_replied < s->tx.chunks_sent)
            break; /* more chunk replies to come */
        if (s->tx.failed) {
            /* RFC 3030 2: the chunks are discarded; RSET ends it cleanly. */
            start_rset(s);
        } else if (!s->tx.all_sent) {
            break; /* se_smtp_tx_fill sends the next chunk */
        } else if (s->tx.final == FIN_BDAT_LAST) {
            success(s, r);
        } else if (se_smtp_cmd(s, NULL, "BDAT 0 LAST") == 0) {
            s->eod = 1;
            s->tx.phase = PH_LAST;
        }
        break;
    }
}

void se_smtp_tx_reply(se_smtp *s, const se_reply *r)
{
    int cls = r->code / 100;
    size_t n = s->tx.n_rcpt;
    if (s->tx.phase == PH_DOT || s->tx.phase == PH_LAST) {
        if (cls == 2) {
            success(s, r);
        } else if (cls == 4 || cls == 5) {
            note_failure(s, r, n + 1);
            if (s->tx.phase == PH_LAST) {
                start_rset(s);
            } else { /* after end of data the transaction is over */
                s->err = s->tx.saved;
                s->last_ok = 0;
                finish(s);
            }
        } else {
            unexpected(s, r, "DATA");
        }
        return;
    }
    size_t k = s->tx.replied++;
    if (k > n) {
        final_cmd_reply(s, r);
        return;
    }
    if (cls == 4 || cls == 5) {
        note_failure(s, r, k); /* RFC 2920 3.1: keep reading the others */
    } else if (cls != 2) {
        unexpected(s, r, k ? "RCPT" : "MAIL");
        return;
    }
    if (!s->tx.pipelining) {
        if (s->tx.failed)
            start_rset(s); /* RFC 5321 4.1.1.5 */
        else
            send_front(s, k + 1);
    }
}
