/* The inbox's SMTP server session (smtpd.h): one explicit state machine
 * over byte buffers, in the manner of OpenSMTPD's smtp_session.c.
 *
 * Input is parsed in place from `in` (consumed up to in_off); replies are
 * appended to `out`.  Each command is handled whole or not at all, so that a
 * chaos delay can hold it and run it again after the wait.  A chaos reply
 * answers the command instead of performing it. */
#include "smtpd.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"

#define CMD_MAX 512            /* RFC 5321 4.5.3.1.4: command line, CRLF included */
#define AUTH_MAX (512 + 12288) /* RFC 4954 4: AUTH command and responses        */
#define PATH_MAX_LEN 256       /* RFC 5321 4.5.3.1.3                             */
#define LOCAL_MAX 64           /* RFC 5321 4.5.3.1.1                             */
#define DOMAIN_MAX 255         /* RFC 5321 4.5.3.1.2                             */
#define RCPT_MAX 1000
#define ERROR_MAX 100           /* syntax errors before we hang up                */
#define OUT_HIGH 65536          /* flush early: a client that never reads stalls  */
#define KEEP_MSG_CAP (1u << 20) /* larger message buffers are freed after use     */

typedef enum state {
    S_GREETING,
    S_CMD,
    S_REFUSED,    /* greeting was 554: only QUIT (RFC 5321 3.1) */
    S_AUTH_PLAIN, /* waiting for the PLAIN response             */
    S_AUTH_USER,  /* LOGIN: user name                           */
    S_AUTH_PASS,  /* LOGIN: password                            */
    S_DATA,
    S_BDAT,
    S_MSG_END, /* message complete: verdict, then store      */
    S_DEAD
} state;

enum { DONE, HELD }; /* a command handler's outcome */

struct ib_smtpd {
    const ib_smtpd_conf *conf;
    char *peer;
    state st;
    int in_tls;
    se_buf in;
    size_t in_off;
    se_buf out;
    int closing, abrupt, tls_pending, msg_ready, discard_input, skipping, errors;
    unsigned delay_ms, delay_out;
    ib_verdict held;
    int have_held;

    char *helo;
    int esmtp, authed;
    char *login_user; /* AUTH LOGIN between its two steps */

    /* the transaction */
    int in_mail, smtputf8, used_bdat;
    char *mail_from;
    char **rcpt;
    size_t n_rcpt, rcpt_tried;
    se_buf msg;
    uint64_t msg_size;
    int too_big, msg_oom, bol;
    unsigned char prev;
    size_t bare_lf;
    uint64_t chunk_left;
    int chunk_last;
    char chunk_refusal[96]; /* a refused BDAT's reply, sent after its bytes */
};

static void reply(ib_smtpd *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(ib_smtpd *s, const char *fmt, ...)
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
static void error(ib_smtpd *s, const char *text)
{
    reply(s, "%s", text);
    if (++s->errors >= ERROR_MAX) {
        reply(s, "421 4.7.0 %s Error: too many errors", s->conf->hostname);
        s->closing = 1;
    }
}

static void reset_transaction(ib_smtpd *s)
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
    s->msg_size = 0;
    s->too_big = s->msg_oom = 0;
    s->bare_lf = 0;
}

ib_smtpd *ib_smtpd_new(const ib_smtpd_conf *conf, const char *peer, int in_tls)
{
    ib_smtpd *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conf = conf;
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
        reset_transaction(s);
    free(s->rcpt);
    free(s->peer);
    free(s->helo);
    free(s->login_user);
    se_buf_free(&s->in);
    se_buf_free(&s->out);
    se_buf_free(&s->msg);
    free(s);
}

/* --- small parsers ---------------------------------------------------- */

static int ci_eq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(a, lit, n);
}

static int ci_prefix(const char *a, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && !strncasecmp(a, lit, l);
}

static int valid_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80             ? 0
                   : (c & 0xe0) == 0xc0 ? 1
                   : (c & 0xf0) == 0xe0 ? 2
                   : (c & 0xf8) == 0xf0 ? 3
                                        : 9;
        if (k == 9 || (k == 1 && c < 0xc2) || (k == 3 && c > 0xf4) || i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
        if ((k == 2 && c == 0xe0 && p[i + 1] < 0xa0) || (k == 2 && c == 0xed && p[i + 1] > 0x9f) ||
            (k == 3 && c == 0xf0 && p[i + 1] < 0x90) || (k == 3 && c == 0xf4 && p[i + 1] > 0x8f))
            return 0;
        i += k + 1;
    }
    return 1;
}

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
    const char *colon = strchr(s->conf->auth, ':');
    size_t want_ul = colon ? (size_t)(colon - s->conf->auth) : strlen(s->conf->auth);
    int u = ul == want_ul && !memcmp(user, s->conf->auth, ul);
    int p = same(pass, pl, colon ? colon + 1 : "");
    return u & p;
}

/* "<path>" at the start of a (after optional spaces): the address is
 * malloc'd into *addr, *end points after '>'.  NULL or a reply text. */
static const char *parse_path(const char *a, size_t n, int is_rcpt, char **addr, size_t *end,
                              int *eight_bit)
{
    const char *bad = is_rcpt ? "501 5.1.3 Error: bad recipient address syntax"
                              : "501 5.1.7 Error: bad sender address syntax";
    size_t i = 0;
    while (i < n && a[i] == ' ') /* lenient: "MAIL FROM: <a@b>" */
        i++;
    if (i == n || a[i] != '<')
        return is_rcpt ? "501 5.5.4 Syntax: RCPT TO:<address>"
                       : "501 5.5.4 Syntax: MAIL FROM:<address>";
    size_t start = ++i, at = 0;
    int quoted = 0, has_at = 0;
    *eight_bit = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x20 || c == 0x7f)
            return bad;
        if (c >= 0x80)
            *eight_bit = 1;
        if (quoted) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '"')
                quoted = 0;
            continue;
        }
        if (c == '"')
            quoted = 1;
        else if (c == '>')
            break;
        else if (c == '<' || c == ' ')
            return bad;
        else if (c == '@')
            at = i, has_at = 1;
    }
    if (i == n || quoted)
        return bad;
    size_t stop = i;
    *end = i + 1;
    /* RFC 5321 4.1.2: an obsolete source route "@a,@b:" is ignored. */
    if (start < stop && a[start] == '@') {
        const char *colon = memchr(a + start, ':', stop - start);
        if (!colon)
            return bad;
        start = (size_t)(colon - a) + 1;
    }
    size_t len = stop - start;
    if (stop - start + 2 > PATH_MAX_LEN)
        return is_rcpt ? "501 5.1.3 Error: recipient address too long"
                       : "501 5.1.7 Error: sender address too long";
    if (len == 0) {
        if (is_rcpt)
            return bad;
    } else if (!has_at || at < start) {
        /* RFC 5321 4.1.1.3: <Postmaster> needs no domain. */
        if (!is_rcpt || !ci_eq(a + start, len, "postmaster"))
            return bad;
    } else if (at == start || at + 1 == stop || at - start > LOCAL_MAX ||
               stop - at - 1 > DOMAIN_MAX) {
        return bad;
    }
    if (!valid_utf8((const unsigned char *)a + start, len))
        return bad;
    *addr = malloc(len + 1);
    if (!*addr)
        return "452 4.3.1 Error: out of memory";
    memcpy(*addr, a + start, len);
    (*addr)[len] = '\0';
    return NULL;
}

/* Next space-separated word of a[*i..n): returns its length. */
static size_t next_word(const char *a, size_t n, size_t *i, const char **w)
{
    while (*i < n && a[*i] == ' ')
        (*i)++;
    *w = a + *i;
    size_t st = *i;
    while (*i < n && a[*i] != ' ')
        (*i)++;
    return *i - st;
}

static int parse_u64(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* --- chaos ------------------------------------------------------------ */

/* The verdict for this stage.  HELD when a delay must come first: the
 * command is left unconsumed and runs again, with the same verdict, after
 * the driver has waited. */
static int chaos(ib_smtpd *s, ib_stage stage, const char *arg, ib_verdict *v)
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
static int chaos_acts(ib_smtpd *s, const ib_verdict *v)
{
    if (v->act == 2) {
        s->closing = s->abrupt = 1;
        s->st = S_DEAD;
        return 1;
    }
    if (v->act == 1) {
        reply(s, "%d %s", v->code, v->text);
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
    if (chaos(s, IB_STAGE_CONNECT, NULL, &v) == HELD)
        return;
    if (v.act == 2) {
        chaos_acts(s, &v);
        return;
    }
    if (v.act == 1) {
        reply(s, "%d %s", v.code, v.text);
        if (v.code == 421)
            s->closing = 1;
        s->st = v.code / 100 == 2 ? S_CMD : S_REFUSED;
        return;
    }
    reply(s, "220 %s ESMTP scalr-email inbox", s->conf->hostname);
    s->st = S_CMD;
}

static int cmd_helo(ib_smtpd *s, const char *args, size_t n, int esmtp)
{
    if (n == 0) {
        error(s, esmtp ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
        return DONE;
    }
    if (!valid_utf8((const unsigned char *)args, n)) {
        error(s, "501 5.5.4 Error: invalid hostname");
        return DONE;
    }
    ib_verdict v;
    if (chaos(s, IB_STAGE_EHLO, NULL, &v) == HELD)
        return HELD;
    if (chaos_acts(s, &v))
        return DONE;
    char *h = malloc(n + 1);
    if (!h) {
        reply(s, "421 4.3.0 Error: out of memory");
        s->closing = 1;
        return DONE;
    }
    memcpy(h, args, n);
    h[n] = '\0';
    free(s->helo);
    s->helo = h;
    s->esmtp = esmtp;
    reset_transaction(s); /* RFC 5321 4.1.4: EHLO resets like RSET */
    if (!esmtp) {
        reply(s, "250 %s", s->conf->hostname);
        return DONE;
    }
    reply(s, "250-%s", s->conf->hostname);
    reply(s, "250-PIPELINING");                  /* RFC 2920 */
    reply(s, "250-SIZE %zu", s->conf->max_size); /* RFC 1870 */
    reply(s, "250-8BITMIME");                    /* RFC 6152 */
    reply(s, "250-SMTPUTF8");                    /* RFC 6531 */
    reply(s, "250-CHUNKING");                    /* RFC 3030 */
    reply(s, "250-ENHANCEDSTATUSCODES");         /* RFC 2034 */
    if (s->conf->starttls && !s->in_tls)
        reply(s, "250-STARTTLS"); /* RFC 3207 */
    if (s->conf->auth)
        reply(s, "250-AUTH PLAIN LOGIN"); /* RFC 4954 */
    reply(s, "250 HELP");
    return DONE;
}

static void auth_result(ib_smtpd *s, int ok)
{
    s->st = S_CMD;
    if (ok) {
        s->authed = 1;
        reply(s, "235 2.7.0 Authentication successful");
    } else {
        error(s, "535 5.7.8 Error: authentication failed");
    }
}

/* PLAIN (RFC 4616): authzid NUL authcid NUL passwd. */
static void auth_plain(ib_smtpd *s, const char *b64, size_t n)
{
    unsigned char buf[AUTH_MAX];
    long dl = ci_eq(b64, n, "=") ? 0 : b64_decode(b64, n, buf);
    if (dl < 0) {
        s->st = S_CMD;
        error(s, "501 5.5.2 Error: cannot decode response");
        return;
    }
    unsigned char *a = memchr(buf, 0, (size_t)dl);
    unsigned char *b = a ? memchr(a + 1, 0, (size_t)(buf + dl - a - 1)) : NULL;
    if (!b || memchr(b + 1, 0, (size_t)(buf + dl - b - 1))) {
        s->st = S_CMD;
        error(s, "501 5.5.2 Error: malformed PLAIN response");
        return;
    }
    size_t zl = (size_t)(a - buf), ul = (size_t)(b - a - 1);
    int ok = credentials_ok(s, a + 1, ul, b + 1, (size_t)(buf + dl - b - 1));
    /* An authorization identity other than the user's own is not granted. */
    if (zl && (zl != ul || memcmp(buf, a + 1, ul)))
        ok = 0;
    auth_result(s, ok);
}

static int cmd_auth(ib_smtpd *s, const char *args, size_t n)
{
    if (!s->conf->auth) {
        error(s, "503 5.5.1 Error: authentication not enabled");
        return DONE;
    }
    if (!s->helo) {
        error(s, "503 5.5.1 Error: send HELO/EHLO first");
        return DONE;
    }
    if (s->authed) {
        error(s, "503 5.5.1 Error: already authenticated"); /* RFC 4954 4 */
        return DONE;
    }
    if (s->in_mail) {
        error(s, "503 5.5.1 Error: MAIL transaction in progress");
        return DONE;
    }
    size_t i = 0;
    const char *mech, *init;
    size_t ml = next_word(args, n, &i, &mech);
    size_t il = next_word(args, n, &i, &init);
    if (ml == 0 || i < n) {
        error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return DONE;
    }
    ib_verdict v;
    if (chaos(s, IB_STAGE_AUTH, NULL, &v) == HELD)
        return HELD;
    if (chaos_acts(s, &v))
        return DONE;
    if (ci_eq(mech, ml, "PLAIN")) {
        if (il) {
            auth_plain(s, init, il);
        } else {
            reply(s, "334 ");
            s->st = S_AUTH_PLAIN;
        }
    } else if (ci_eq(mech, ml, "LOGIN")) {
        s->st = S_AUTH_USER;
        if (il) {
            s->st = S_AUTH_PASS;
            unsigned char buf[AUTH_MAX];
            long dl = b64_decode(init, il, buf);
            if (dl < 0) {
                s->st = S_CMD;
                error(s, "501 5.5.2 Error: cannot decode response");
                return DONE;
            }
            free(s->login_user);
            s->login_user = malloc((size_t)dl + 1);
            if (s->login_user) {
                memcpy(s->login_user, buf, (size_t)dl);
                s->login_user[dl] = '\0';
            }
        }
        reply(s, s->st == S_AUTH_USER ? "334 VXNlcm5hbWU6" : "334 UGFzc3dvcmQ6");
    } else {
        error(s, "504 5.5.4 Error: unsupported authentication mechanism");
    }
    return DONE;
}

static void auth_response(ib_smtpd *s, const char *line, size_t n)
{
    if (ci_eq(line, n, "*")) { /* RFC 4954 4: the client cancels */
        s->st = S_CMD;
        error(s, "501 5.7.0 Error: authentication cancelled");
        return;
    }
    if (s->st == S_AUTH_PLAIN) {
        auth_plain(s, line, n);
        return;
    }
    unsigned char buf[AUTH_MAX];
    long dl = b64_decode(line, n, buf);
    if (dl < 0) {
        s->st = S_CMD;
        error(s, "501 5.5.2 Error: cannot decode response");
        return;
    }
    if (s->st == S_AUTH_USER) {
        free(s->login_user);
        s->login_user = malloc((size_t)dl + 1);
        if (s->login_user) {
            memcpy(s->login_user, buf, (size_t)dl);
            s->login_user[dl] = '\0';
        }
        s->st = S_AUTH_PASS;
        reply(s, "334 UGFzc3dvcmQ6");
        return;
    }
    const char *u = s->login_user ? s->login_user : "";
    int ok =
        s->login_user && credentials_ok(s, (const unsigned char *)u, strlen(u), buf, (size_t)dl);
    free(s->login_user);
    s->login_user = NULL;
    auth_result(s, ok);
}

static int cmd_mail(ib_smtpd *s, const char *args, size_t n)
{
    if (!s->helo) {
        error(s, "503 5.5.1 Error: send HELO/EHLO first");
        return DONE;
    }
    if (s->conf->auth && !s->authed) {
        reply(s, "530 5.7.0 Error: authentication required"); /* RFC 4954 6 */
        return DONE;
    }
    if (s->in_mail) {
        error(s, "503 5.5.1 Error: nested MAIL command");
        return DONE;
    }
    if (!ci_prefix(args, n, "FROM:")) {
        error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return DONE;
    }
    char *addr = NULL;
    size_t end;
    int eight_bit, utf8 = 0;
    const char *bad = parse_path(args + 5, n - 5, 0, &addr, &end, &eight_bit);
    if (bad) {
        error(s, bad);
        return DONE;
    }
    const char *p = args + 5 + end, *w;
    size_t rest = n - 5 - end, i = 0, wl;
    if (rest && *p != ' ')
        bad = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]";
    while (!bad && (wl = next_word(p, rest, &i, &w)) > 0) {
        uint64_t size;
        if (ci_prefix(w, wl, "SIZE=")) { /* RFC 1870 6 */
            if (parse_u64(w + 5, wl - 5, &size) < 0)
                bad = "501 5.5.4 Error: bad SIZE parameter";
            else if (size > s->conf->max_size)
                bad = "552 5.3.4 Error: message size exceeds fixed maximum message size";
        } else if (ci_eq(w, wl, "BODY=7BIT") || ci_eq(w, wl, "BODY=8BITMIME")) {
            /* RFC 6152 */
        } else if (ci_eq(w, wl, "SMTPUTF8")) {
            utf8 = 1;
        } else if (ci_prefix(w, wl, "AUTH=")) {
            /* RFC 4954 5: accepted and not used */
        } else {
            bad = "555 5.5.4 Error: unsupported MAIL parameter"; /* RFC 5321 4.1.1.11 */
        }
    }
    if (!bad && eight_bit && !utf8)
        bad = "553 5.6.7 Error: non-ASCII address without SMTPUTF8"; /* RFC 6531 3.5 */
    if (bad) {
        free(addr);
        error(s, bad);
        return DONE;
    }
    ib_verdict v;
    if (chaos(s, IB_STAGE_MAIL, addr, &v) == HELD) {
        free(addr);
        return HELD;
    }
    if (chaos_acts(s, &v)) {
        free(addr);
        return DONE;
    }
    s->in_mail = 1;
    s->smtputf8 = utf8;
    s->mail_from = addr;
    reply(s, "250 2.1.0 Ok");
    return DONE;
}

static int cmd_rcpt(ib_smtpd *s, const char *args, size_t n)
{
    if (!s->in_mail) {
        error(s, "503 5.5.1 Error: need MAIL command");
        return DONE;
    }
    if (!ci_prefix(args, n, "TO:")) {
        error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return DONE;
    }
    char *addr = NULL;
    size_t end;
    int eight_bit;
    const char *bad = parse_path(args + 3, n - 3, 1, &addr, &end, &eight_bit);
    if (!bad && end + 3 < n)
        bad = args[3 + end] == ' ' ? "555 5.5.4 Error: unsupported RCPT parameter"
                                   : "501 5.5.4 Syntax: RCPT TO:<address>";
    if (!bad && eight_bit && !s->smtputf8)
        bad = "553 5.6.7 Error: non-ASCII address without SMTPUTF8"; /* RFC 6531 3.5 */
    if (!bad && s->n_rcpt >= RCPT_MAX)
        bad = "452 4.5.3 Error: too many recipients"; /* RFC 5321 4.5.3.1.10 */
    if (bad) {
        free(addr);
        s->rcpt_tried++;
        if (bad[0] == '4')
            reply(s, "%s", bad);
        else
            error(s, bad);
        return DONE;
    }
    ib_verdict v;
    if (chaos(s, IB_STAGE_RCPT, addr, &v) == HELD) {
        free(addr);
        return HELD;
    }
    if (chaos_acts(s, &v)) {
        free(addr);
        s->rcpt_tried++;
        return DONE;
    }
    s->rcpt[s->n_rcpt++] = addr;
    reply(s, "250 2.1.5 Ok");
    return DONE;
}

/* Why a DATA or BDAT cannot start now, or NULL. */
static const char *data_refusal(const ib_smtpd *s)
{
    if (!s->helo)
        return "503 5.5.1 Error: send HELO/EHLO first";
    if (!s->in_mail)
        return "503 5.5.1 Error: need MAIL command";
    if (s->n_rcpt == 0) /* RFC 2920 3.1: 554 when every RCPT failed */
        return s->rcpt_tried ? "554 5.5.1 Error: no valid recipients"
                             : "503 5.5.1 Error: need RCPT command";
    return NULL;
}

static void cmd_data(ib_smtpd *s, size_t n)
{
    const char *bad = n ? "501 5.5.4 Syntax: DATA" : data_refusal(s);
    if (!bad && s->used_bdat) /* RFC 3030 3: never DATA after BDAT */
        bad = "503 5.5.1 Error: DATA after BDAT";
    if (bad) {
        error(s, bad);
        return;
    }
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
    s->st = S_DATA;
    s->bol = 1;
    s->prev = 0;
}

/* RFC 3030 2: BDAT <size> [LAST].  The chunk is read even when refused. */
static void cmd_bdat(ib_smtpd *s, const char *args, size_t n)
{
    size_t i = 0;
    const char *w1, *w2;
    size_t l1 = next_word(args, n, &i, &w1), l2 = next_word(args, n, &i, &w2);
    uint64_t size;
    if (parse_u64(w1, l1, &size) < 0 || (l2 && !ci_eq(w2, l2, "LAST")) || i < n) {
        /* Without a size there is no way to find the next command. */
        reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
        s->closing = 1;
        return;
    }
    const char *bad = data_refusal(s);
    snprintf(s->chunk_refusal, sizeof s->chunk_refusal, "%s", bad ? bad : "");
    s->chunk_left = size;
    s->chunk_last = l2 != 0;
    s->st = S_BDAT;
    if (!bad)
        s->used_bdat = 1;
}

static int cmd_starttls(ib_smtpd *s, size_t n)
{
    if (!s->conf->starttls) {
        error(s, "502 5.5.1 Error: STARTTLS not available");
    } else if (s->in_tls) {
        error(s, "503 5.5.1 Error: TLS already active");
    } else if (n) {
        error(s, "501 5.5.4 Syntax: STARTTLS");
    } else {
        reply(s, "220 2.0.0 Ready to start TLS");
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
            error(s, "500 5.5.2 Error: invalid character in command");
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
        error(s, "500 5.5.2 Error: line too long");
        return DONE;
    }
    if (s->st == S_REFUSED) {
        if (ci_eq(line, vl, "QUIT")) {
            reply(s, "221 2.0.0 Bye");
            s->closing = 1;
        } else {
            error(s, "503 5.5.1 Error: service refused, only QUIT");
        }
        return DONE;
    }
    if (ci_eq(line, vl, "EHLO"))
        return cmd_helo(s, args, al, 1);
    if (ci_eq(line, vl, "HELO"))
        return cmd_helo(s, args, al, 0);
    if (ci_eq(line, vl, "MAIL"))
        return cmd_mail(s, args, al);
    if (ci_eq(line, vl, "RCPT"))
        return cmd_rcpt(s, args, al);
    if (ci_eq(line, vl, "DATA"))
        cmd_data(s, al);
    else if (ci_eq(line, vl, "BDAT"))
        cmd_bdat(s, args, al);
    else if (ci_eq(line, vl, "AUTH"))
        return cmd_auth(s, args, al);
    else if (ci_eq(line, vl, "STARTTLS"))
        return cmd_starttls(s, al);
    else if (ci_eq(line, vl, "RSET")) {
        if (al) {
            error(s, "501 5.5.4 Syntax: RSET");
        } else {
            reset_transaction(s);
            reply(s, "250 2.0.0 Ok");
        }
    } else if (ci_eq(line, vl, "NOOP")) {
        reply(s, "250 2.0.0 Ok");
    } else if (ci_eq(line, vl, "QUIT")) {
        reply(s, "221 2.0.0 Bye");
        s->closing = 1;
    } else if (ci_eq(line, vl, "VRFY")) {
        if (al)
            reply(s, "252 2.1.5 Cannot VRFY user, but will accept message");
        else
            error(s, "501 5.5.4 Syntax: VRFY address");
    } else if (ci_eq(line, vl, "HELP")) {
        reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s%s",
              s->conf->starttls ? " STARTTLS" : "", s->conf->auth ? " AUTH" : "");
    } else if (http_verb(line, vl)) {
        /* A browser tricked into posting to this port: hang up before any
         * line of the request body can run as a command. */
        reply(s, "500 5.5.2 Error: this is an SMTP server, not HTTP");
        s->closing = 1;
    } else {
        error(s, "500 5.5.2 Error: command not recognized");
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
        error(s, "500 5.5.2 Error: line too long");
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
        error(s, "500 5.5.2 Error: line too long");
        return 1;
    }
    int r = DONE;
    if (s->st == S_AUTH_PLAIN || s->st == S_AUTH_USER || s->st == S_AUTH_PASS)
        auth_response(s, p, n);
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

static void msg_append(ib_smtpd *s, const char *p, size_t n)
{
    s->msg_size += n;
    if (s->msg_size > s->conf->max_size) {
        if (!s->too_big) /* counted from here on, never buffered */
            se_buf_free(&s->msg);
        s->too_big = 1;
        return;
    }
    if (!s->msg_oom && se_buf_append(&s->msg, p, n) < 0) {
        s->msg_oom = 1;
        se_buf_free(&s->msg);
    }
}

/* DATA: lines up to "." alone, RFC 5321 4.5.2 transparency undone.  A bare
 * LF ends a line too (this is a catcher); they are counted and noted. */
static int data_input(ib_smtpd *s)
{
    const char *p = s->in.data + s->in_off, *end = s->in.data + s->in.len;
    while (p < end) {
        if (s->bol && *p == '.') {
            if (p + 1 == end)
                break;
            if (p[1] == '\n' || p[1] == '\r') {
                if (p[1] == '\r' && p + 2 == end)
                    break;
                if (p[1] == '\n' || p[2] == '\n') {
                    p += p[1] == '\n' ? 2 : 3;
                    s->in_off = (size_t)(p - s->in.data);
                    s->st = S_MSG_END;
                    return 1;
                }
            }
            p++; /* RFC 5321 4.5.2: drop the leading dot */
        }
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *stop = lf ? lf + 1 : end;
        if (lf && (lf > p ? lf[-1] : (char)s->prev) != '\r')
            s->bare_lf++; /* RFC 5321 2.3.8 forbids it; tolerated here */
        if (stop > p) {
            msg_append(s, p, (size_t)(stop - p));
            s->prev = (unsigned char)stop[-1];
        }
        s->bol = lf != NULL;
        p = stop;
    }
    s->in_off = (size_t)(p - s->in.data);
    return 0;
}

static int bdat_input(ib_smtpd *s)
{
    size_t avail = s->in.len - s->in_off;
    size_t take = s->chunk_left < avail ? (size_t)s->chunk_left : avail;
    if (take && !s->chunk_refusal[0])
        msg_append(s, s->in.data + s->in_off, take);
    s->in_off += take;
    s->chunk_left -= take;
    if (s->chunk_left)
        return 0;
    s->st = S_CMD;
    if (s->chunk_refusal[0])
        error(s, s->chunk_refusal);
    else if (s->chunk_last)
        s->st = S_MSG_END;
    else if (s->too_big)
        reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size");
    else
        reply(s, "250 2.0.0 %" PRIu64 " octets received", s->msg_size);
    return 1;
}

static int msg_end(ib_smtpd *s)
{
    ib_verdict v;
    if (chaos(s, IB_STAGE_DATA, NULL, &v) == HELD)
        return 1;
    s->st = S_CMD;
    if (chaos_acts(s, &v)) {
        reset_transaction(s);
        return 1;
    }
    if (s->too_big) { /* RFC 1870 6.3 */
        reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size");
    } else if (s->msg_oom) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
    } else {
        if (s->bare_lf) {
            char note[128];
            int nl = snprintf(note, sizeof note,
                              "X-Inbox-Warning: %zu line(s) ended in a bare LF, which RFC 5321"
                              " 2.3.8 forbids\r\n",
                              s->bare_lf);
            if (se_buf_reserve(&s->msg, (size_t)nl) == 0) {
                memmove(s->msg.data + nl, s->msg.data, s->msg.len + 1);
                memcpy(s->msg.data, note, (size_t)nl);
                s->msg.len += (size_t)nl;
            }
        }
        s->st = S_MSG_END;
        s->msg_ready = 1;
        return 1;
    }
    reset_transaction(s);
    return 1;
}

static int advance(ib_smtpd *s)
{
    switch (s->st) {
    case S_GREETING: greeting(s); return 1;
    case S_DATA: return data_input(s);
    case S_BDAT: return bdat_input(s);
    case S_MSG_END: return msg_end(s);
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

void ib_smtpd_timeout(ib_smtpd *s)
{
    if (!s->closing)
        reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->hostname);
    s->closing = 1;
    s->st = S_DEAD;
}

void ib_smtpd_shutdown(ib_smtpd *s)
{
    if (!s->closing)
        reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
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
    *raw = s->msg.data ? s->msg.data : "";
    *len = s->msg.len;
}

void ib_smtpd_stored(ib_smtpd *s, int64_t id)
{
    if (!s->msg_ready)
        return;
    s->msg_ready = 0;
    s->st = S_CMD;
    if (id >= 0)
        reply(s, "250 2.0.0 Ok: queued as %" PRId64, id);
    else
        reply(s, "451 4.3.0 Error: could not store the message");
    reset_transaction(s);
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
    reset_transaction(s);
}
