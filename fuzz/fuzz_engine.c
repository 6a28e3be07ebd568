/* libFuzzer target: the SMTP client engine (src/smtp/engine.h) against a
 * server whose bytes come from the fuzz input.
 *
 * Input: byte 0 and 1 choose the session (TLS mode, credentials, partial
 * writes, QUIT after a failure) and the transactions (recipients, envelope,
 * message); the rest is server bytes in chunks, each preceded by a length
 * byte (1 + b % 64; 0xff instead aborts the session like a timeout).
 *
 * Besides memory safety, a model of what the server sees checks:
 *   - every command line ends in CRLF, holds no other CR or LF, is a
 *     command the engine may send (with our own helo name and addresses),
 *     and is at most 512 octets (12288 for AUTH);
 *   - the password appears nowhere, neither in clear nor in base64 outside
 *     its AUTH line, in the output, the trace or the error message;
 *   - nothing but EHLO/STARTTLS/QUIT crosses a channel that TLS should
 *     protect, no server byte from before the handshake survives it, the
 *     first command after it is EHLO, and AUTH is only sent encrypted or
 *     to loopback;
 *   - message data follows only a 354 to DATA, is dot-stuffed and reads
 *     back as the message; BDAT carries exactly the message;
 *   - no message byte after DATA once MAIL or a RCPT was refused, and no
 *     BDAT ... LAST once a refusal was seen (all or nothing);
 *   - "accepted" (se_smtp_last_ok) only when the server accepted MAIL,
 *     every RCPT and the end of data;
 *   - the engine is idle only when every command has its reply, never asks
 *     to read after EOF, and terminates (DONE or FAILED). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/engine.h"
#include "smtp/reply.h"

#define MAX_STEPS 200000
#define HELO "client.example"
#define SECRET_MARK "7f3k9Q" /* in every password variant, nowhere else */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_engine: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* ---- fixed choices ---- */

static const char *const RCPT_ASCII[] = {"a@b.example", "c@d.example", "e@f.example"};
static const char *const RCPT_UTF8[] = {"\xc3\xb1@b.example", "c@d.example", "z\xc3\xbc@f.example"};
static const char *const RCPT_BAD[] = {"a@b.example", "x@y.example>\r\nRSET", "e@f.example"};

static const struct {
    const char *from;
    const char *const *rcpt;
    int utf8;
} ENVELOPES[4] = {
    {"f@g.example", RCPT_ASCII, 0},
    {"j\xc3\xb6rg@g.example", RCPT_UTF8, 1},
    {"", RCPT_ASCII, 0}, /* null sender */
    {"f@g.example", RCPT_BAD, 0},
};

static const char *const MESSAGES[4] = {
    "Subject: hi\r\n\r\nHello.\r\n",
    ".leading dot\r\n..two\r\n.\r\n\r\n.\r\nend",
    "a\nb\r.\n.\r\r\n\r\n..\n\r",
    "",
};

/* ---- a small growable byte string for the model ---- */

typedef struct bytes {
    char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* A plain loop, so libFuzzer's memmem hook does not learn the secrets. */
static int has(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (!k || k > n)
        return 0;
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && hay[i + j] == needle[j])
            j++;
        if (j == k)
            return 1;
    }
    return 0;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * ((n + 2) / 3) + 1);
    size_t k = 0;
    if (!o)
        abort();
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        o[k++] = tab[v >> 18 & 63];
        o[k++] = tab[v >> 12 & 63];
        o[k++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        o[k++] = i + 2 < n ? tab[v & 63] : '=';
    }
    o[k] = '\0';
    return o;
}

/* RFC 5321 2.3.8: the message as it must arrive, every line end CRLF and a
 * final CRLF (our own rendering, independent of mail.c). */
static void canonical(bytes *out, const char *m, size_t len)
{
    int bol = 1;
    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\r' || m[i] == '\n') {
            if (m[i] == '\r' && i + 1 < len && m[i + 1] == '\n')
                i++;
            put(out, "\r\n", 2);
            bol = 1;
        } else {
            put(out, m + i, 1);
            bol = 0;
        }
    }
    if (!bol)
        put(out, "\r\n", 2);
}

/* ---- the model of the server's view ---- */

typedef enum kind {
    K_GREETING,
    K_EHLO,
    K_STARTTLS,
    K_AUTH_PLAIN,
    K_AUTH_LOGIN,
    K_AUTH_USER,
    K_AUTH_PASS,
    K_AUTH_CANCEL,
    K_MAIL,
    K_RCPT,
    K_DATA,
    K_DOT,
    K_BDAT,
    K_BDAT_LAST,
    K_RSET,
    K_QUIT
} kind;

enum { M_CMD, M_AFTER_DATA, M_DATA, M_BDAT };

/* A transaction as the server saw it; the size_t fields are indexes into
 * the expected replies (0: not sent, as index 0 is the greeting). */
typedef struct tx {
    int active;
    size_t mail;
    size_t rcpt[3];
    size_t n_rcpt;
    size_t data;
    size_t commit;            /* "." or BDAT ... LAST */
    size_t bdat_more;         /* "BDAT n" without LAST */
    unsigned long size_param; /* SIZE= on MAIL, or 0 */
} tx;

typedef struct model {
    /* what the harness chose */
    const char *user, *pass;
    char *b64_user, *b64_pass, *b64_plain;
    scalr_email_tls tls;
    int loopback;
    const char *from;
    const char *const *rcpt;
    size_t n_rcpt;
    int utf8, is8bit;
    bytes expect_msg; /* canonical message of the current transaction */

    /* client -> server */
    bytes all_out;
    bytes line;  /* the command line being read */
    bytes data;  /* unstuffed DATA payload */
    bytes dline; /* the DATA line being read */
    int mode;
    size_t bdat_left;
    kind *exp; /* one entry per reply the server owes */
    size_t n_exp, cap_exp;
    int tls_active;
    int tls_fresh; /* handshake done, EHLO not yet sent */
    tx t;

    /* server -> client */
    bytes in;      /* everything fed */
    size_t in_pos; /* start of the next unparsed reply */
    int in_broken; /* the stream stopped being valid replies */
    int *codes;    /* codes[k] answers exp[k] */
    size_t n_codes, cap_codes;
} model;

static void expect(model *m, kind k)
{
    if (m->n_exp == m->cap_exp) {
        m->cap_exp = m->cap_exp ? 2 * m->cap_exp : 64;
        m->exp = realloc(m->exp, m->cap_exp * sizeof *m->exp);
        if (!m->exp)
            abort();
    }
    m->exp[m->n_exp++] = k;
}

/* The server's reply to expectation k, or 0 when not (yet) known. */
static int reply_to(const model *m, size_t k)
{
    return k < m->n_codes ? m->codes[k] : 0;
}

static int ok2(int code)
{
    return code / 100 == 2;
}

/* Split what was fed into replies, the way the server meant them. */
static void model_input(model *m, const char *p, size_t n)
{
    put(&m->in, p, n);
    while (!m->in_broken && m->in_pos < m->in.n) {
        se_reply r;
        size_t used;
        char why[128];
        int rc =
            se_reply_parse(m->in.p + m->in_pos, m->in.n - m->in_pos, &r, &used, why, sizeof why);
        if (rc == 0)
            break;
        if (rc != 1) {
            m->in_broken = 1;
            break;
        }
        if (m->n_codes == m->cap_codes) {
            m->cap_codes = m->cap_codes ? 2 * m->cap_codes : 64;
            m->codes = realloc(m->codes, m->cap_codes * sizeof *m->codes);
            if (!m->codes)
                abort();
        }
        m->codes[m->n_codes++] = r.code;
        se_reply_free(&r);
        m->in_pos += used;
    }
}

/* Has the server already refused MAIL or a RCPT of this transaction? */
static int tx_refused(const model *m)
{
    int c = reply_to(m, m->t.mail);
    if (c && !ok2(c))
        return 1;
    for (size_t i = 0; i < m->t.n_rcpt; i++) {
        c = reply_to(m, m->t.rcpt[i]);
        if (c && !ok2(c))
            return 1;
    }
    return 0;
}

/* Every MAIL/RCPT reply known and positive, for all our recipients. */
static int tx_all_accepted(const model *m)
{
    if (!m->t.active || m->t.n_rcpt != m->n_rcpt || !ok2(reply_to(m, m->t.mail)))
        return 0;
    for (size_t i = 0; i < m->t.n_rcpt; i++)
        if (!ok2(reply_to(m, m->t.rcpt[i])))
            return 0;
    return 1;
}

static void check_clear_free(const model *m, const char *p, size_t n, const char *where)
{
    if (has(p, n, SECRET_MARK) || has(p, n, m->pass))
        FAIL("the password appears in clear in %s", where);
}

static void check_secret_free(const model *m, const char *p, size_t n, const char *where)
{
    check_clear_free(m, p, n, where);
    if (has(p, n, m->b64_pass) || has(p, n, m->b64_plain))
        FAIL("the password appears in base64 in %s", where);
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void mail_line(model *m, const char *l)
{
    char want[400];
    snprintf(want, sizeof want, "MAIL FROM:<%s>", m->from);
    if (!starts(l, want))
        FAIL("MAIL line '%s' does not carry the sender <%s>", l, m->from);
    const char *p = l + strlen(want);
    int size = 0, body = 0, utf8 = 0;
    while (*p) {
        if (starts(p, " SIZE=") && !size) {
            char *end;
            m->t.size_param = strtoul(p + 6, &end, 10);
            size = 1;
            p = end;
        } else if (starts(p, " BODY=8BITMIME") && !body) {
            body = 1;
            p += 14;
        } else if (starts(p, " SMTPUTF8") && !utf8) {
            utf8 = 1;
            p += 9;
        } else {
            FAIL("unexpected MAIL parameter in '%s'", l);
        }
    }
    if (utf8 != m->utf8 || body != m->is8bit)
        FAIL("MAIL line '%s' with SMTPUTF8 %d, 8BITMIME %d wanted", l, m->utf8, m->is8bit);
}

/* One complete command line (without CRLF) from the client. */
static void command(model *m, const char *l, size_t n)
{
    size_t k = m->n_exp;
    int is_auth = 0;

    if (memchr(l, '\r', n) || memchr(l, '\n', n))
        FAIL("command line with CR or LF inside: '%.*s'", (int)n, l);
    if (strlen(l) != n)
        FAIL("command line with a NUL byte");

    /* RFC 3207 4.2 / RFC 2920 3.1: STARTTLS ends the flight; after the
     * handshake the client starts over with EHLO. */
    if (k && m->exp[k - 1] == K_STARTTLS && !m->tls_active && reply_to(m, k - 1) == 220)
        FAIL("'%s' sent after STARTTLS was accepted but before TLS", l);
    if (k && m->exp[k - 1] == K_STARTTLS && !reply_to(m, k - 1))
        FAIL("'%s' sent before the reply to STARTTLS", l);
    if (m->tls_fresh && strcmp(l, "EHLO " HELO) != 0 && strcmp(l, "QUIT") != 0)
        FAIL("first command after the TLS handshake is '%s', not EHLO", l);
    m->tls_fresh = 0;

    kind prev = k ? m->exp[k - 1] : K_GREETING;
    int prev_code = k ? reply_to(m, k - 1) : 0;
    if (strcmp(l, "EHLO " HELO) == 0) {
        expect(m, K_EHLO);
    } else if (strcmp(l, "STARTTLS") == 0) {
        expect(m, K_STARTTLS);
    } else if (starts(l, "AUTH PLAIN ")) {
        if (strcmp(l + 11, m->b64_plain) != 0)
            FAIL("AUTH PLAIN with other credentials than ours");
        is_auth = 1;
        expect(m, K_AUTH_PLAIN);
    } else if (strcmp(l, "AUTH LOGIN") == 0) {
        is_auth = 1;
        expect(m, K_AUTH_LOGIN);
    } else if (prev == K_AUTH_LOGIN && strcmp(l, m->b64_user) == 0) {
        if (prev_code != 334)
            FAIL("user name sent without the server's 334");
        is_auth = 1;
        expect(m, K_AUTH_USER);
    } else if (prev == K_AUTH_USER && strcmp(l, m->b64_pass) == 0) {
        if (prev_code != 334)
            FAIL("password sent without the server's 334");
        is_auth = 1;
        expect(m, K_AUTH_PASS);
    } else if (strcmp(l, "*") == 0) {
        if (prev != K_AUTH_PLAIN || prev_code != 334)
            FAIL("'*' outside an AUTH exchange");
        expect(m, K_AUTH_CANCEL);
    } else if (starts(l, "MAIL FROM:")) {
        memset(&m->t, 0, sizeof m->t);
        m->t.active = 1;
        m->t.mail = k;
        mail_line(m, l);
        expect(m, K_MAIL);
    } else if (starts(l, "RCPT TO:")) {
        if (!m->t.active || m->t.n_rcpt >= m->n_rcpt || m->t.data)
            FAIL("RCPT '%s' outside a transaction or one too many", l);
        char want[400];
        snprintf(want, sizeof want, "RCPT TO:<%s>", m->rcpt[m->t.n_rcpt]);
        if (strcmp(l, want) != 0)
            FAIL("'%s' where '%s' was due", l, want);
        m->t.rcpt[m->t.n_rcpt++] = k;
        expect(m, K_RCPT);
    } else if (strcmp(l, "DATA") == 0) {
        if (!m->t.active || m->t.n_rcpt != m->n_rcpt || m->t.data)
            FAIL("DATA before every recipient was given");
        m->t.data = k;
        m->mode = M_AFTER_DATA;
        expect(m, K_DATA);
    } else if (starts(l, "BDAT ")) {
        char *end;
        unsigned long len = strtoul(l + 5, &end, 10);
        int last = strcmp(end, " LAST") == 0;
        if (!m->t.active || m->t.n_rcpt != m->n_rcpt || m->t.data || m->t.commit ||
            (*end && !last) || end == l + 5)
            FAIL("bad or misplaced '%s'", l);
        if (len != (m->t.bdat_more ? 0 : m->expect_msg.n))
            FAIL("'%s' for a message of %zu octets", l, m->expect_msg.n);
        if (last && tx_refused(m))
            FAIL("'%s' commits a message after MAIL or a RCPT was refused", l);
        if (m->t.size_param && m->t.size_param < m->expect_msg.n)
            FAIL("SIZE=%lu declared for %zu octets", m->t.size_param, m->expect_msg.n);
        if (last && m->t.bdat_more && !ok2(reply_to(m, m->t.bdat_more)))
            FAIL("'%s' after the first chunk was not accepted", l);
        if (last)
            m->t.commit = k;
        else
            m->t.bdat_more = k;
        m->mode = len ? M_BDAT : M_CMD;
        m->bdat_left = len;
        expect(m, last ? K_BDAT_LAST : K_BDAT);
    } else if (strcmp(l, "RSET") == 0) {
        expect(m, K_RSET);
    } else if (strcmp(l, "QUIT") == 0) {
        expect(m, K_QUIT);
    } else {
        FAIL("unknown command line '%.*s'", (int)(n < 200 ? n : 200), l);
    }

    if (n > (is_auth ? 12286u : 510u))
        FAIL("command line of %zu octets", n);
    if (!is_auth)
        check_secret_free(m, l, n, "a command line");
    /* RFC 3207 / RFC 8314: no fallback to plain text. */
    if (m->tls != SCALR_EMAIL_TLS_NONE && !m->tls_active && strcmp(l, "EHLO " HELO) != 0 &&
        strcmp(l, "STARTTLS") != 0 && strcmp(l, "QUIT") != 0)
        FAIL("'%.40s' sent before TLS was established", l);
    /* RFC 4954 4: credentials only encrypted, or to this very host. */
    if (is_auth && !m->tls_active && !m->loopback)
        FAIL("AUTH sent in clear to a non-loopback host");
}

/* The server's view of "." at the end of DATA. */
static void end_of_data(model *m)
{
    if (m->data.n != m->expect_msg.n ||
        (m->data.n && memcmp(m->data.p, m->expect_msg.p, m->data.n) != 0))
        FAIL("DATA payload (%zu octets) differs from the message (%zu octets)", m->data.n,
             m->expect_msg.n);
    if (m->t.size_param && m->t.size_param < m->data.n)
        FAIL("SIZE=%lu declared for %zu octets", m->t.size_param, m->data.n);
    m->t.commit = m->n_exp;
    expect(m, K_DOT);
    m->mode = M_CMD;
}

/* One line of DATA payload, CRLF included. */
static void data_line(model *m, const char *l, size_t n)
{
    if (n < 2 || l[n - 2] != '\r' || memchr(l, '\r', n - 2))
        FAIL("DATA line with a bare CR or LF");
    if (n == 3 && l[0] == '.') {
        end_of_data(m);
        return;
    }
    /* RFC 5321 4.5.2: the server drops one leading dot. */
    if (l[0] == '.')
        put(&m->data, l + 1, n - 1);
    else
        put(&m->data, l, n);
}

static void model_output(model *m, const char *p, size_t n)
{
    put(&m->all_out, p, n);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (m->mode == M_AFTER_DATA) {
            int code = reply_to(m, m->t.data);
            if (!code)
                FAIL("bytes after DATA before its reply");
            m->mode = code == 354 ? M_DATA : M_CMD;
            if (m->mode == M_DATA && (tx_refused(m) || !tx_all_accepted(m)))
                FAIL("message data sent although MAIL or a RCPT was not accepted");
            m->data.n = 0;
        }
        if (m->mode == M_BDAT) {
            if (c != m->expect_msg.p[m->expect_msg.n - m->bdat_left])
                FAIL("BDAT payload differs from the message at octet %zu",
                     m->expect_msg.n - m->bdat_left);
            if (--m->bdat_left == 0)
                m->mode = M_CMD;
            continue;
        }
        if (m->mode == M_DATA) {
            put(&m->dline, &c, 1);
            if (c == '\n') {
                data_line(m, m->dline.p, m->dline.n);
                m->dline.n = 0;
            } else if (m->dline.n > 1000) {
                /* RFC 5321 4.5.3.1.6 */
                FAIL("DATA line longer than 1000 octets");
            }
            continue;
        }
        if (c == '\n') {
            if (!m->line.n || m->line.p[m->line.n - 1] != '\r')
                FAIL("command line ended by a bare LF: '%.*s'", (int)m->line.n, m->line.p);
            m->line.p[--m->line.n] = '\0';
            command(m, m->line.p, m->line.n);
            m->line.n = 0;
        } else {
            put(&m->line, &c, 1);
            if (m->line.n > 13000)
                FAIL("command line without an end");
        }
    }
}

/* The engine says the transaction is over: check its verdict. */
static void at_idle(model *m, se_smtp *s, int after_mail)
{
    if (!m->in_broken && m->n_codes < m->n_exp)
        FAIL("idle with %zu of %zu replies received", m->n_codes, m->n_exp);
    if (m->mode != M_CMD || m->line.n)
        FAIL("idle in the middle of a command or of data");
    if (after_mail && se_smtp_last_ok(s)) {
        if (!m->t.active || !m->t.commit)
            FAIL("message reported accepted but never committed");
        if (!tx_all_accepted(m) || !ok2(reply_to(m, m->t.commit)))
            FAIL("message reported accepted but the server refused part of it");
        if (m->t.bdat_more && !ok2(reply_to(m, m->t.bdat_more)))
            FAIL("message reported accepted but its chunk was refused");
        if (se_smtp_error(s)->code != SCALR_EMAIL_OK)
            FAIL("accepted, yet the error code is %d", se_smtp_error(s)->code);
    }
}

/* ---- the trace ---- */

typedef struct trace_ctx {
    model *m;
} trace_ctx;

static void on_trace(void *arg, char dir, const char *line, size_t len)
{
    trace_ctx *t = arg;
#ifdef FUZZ_VERBOSE /* -DFUZZ_VERBOSE: show the conversation of one input */
    fprintf(stderr, "%c: %.*s\n", dir, (int)len, line);
#endif
    if (dir != 'C' && dir != 'S' && dir != '*')
        FAIL("trace direction '%c'", dir);
    if (memchr(line, '\n', len) || (dir == 'C' && memchr(line, '\r', len)))
        FAIL("trace line with a line break");
    if (dir == 'C')
        check_secret_free(t->m, line, len, "the trace");
}

/* ---- the driver ---- */

static uint32_t rng_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void model_free(model *m)
{
    free(m->b64_user);
    free(m->b64_pass);
    free(m->b64_plain);
    free(m->expect_msg.p);
    free(m->all_out.p);
    free(m->line.p);
    free(m->data.p);
    free(m->dline.p);
    free(m->exp);
    free(m->in.p);
    free(m->codes);
}

static char long_user[301];
static char long_pass[9001]; /* an OAuth-sized secret: fits RFC 4954 4 with base64 */

static void pick_credentials(model *m, unsigned v)
{
    if (!long_user[0]) {
        memset(long_user, 'u', sizeof long_user - 1);
        snprintf(long_pass, sizeof long_pass, "Pw-" SECRET_MARK "!x");
        memset(long_pass + 11, 'A', sizeof long_pass - 12);
    }
    m->user = v == 1 ? long_user : "user@example.com";
    m->pass = v == 2 ? long_pass : v == 3 ? "P\"w \xc3\xbc\\" SECRET_MARK : "Pw-" SECRET_MARK "!x";
    size_t ul = strlen(m->user), pl = strlen(m->pass);
    unsigned char *raw = malloc(ul + pl + 2);
    if (!raw)
        abort();
    raw[0] = '\0';
    memcpy(raw + 1, m->user, ul);
    raw[ul + 1] = '\0';
    memcpy(raw + ul + 2, m->pass, pl);
    m->b64_plain = base64(raw, ul + pl + 2);
    m->b64_user = base64((const unsigned char *)m->user, ul);
    m->b64_pass = base64((const unsigned char *)m->pass, pl);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 2)
        return 0;
    model m = {0};
    trace_ctx tc = {&m};
    unsigned env_v = (d[1] >> 2) & 3;
    const char *msg = MESSAGES[(d[1] >> 4) & 3];
    size_t msg_len = strlen(msg);
    int partial = (d[0] >> 4) & 1;
    int quit_after_fail = (d[0] >> 5) & 1;
    int n_mails = (d[1] >> 7) ? 3 : 1;
    uint32_t rng = 0x9e3779b9u ^ ((uint32_t)d[0] << 8 | d[1]);

    pick_credentials(&m, d[0] >> 6);
    m.tls = (scalr_email_tls)((d[0] & 3) % 3);
    m.loopback = (d[0] >> 3) & 1;
    m.from = ENVELOPES[env_v].from;
    m.rcpt = ENVELOPES[env_v].rcpt;
    m.n_rcpt = 1 + (d[1] & 3) % 3;
    m.utf8 = ENVELOPES[env_v].utf8;
    m.is8bit = (d[1] >> 6) & 1;

    se_smtp_opts o = {
        .helo_name = HELO,
        .tls = m.tls,
        .username = (d[0] & 4) ? m.user : NULL,
        .password = m.pass,
        .peer_is_loopback = m.loopback,
        .trace = on_trace,
        .trace_arg = &tc,
    };
    se_smtp_envelope env = {
        .mail_from = m.from,
        .rcpt = m.rcpt,
        .n_rcpt = m.n_rcpt,
        .needs_smtputf8 = m.utf8,
        .is_8bit = m.is8bit,
    };
    se_smtp *s = se_smtp_new(&o);
    if (!s)
        abort();
    expect(&m, K_GREETING);
    if (m.tls == SCALR_EMAIL_TLS_IMPLICIT) {
        se_smtp_tls_started(s);
        m.tls_active = 1;
    }

    size_t pos = 2;
    int mails = 0, eof = 0, quit_tried = 0, after_mail = 0;
    se_smtp_want w = SE_SMTP_READ;
    int steps;
    for (steps = 0; steps < MAX_STEPS; steps++) {
        w = se_smtp_step(s);
        if (w == SE_SMTP_DONE)
            break;
        if (w == SE_SMTP_FAILED) {
            if (quit_after_fail && !quit_tried) {
                quit_tried = 1;
                se_smtp_quit(s);
                continue;
            }
            break;
        }
        if (w == SE_SMTP_WRITE) {
            size_t len;
            const char *out = se_smtp_out(s, &len);
            if (!len)
                FAIL("WRITE with nothing to write");
            size_t k = partial ? 1 + rng_next(&rng) % len : len;
            model_output(&m, out, k);
            se_smtp_sent(s, k);
        } else if (w == SE_SMTP_READ) {
            if (eof)
                FAIL("READ after EOF");
            if (pos >= n) {
                se_smtp_eof(s);
                eof = 1;
                continue;
            }
            uint8_t b = d[pos++];
            if (b == 0xff) {
                se_smtp_abort(s, SCALR_EMAIL_ETIMEOUT, "timed out");
                continue;
            }
            size_t k = 1 + b % 64;
            if (k > n - pos)
                k = n - pos;
            if (!k)
                continue;
            model_input(&m, (const char *)d + pos, k);
            if (se_smtp_feed(s, (const char *)d + pos, k) != 0)
                FAIL("feed reported out of memory");
            pos += k;
        } else if (w == SE_SMTP_TLS) {
            size_t k = m.n_exp;
            if (!k || m.exp[k - 1] != K_STARTTLS || reply_to(&m, k - 1) != 220)
                FAIL("TLS asked for without a 220 to STARTTLS");
            if (m.tls_active)
                FAIL("TLS asked for twice");
            /* RFC 3207 4.2, CVE-2021-22947: bytes that came before the
             * handshake must never be taken as replies after it. */
            if (m.in_pos != m.in.n || m.n_codes != m.n_exp)
                FAIL("TLS started with unread server bytes before the handshake");
            m.tls_active = 1;
            m.tls_fresh = 1;
            se_smtp_tls_started(s);
        } else if (w == SE_SMTP_IDLE) {
            at_idle(&m, s, after_mail);
            if (mails < n_mails) {
                mails++;
                after_mail = 1;
                m.expect_msg.n = 0;
                canonical(&m.expect_msg, msg, msg_len);
                memset(&m.t, 0, sizeof m.t);
                if (se_smtp_mail(s, &env, msg, msg_len) != 0)
                    FAIL("se_smtp_mail refused in IDLE");
            } else {
                after_mail = 0;
                se_smtp_quit(s);
            }
        } else {
            FAIL("step returned %d", (int)w);
        }
    }
    if (steps == MAX_STEPS)
        FAIL("no end after %d steps (last want %d)", steps, (int)w);

    /* base64 forms were checked line by line (they belong in AUTH lines) */
    check_clear_free(&m, m.all_out.p ? m.all_out.p : "", m.all_out.n, "the output");
    const scalr_email_error *e = se_smtp_error(s);
    size_t ml = strlen(e->message);
    if (w == SE_SMTP_FAILED && (e->code == SCALR_EMAIL_OK || !ml))
        FAIL("FAILED without an error code or message");
    if (memchr(e->message, '\n', ml) || memchr(e->message, '\r', ml))
        FAIL("error message is not one line");
    /* The server may echo anything it was fed; judge only our own words. */
    if (!has((const char *)d, n, SECRET_MARK) && !has((const char *)d, n, m.b64_pass) &&
        !has((const char *)d, n, m.b64_plain))
        check_secret_free(&m, e->message, ml, "the error message");
#ifdef FUZZ_VERBOSE
    fprintf(stderr, "end: want %d, code %d, stage %s: %s\n", (int)w, (int)e->code, e->stage,
            e->message);
#endif
    se_smtp_free(s);
    model_free(&m);
    return 0;
}
