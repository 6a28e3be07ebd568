/* SMTP reply parsing (RFC 5321 4.2, enhanced status codes RFC 2034 / RFC 3463).
 *
 * A reply is one or more lines "ddd-text" ending with a line "ddd text" (or
 * "ddd" alone).  The parser is pure: it looks at a byte range and either
 * finds one complete reply at its start, asks for more bytes, or refuses. */
#include "smtp/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 3463 2: class "." subject "." detail, class 2/4/5, 1-3 digits each,
 * followed by SP or the end of the line.  Returns its length, or 0. */
static size_t enhanced_len(const char *p, size_t n)
{
    size_t i = 0;
    if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < n && is_digit(p[i]) && i - start < 4)
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < n && p[i] != ' ')
        return 0;
    return i;
}

static void set_why(char *why, size_t whylen, const char *msg, size_t line)
{
    if (why && whylen)
        snprintf(why, whylen, "%s (reply line %zu)", msg, line);
}

/* One line of a reply, after the line end was found. */
typedef struct line {
    const char *p; /* start of the line            */
    size_t len;    /* without CR LF                 */
} line;

/* Check one complete line; returns its code or -1 with why set. */
static int check_line(line ln, size_t idx, int *last, char *why, size_t whylen)
{
    const char *p = ln.p;
    if (ln.len < 3 || !is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2])) {
        set_why(why, whylen, "not an SMTP reply: no 3-digit code", idx);
        return -1;
    }
    /* RFC 5321 4.2.1: only 2yz..5yz exist. */
    if (p[0] < '2' || p[0] > '5') {
        set_why(why, whylen, "reply code outside 2xx-5xx", idx);
        return -1;
    }
    if (ln.len > 3 && p[3] != ' ' && p[3] != '-') {
        set_why(why, whylen, "reply code not followed by space or '-'", idx);
        return -1;
    }
    for (size_t i = 3; i < ln.len; i++) {
        unsigned char c = (unsigned char)p[i];
        /* RFC 5321 4.2: textstring is HT and printable; allow 8-bit (UTF-8
         * greetings exist) but no other control byte, NUL or stray CR. */
        if (c == '\0') {
            set_why(why, whylen, "NUL byte in reply", idx);
            return -1;
        }
        if (c == '\r') {
            set_why(why, whylen, "bare CR in reply", idx);
            return -1;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            set_why(why, whylen, "control character in reply", idx);
            return -1;
        }
    }
    *last = ln.len == 3 || p[3] == ' ';
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* Append the text of one line, minus an enhanced code of the reply's class. */
static void add_text(se_buf *b, line ln, char cls, int strip, size_t idx)
{
    const char *t = ln.len > 4 ? ln.p + 4 : "";
    size_t tn = ln.len > 4 ? ln.len - 4 : 0;
    size_t el;
    if (strip && tn && t[0] == cls && (el = enhanced_len(t, tn)) > 0) {
        t += el;
        tn -= el;
        while (tn && *t == ' ') {
            t++;
            tn--;
        }
    }
    if (idx)
        se_buf_append(b, "\n", 1);
    se_buf_append(b, t, tn);
}

int se_reply_parse(const char *buf, size_t len, se_reply *out, size_t *used, char *why,
                   size_t whylen)
{
    line lines_first = {0};
    size_t pos = 0, n = 0;
    int code = 0, done = 0;

    memset(out, 0, sizeof *out);
    *used = 0;
    if (why && whylen)
        why[0] = '\0';

    /* First pass: find and check the lines, stop at the last one. */
    while (!done) {
        const char *lf = memchr(buf + pos, '\n', len - pos);
        size_t end = lf ? (size_t)(lf - buf) : len;
        size_t cont = end - pos;

        if (!lf) {
            /* Memory stays bounded: refuse an overlong partial line now. */
            if (cont > SE_REPLY_MAX_LINE + 1) {
                set_why(why, whylen, "reply line too long", n + 1);
                return -1;
            }
            return 0;
        }
        if (cont && buf[end - 1] == '\r')
            cont--; /* CRLF; a bare LF is tolerated as line end */
        if (cont > SE_REPLY_MAX_LINE) {
            set_why(why, whylen, "reply line too long", n + 1);
            return -1;
        }
        if (++n > SE_REPLY_MAX_LINES) {
            set_why(why, whylen, "too many reply lines", n);
            return -1;
        }
        line ln = {buf + pos, cont};
        int last = 0;
        int c = check_line(ln, n, &last, why, whylen);
        if (c < 0)
            return -1;
        if (n == 1) {
            code = c;
            lines_first = ln;
        } else if (c != code) {
            /* RFC 5321 4.2.1: every line of a reply carries the same code. */
            set_why(why, whylen, "reply lines carry different codes", n);
            return -1;
        }
        pos = end + 1;
        done = last;
    }

    /* RFC 2034 / RFC 3463: an enhanced code on the first line counts only
     * when its class matches the basic code; otherwise trust the basic code. */
    char cls = (char)('0' + code / 100);
    const char *t = lines_first.len > 4 ? lines_first.p + 4 : "";
    size_t tn = lines_first.len > 4 ? lines_first.len - 4 : 0;
    size_t el = (tn && t[0] == cls) ? enhanced_len(t, tn) : 0;
    if (el && el < sizeof out->enhanced) {
        memcpy(out->enhanced, t, el);
        out->enhanced[el] = '\0';
    } else {
        el = 0;
    }

    se_buf text = {0};
    size_t p2 = 0;
    for (size_t i = 0; i < n; i++) {
        const char *lf = memchr(buf + p2, '\n', len - p2);
        size_t end = (size_t)(lf - buf);
        size_t cont = end - p2;
        if (cont && buf[end - 1] == '\r')
            cont--;
        add_text(&text, (line){buf + p2, cont}, cls, el > 0, i);
        p2 = end + 1;
    }
    if (se_buf_reserve(&text, 0) < 0) {
        se_buf_free(&text);
        return -2;
    }
    out->code = code;
    out->text = se_buf_steal(&text, NULL);
    if (!out->text)
        return -2;
    out->n_lines = n;
    *used = pos;
    return 1;
}

void se_reply_free(se_reply *r)
{
    if (!r)
        return;
    free(r->text);
    r->text = NULL;
}
