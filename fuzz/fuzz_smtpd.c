/* libFuzzer target: the inbox's SMTP server session (inbox/smtpd.h) against
 * a client whose bytes come from the fuzz input.
 *
 * Input: byte 0 chooses the configuration (STARTTLS offered, implicit TLS,
 * AUTH, chaos rules, partial writes, storing fails, how the input ends),
 * byte 1 the size limit; the rest is client bytes in chunks, each preceded
 * by a length byte (1 + b % 64; 0xff: the idle timeout fires, 0xfe: the
 * server shuts down).
 *
 * Checks, besides memory safety:
 *   - the output is a sequence of well-formed replies (se_reply_parse),
 *     CRLF only, lines of at most 512 octets, the first one 220 or 554
 *     (or a 421), nothing after a 221 or 421, no reply cut at CLOSE;
 *   - pending output stays bounded (a client that never reads);
 *   - a message handed over has 1..1000 recipients, addresses without
 *     CR, LF, space or angle brackets, at most the size limit, and the
 *     counts of bare LF and CR that its bytes show;
 *   - no SMTP smuggling: there are never more messages than the input has
 *     <CR><LF>.<CR><LF> sequences and BDAT LASTs (a bare LF or CR ending
 *     the data would make one more);
 *   - with AUTH user:pass, 235 only when the password went over the wire
 *     (in base64), and only once per session;
 *   - after STARTTLS nothing from before the handshake gets a reply
 *     (CVE-2011-0411), and TLS is only asked for after a 220 to STARTTLS;
 *   - the session ends: CLOSE after EOF, never READ after it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chaos.h"
#include "smtp/reply.h"
#include "smtpd.h"

#define MAX_STEPS 200000
#define PASSWORD "s3cretpw"
#define OUT_BOUND (65536 + 4096) /* OUT_HIGH in smtpd.c plus one reply */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_smtpd: " __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static const char *const CHAOS_RULES[] = {
    "rcpt:550 5.1.1 no such user:match=bad@",
    "data:452 4.3.1 insufficient storage",
    "mail:disconnect:match=drop@",
    "ehlo:delay=2000",
    "auth:454 4.7.0 temporary failure",
    "data:delay=10",
};

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

typedef struct model {
    bytes out; /* everything written */
    size_t out_pos;
    size_t n_replies;
    int ended; /* a 221 or 421 was written */
    int last_code;
    size_t auth_ok; /* 235s since the session (re)started */
    bytes in;       /* everything fed */
    size_t n_messages;
} model;

/* Parse the complete replies written so far. */
static void model_output(model *m, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && (m->out.n + i == 0 || (i ? p[i - 1] : m->out.p[m->out.n - 1]) != '\r'))
            FAIL("reply line ended by a bare LF");
        if (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n')
            FAIL("bare CR in a reply");
    }
    put(&m->out, p, n);
    for (;;) {
        se_reply r;
        size_t used;
        char why[128];
        int rc = se_reply_parse(m->out.p + m->out_pos, m->out.n - m->out_pos, &r, &used, why,
                                sizeof why);
        if (rc == 0)
            break;
        if (rc != 1)
            FAIL("malformed reply: %s: '%.80s'", why, m->out.p + m->out_pos);
        const char *q = m->out.p + m->out_pos;
        for (size_t i = 0, ls = 0; i < used; i++) {
            if (q[i] == '\n') {
                if (i + 1 - ls > 512) /* RFC 5321 4.5.3.1.5 */
                    FAIL("reply line of %zu octets", i + 1 - ls);
                ls = i + 1;
            }
        }
        if (m->ended)
            FAIL("reply %d after the session ended with %d", r.code, m->last_code);
        if (m->n_replies == 0 && r.code != 220 && r.code != 554 && r.code != 421)
            FAIL("greeting %d", r.code);
        if (r.code == 221 || r.code == 421)
            m->ended = 1;
        if (r.code == 235 && ++m->auth_ok > 1)
            FAIL("a second successful AUTH in one session");
        m->last_code = r.code;
        m->n_replies++;
        m->out_pos += used;
        se_reply_free(&r);
    }
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    return c == '/' ? 63 : -1;
}

/* Did the client send the password, base64-encoded, in some token? */
static int password_sent(const bytes *in)
{
    size_t i = 0;
    while (i < in->n) {
        while (i < in->n && b64_val(in->p[i]) < 0)
            i++;
        size_t s = i;
        while (i < in->n && b64_val(in->p[i]) >= 0)
            i++;
        bytes dec = {0};
        unsigned v = 0;
        int bits = 0;
        for (size_t k = s; k < i; k++) {
            v = v << 6 | (unsigned)b64_val(in->p[k]);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                char c = (char)(v >> bits & 0xff);
                put(&dec, &c, 1);
            }
        }
        int found = 0;
        for (size_t k = 0; dec.n >= strlen(PASSWORD) && k + strlen(PASSWORD) <= dec.n; k++)
            if (memcmp(dec.p + k, PASSWORD, strlen(PASSWORD)) == 0)
                found = 1;
        free(dec.p);
        if (found)
            return 1;
    }
    return 0;
}

static void check_address(const char *a, const char *what)
{
    if (!a)
        FAIL("%s is NULL", what);
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            FAIL("%s '%s' holds byte 0x%02x", what, a, *p);
}

/* Bare line endings in a message as stored: a LF without a CR before it, a
 * CR without a LF after it (also at the very end). */
static void count_bare(const char *p, size_t n, size_t *lf, size_t *cr)
{
    *lf = *cr = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            (*lf)++;
        if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
            (*cr)++;
    }
}

/* Ways the input could have ended a message: CRLF.CRLF (overlapping ones
 * counted) and "LAST" in any case. */
static size_t message_ends(const bytes *in)
{
    size_t k = 0;
    for (size_t i = 0; i + 5 <= in->n; i++)
        if (!memcmp(in->p + i, "\r\n.\r\n", 5))
            k++;
    for (size_t i = 0; i + 4 <= in->n; i++)
        if (!strncasecmp(in->p + i, "LAST", 4))
            k++;
    /* A command line may end in a bare LF: "DATA\n.\r\n" is an empty
     * message (the "." line comes first in the data), not a smuggled end. */
    for (size_t i = 0; i + 8 <= in->n; i++)
        if (!strncasecmp(in->p + i, "DATA\n.\r\n", 8) && (i == 0 || in->p[i - 1] == '\n'))
            k++;
    return k;
}

static void check_message(ib_smtpd *s, const ib_smtpd_conf *conf, const bytes *in,
                          size_t n_messages)
{
    ib_envelope env;
    const char *raw = NULL;
    size_t len = 0;
    memset(&env, 0, sizeof env);
    ib_smtpd_message(s, &env, &raw, &len);
    if (env.n_rcpt < 1 || env.n_rcpt > 1000 || !env.rcpt)
        FAIL("message with %zu recipients", env.n_rcpt);
    check_address(env.mail_from, "sender");
    for (size_t i = 0; i < env.n_rcpt; i++)
        check_address(env.rcpt[i], "recipient");
    if (!env.helo || strpbrk(env.helo, "\r\n"))
        FAIL("helo with a line break");
    if (!raw)
        FAIL("no message bytes");
    if (len > conf->max_size)
        FAIL("message of %zu octets over the limit of %zu", len, conf->max_size);
    uint64_t flen;
    if (ib_smtpd_message_file(s, &flen) < 0) { /* in memory: all of it is here */
        size_t lf, cr;
        count_bare(raw, len, &lf, &cr);
        if (lf != env.bare_lf || cr != env.bare_cr)
            FAIL("bare LF/CR counted %zu/%zu, the message has %zu/%zu", env.bare_lf, env.bare_cr,
                 lf, cr);
    }
    if (n_messages > message_ends(in))
        FAIL("message %zu, but the input ended only %zu (smuggling)", n_messages, message_ends(in));
}

static uint32_t rng_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 2)
        return 0;
    static const char *const auths[] = {NULL, "any", "user:" PASSWORD, "token:tok"};
    static const size_t sizes[] = {64, 1000, 100000, 10u << 20};
    ib_smtpd_conf conf = {
        .hostname = "inbox.test",
        .max_size = sizes[d[1] & 3],
        .starttls = d[0] & 1,
        .auth = auths[(d[0] >> 2) & 3],
        .auth_expired = "old",
        .chaos = NULL,
    };
    int in_tls = (d[0] >> 1) & 1;
    int partial = (d[0] >> 5) & 1;
    int store_fails = (d[0] >> 6) & 1;
    int end_by_timeout = (d[0] >> 7) & 1;
    uint32_t rng = 0x2545f491u ^ ((uint32_t)d[0] << 8 | d[1]);
    if ((d[0] >> 4) & 1) {
        conf.chaos = ib_chaos_new();
        if (!conf.chaos)
            abort();
        for (size_t i = 0; i < sizeof CHAOS_RULES / sizeof CHAOS_RULES[0]; i++) {
            char why[128];
            if ((d[1] >> (2 + i % 6)) & 1 &&
                ib_chaos_add(conf.chaos, CHAOS_RULES[i], why, sizeof why) != 0)
                FAIL("chaos rule '%s' refused: %s", CHAOS_RULES[i], why);
        }
    }
    ib_smtpd *s = ib_smtpd_new(&conf, "127.0.0.1:40000", in_tls);
    if (!s)
        abort();

    model m = {0};
    size_t pos = 2;
    int eof = 0, tls_fresh = 0, steps;
    ib_smtpd_want w = IB_SMTPD_READ;
    for (steps = 0; steps < MAX_STEPS; steps++) {
        w = ib_smtpd_step(s);
        if (w == IB_SMTPD_CLOSE)
            break;
        if (w == IB_SMTPD_WRITE) {
            size_t len;
            const char *out = ib_smtpd_out(s, &len);
            if (!len)
                FAIL("WRITE with nothing to write");
            if (len > OUT_BOUND)
                FAIL("%zu octets of output pending", len);
            /* CVE-2011-0411: replies right after the handshake answer
             * commands that came in clear before it. */
            if (tls_fresh)
                FAIL("reply after STARTTLS to input from before the handshake");
            size_t k = partial ? 1 + rng_next(&rng) % len : len;
#ifdef FUZZ_VERBOSE /* -DFUZZ_VERBOSE: show the conversation of one input */
            fprintf(stderr, "S: %.*s", (int)k, out);
#endif
            model_output(&m, out, k);
            ib_smtpd_sent(s, k);
        } else if (w == IB_SMTPD_READ) {
            if (eof)
                FAIL("READ after EOF");
            if (pos >= n) {
                eof = 1;
                tls_fresh = 0;
                if (end_by_timeout)
                    ib_smtpd_timeout(s);
                else
                    ib_smtpd_eof(s);
                continue;
            }
            uint8_t b = d[pos++];
            if (b == 0xff || b == 0xfe) {
                tls_fresh = 0;
                if (b == 0xff)
                    ib_smtpd_timeout(s);
                else
                    ib_smtpd_shutdown(s);
                continue;
            }
            size_t k = 1 + b % 64;
            if (k > n - pos)
                k = n - pos;
            if (!k)
                continue;
            put(&m.in, d + pos, k);
            tls_fresh = 0;
#ifdef FUZZ_VERBOSE
            fprintf(stderr, "C: %.*s", (int)k, (const char *)d + pos);
#endif
            if (ib_smtpd_feed(s, d + pos, k) != 0)
                FAIL("feed reported out of memory");
            pos += k;
        } else if (w == IB_SMTPD_MESSAGE) {
            check_message(s, &conf, &m.in, ++m.n_messages);
#ifdef FUZZ_VERBOSE
            fprintf(stderr, "(message stored)\n");
#endif
            ib_smtpd_stored(s, store_fails ? -1 : (int64_t)steps);
        } else if (w == IB_SMTPD_DELAY) {
            if (ib_smtpd_delay_ms(s) == 0)
                FAIL("DELAY of 0 ms");
        } else if (w == IB_SMTPD_TLS) {
            if (!conf.starttls || in_tls || m.last_code != 220 || m.out_pos != m.out.n)
                FAIL("TLS without a 220 to STARTTLS");
            in_tls = 1;
            tls_fresh = 1;
            m.auth_ok = 0;
            ib_smtpd_tls_started(s);
        } else {
            FAIL("step returned %d", (int)w);
        }
        if (m.auth_ok && conf.auth && conf.auth[0] == 'u' && !password_sent(&m.in))
            FAIL("235 without the password");
    }
    if (steps == MAX_STEPS)
        FAIL("no end after %d steps (last want %d)", steps, (int)w);
    if (m.out_pos != m.out.n)
        FAIL("session closed in the middle of a reply");
    ib_smtpd_free(s);
    ib_chaos_free(conf.chaos);
    free(m.out.p);
    free(m.in.p);
    return 0;
}
