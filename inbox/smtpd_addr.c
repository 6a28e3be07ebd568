/* MAIL FROM and RCPT TO (RFC 5321 4.1.1.2, 4.1.1.3): the path, its
 * limits and the parameters (SIZE, BODY, SMTPUTF8, AUTH), with the small
 * parsers the other commands share. */
#include "smtpd_int.h"

#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 256 /* RFC 5321 4.5.3.1.3 */
#define LOCAL_MAX 64     /* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX 255   /* RFC 5321 4.5.3.1.2 */

int ib_smtpd_valid_utf8(const unsigned char *p, size_t n)
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
    if (!ib_smtpd_valid_utf8((const unsigned char *)a + start, len))
        return bad;
    *addr = malloc(len + 1);
    if (!*addr)
        return "452 4.3.1 Error: out of memory";
    memcpy(*addr, a + start, len);
    (*addr)[len] = '\0';
    return NULL;
}

/* Next space-separated word of a[*i..n): returns its length. */
size_t ib_smtpd_next_word(const char *a, size_t n, size_t *i, const char **w)
{
    while (*i < n && a[*i] == ' ')
        (*i)++;
    *w = a + *i;
    size_t st = *i;
    while (*i < n && a[*i] != ' ')
        (*i)++;
    return *i - st;
}

int ib_smtpd_parse_u64(const char *p, size_t n, uint64_t *out)
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

int ib_smtpd_cmd_mail(ib_smtpd *s, const char *args, size_t n)
{
    if (!s->helo) {
        ib_smtpd_error(s, "503 5.5.1 Error: send HELO/EHLO first");
        return DONE;
    }
    if (s->conf->auth && !s->authed) {
        ib_smtpd_reply(s, "530 5.7.0 Error: authentication required"); /* RFC 4954 6 */
        return DONE;
    }
    if (s->in_mail) {
        ib_smtpd_error(s, "503 5.5.1 Error: nested MAIL command");
        return DONE;
    }
    if (!ci_prefix(args, n, "FROM:")) {
        ib_smtpd_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return DONE;
    }
    char *addr = NULL;
    size_t end;
    int eight_bit, utf8 = 0;
    const char *bad = parse_path(args + 5, n - 5, 0, &addr, &end, &eight_bit);
    if (bad) {
        ib_smtpd_error(s, bad);
        return DONE;
    }
    const char *p = args + 5 + end, *w;
    size_t rest = n - 5 - end, i = 0, wl;
    if (rest && *p != ' ')
        bad = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]";
    while (!bad && (wl = ib_smtpd_next_word(p, rest, &i, &w)) > 0) {
        uint64_t size;
        if (ci_prefix(w, wl, "SIZE=")) { /* RFC 1870 6 */
            if (ib_smtpd_parse_u64(w + 5, wl - 5, &size) < 0)
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
        ib_smtpd_error(s, bad);
        return DONE;
    }
    ib_verdict v;
    if (ib_smtpd_chaos(s, IB_STAGE_MAIL, addr, &v) == HELD) {
        free(addr);
        return HELD;
    }
    if (ib_smtpd_chaos_acts(s, &v)) {
        free(addr);
        return DONE;
    }
    s->in_mail = 1;
    s->smtputf8 = utf8;
    s->mail_from = addr;
    ib_smtpd_reply(s, "250 2.1.0 Ok");
    return DONE;
}

int ib_smtpd_cmd_rcpt(ib_smtpd *s, const char *args, size_t n)
{
    if (!s->in_mail) {
        ib_smtpd_error(s, "503 5.5.1 Error: need MAIL command");
        return DONE;
    }
    if (!ci_prefix(args, n, "TO:")) {
        ib_smtpd_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
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
            ib_smtpd_reply(s, "%s", bad);
        else
            ib_smtpd_error(s, bad);
        return DONE;
    }
    ib_verdict v;
    if (ib_smtpd_chaos(s, IB_STAGE_RCPT, addr, &v) == HELD) {
        free(addr);
        return HELD;
    }
    if (ib_smtpd_chaos_acts(s, &v)) {
        free(addr);
        s->rcpt_tried++;
        return DONE;
    }
    s->rcpt[s->n_rcpt++] = addr;
    ib_smtpd_reply(s, "250 2.1.5 Ok");
    return DONE;
}
