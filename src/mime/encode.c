/* Transfer encodings (RFC 2045) and header encodings (RFC 2047, RFC 2231).
 * Header helpers find the current column by looking back to the last line
 * break in the buffer, so callers need not track it. */
#include "mime/encode.h"

#include <string.h>

/* RFC 5322 2.1.1: lines SHOULD be <= 78 characters, MUST be <= 998. */
#define LINE_SOFT 78
#define LINE_HARD 998
/* Longest single-line rendering we allow before switching to a form that
 * folds (encoded-words), leaving room for the rest of the line. */
#define PHRASE_MAX 800
/* RFC 2047 2: an encoded-word is at most 75 characters. */
#define EW_MAX 75
#define EW_OVERHEAD 12                                /* "=?UTF-8?B?" + "?=" */
#define EW_BYTES_MAX ((EW_MAX - EW_OVERHEAD) / 4 * 3) /* 45 octets of text */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex[] = "0123456789ABCDEF";

/* Length of the UTF-8 sequence at s[0..n), or 0 if it is not well-formed
 * (RFC 3629 4: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

int se_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

static void b64_quantum(char dst[4], const unsigned char *s, size_t k)
{
    unsigned v = (unsigned)s[0] << 16;
    if (k > 1)
        v |= (unsigned)s[1] << 8;
    if (k > 2)
        v |= s[2];
    dst[0] = b64[(v >> 18) & 63];
    dst[1] = b64[(v >> 12) & 63];
    dst[2] = k > 1 ? b64[(v >> 6) & 63] : '=';
    dst[3] = k > 2 ? b64[v & 63] : '=';
}

static int b64_append(se_buf *out, const unsigned char *s, size_t n)
{
    if (se_buf_reserve(out, (n + 2) / 3 * 4) < 0)
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        char q[4];
        b64_quantum(q, s + i, n - i < 3 ? n - i : 3);
        se_buf_append(out, q, 4);
    }
    return out->oom ? -1 : 0;
}

int se_base64_lines(se_buf *out, const void *data, size_t n)
{
    const unsigned char *p = data;
    /* RFC 2045 6.8: no more than 76 characters per line (57 input octets). */
    for (size_t i = 0; i < n; i += 57) {
        b64_append(out, p + i, n - i < 57 ? n - i : 57);
        se_buf_append(out, "\r\n", 2);
    }
    return out->oom ? -1 : 0;
}

/* RFC 2045 6.7 rule 2: literal representation. */
static int qp_literal(unsigned char c)
{
    return (c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t';
}

int se_qp_encode(se_buf *out, const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            se_buf_append(out, "\r\n", 2); /* rule 4: hard line break */
            i++;
            col = 0;
            continue;
        }
        int at_eol = i + 1 == n || (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n');
        char tok[3];
        size_t tl;
        /* Rule 3: whitespace at the end of a line must be encoded. */
        if (qp_literal(s[i]) && !(at_eol && (s[i] == ' ' || s[i] == '\t'))) {
            tok[0] = (char)s[i];
            tl = 1;
        } else {
            tok[0] = '=';
            tok[1] = hex[s[i] >> 4];
            tok[2] = hex[s[i] & 15];
            tl = 3;
        }
        /* Rule 5: lines <= 76 characters, the soft break "=" included; an
         * =XX is never split because it is placed as one token. */
        size_t limit = at_eol ? 76 : 75;
        if (col + tl > limit) {
            se_buf_append(out, "=\r\n", 3);
            col = 0;
        }
        se_buf_append(out, tok, tl);
        col += tl;
    }
    return out->oom ? -1 : 0;
}

int se_crlf_normalise(se_buf *out, const char *text, size_t n)
{
    size_t run = 0; /* start of the pending run of ordinary bytes */
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '\r' && text[i] != '\n')
            continue;
        se_buf_append(out, text + run, i - run);
        se_buf_append(out, "\r\n", 2);
        if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')
            i++;
        run = i + 1;
    }
    se_buf_append(out, text + run, n - run);
    return out->oom ? -1 : 0;
}

static size_t current_column(const se_buf *out)
{
    size_t i = out->len;
    while (i > 0 && out->data[i - 1] != '\n')
        i--;
    return out->len - i;
}

/* RFC 2047 B encoded-words for s[0..n), the first starting at column col,
 * later ones on continuation lines.  Each word holds whole UTF-8
 * characters (RFC 2047 5 (3)) and adjacent words are separated by folding
 * white space (RFC 2047 5 (1)), never run together. */
static int put_encoded_words(se_buf *out, const char *s, size_t n, size_t col)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t room = col < LINE_SOFT ? LINE_SOFT - col : 0;
        if (room > EW_MAX)
            room = EW_MAX;
        size_t cap = room > EW_OVERHEAD ? (room - EW_OVERHEAD) / 4 * 3 : 0;
        size_t take = 0;
        while (i + take < n) {
            size_t l = utf8_seq(p + i + take, n - i - take);
            if (!l)
                l = 1; /* callers validate; never loop forever */
            if (take + l > cap && take > 0)
                break;
            take += l;
            if (take >= cap)
                break;
        }
        se_buf_puts(out, "=?UTF-8?B?");
        b64_append(out, p + i, take);
        se_buf_puts(out, "?=");
        i += take;
        if (i < n) {
            se_buf_append(out, "\r\n ", 3);
            col = 1;
        }
    }
    return out->oom ? -1 : 0;
}

/* A value that Python & co. would decode as RFC 2047 although it was meant
 * literally; such values are encoded so they read back unchanged. */
static int looks_encoded(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '=' && s[i + 1] == '?')
            return 1;
    return 0;
}

static int ascii_printable(const char *s, size_t n, int tab_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 || c > 0x7e) && !(tab_ok && c == '\t'))
            return 0;
    }
    return 1;
}

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 5322 2.2.3: fold printable ASCII only where white space already is,
 * by inserting CRLF before it.  Returns 1 if some line would exceed 998. */
static int fold_ascii(se_buf *out, const char *v, size_t n, size_t col)
{
    size_t line_start_col = col, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && is_wsp(v[j]))
            j++;
        int has_word = j < n;
        while (j < n && !is_wsp(v[j]))
            j++;
        size_t seg = j - i;
        /* Fold before the segment's white space, never leaving a line of
         * white space only (RFC 5322 3.2.2 obs-FWS) nor an empty first line. */
        if (col + seg > LINE_SOFT && is_wsp(v[i]) && has_word && col > line_start_col) {
            se_buf_append(out, "\r\n", 2);
            col = 0;
            line_start_col = 0;
        }
        if (col + seg > LINE_HARD)
            return 1;
        se_buf_append(out, v + i, seg);
        col += seg;
        i = j;
    }
    return 0;
}

int se_header_unstructured(se_buf *out, const char *name, const char *value)
{
    const char *v = value ? value : "";
    size_t n = strlen(v), mark = out->len;
    se_buf_printf(out, "%s: ", name);
    size_t col = current_column(out);
    /* Leading white space would be taken for part of the separator and
     * dropped by readers; an encoded-word keeps it. */
    if (ascii_printable(v, n, 1) && !looks_encoded(v, n) && !(n && is_wsp(v[0]))) {
        if (fold_ascii(out, v, n, col) == 0) {
            se_buf_append(out, "\r\n", 2);
            return out->oom ? -1 : 0;
        }
        /* A word too long for any line: encoded-words can be split. */
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
        se_buf_printf(out, "%s: ", name);
    }
    put_encoded_words(out, v, n, col);
    se_buf_append(out, "\r\n", 2);
    return out->oom ? -1 : 0;
}

/* A phrase made of RFC 5322 atoms separated by single spaces, which reads
 * back exactly as written. */
static int plain_atoms(const char *s, size_t n)
{
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ') {
            if (s[i + 1] == ' ')
                return 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-/=?^_`{|}~", c)))
            return 0;
    }
    return 1;
}

int se_header_phrase(se_buf *out, const char *display)
{
    size_t n = display ? strlen(display) : 0;
    if (n == 0)
        return 0;
    if (ascii_printable(display, n, 0) && !looks_encoded(display, n)) {
        if (plain_atoms(display, n) && n <= PHRASE_MAX) {
            se_buf_append(out, display, n);
            return out->oom ? -1 : 0;
        }
        size_t quoted = 2;
        for (size_t i = 0; i < n; i++)
            quoted += (display[i] == '"' || display[i] == '\\') ? 2 : 1;
        if (quoted <= PHRASE_MAX) {
            /* RFC 5322 3.2.4: quoted-string with quoted-pairs. */
            se_buf_append(out, "\"", 1);
            for (size_t i = 0; i < n; i++) {
                if (display[i] == '"' || display[i] == '\\')
                    se_buf_append(out, "\\", 1);
                se_buf_append(out, display + i, 1);
            }
            se_buf_append(out, "\"", 1);
            return out->oom ? -1 : 0;
        }
    }
    /* RFC 2047 5 (3): whole encoded-words standing for the whole phrase,
     * never inside a quoted-string.  A name that fits in one word gets one
     * word even past column 78: some decoders (Python's email) wrongly keep
     * the space between adjacent encoded-words of a phrase. */
    size_t col = current_column(out);
    if (n <= EW_BYTES_MAX && col < LINE_SOFT)
        col = 0;
    return put_encoded_words(out, display, n, col);
}

/* RFC 2231 7: attribute-char, the bytes that need no %XX. */
static int attr_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f)
        return 0;
    return !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

static size_t pct_len(const unsigned char *p, size_t l)
{
    size_t k = 0;
    for (size_t i = 0; i < l; i++)
        k += attr_char(p[i]) ? 1 : 3;
    return k;
}

static void pct_append(se_buf *out, const unsigned char *p, size_t l)
{
    for (size_t i = 0; i < l; i++) {
        if (attr_char(p[i])) {
            se_buf_append(out, p + i, 1);
        } else {
            char e[3] = {'%', hex[p[i] >> 4], hex[p[i] & 15]};
            se_buf_append(out, e, 3);
        }
    }
}

/* Parameter values up to this many characters stay one quoted-string. */
#define PARAM_PLAIN_MAX 60
/* Encoded octets per RFC 2231 continuation line. */
#define PARAM_CHUNK 54

int se_mime_param(se_buf *out, const char *name, const char *value)
{
    size_t n = strlen(value), nl = strlen(name);
    const unsigned char *p = (const unsigned char *)value;
    size_t col = current_column(out);

    if (ascii_printable(value, n, 0) && n <= PARAM_PLAIN_MAX && !looks_encoded(value, n)) {
        size_t q = 0;
        for (size_t i = 0; i < n; i++)
            q += (value[i] == '"' || value[i] == '\\') ? 2 : 1;
        se_buf_puts(out, col + 2 + nl + 3 + q > LINE_SOFT ? ";\r\n " : "; ");
        se_buf_printf(out, "%s=\"", name);
        for (size_t i = 0; i < n; i++) {
            if (value[i] == '"' || value[i] == '\\')
                se_buf_append(out, "\\", 1);
            se_buf_append(out, value + i, 1);
        }
        se_buf_append(out, "\"", 1);
        return out->oom ? -1 : 0;
    }

    /* RFC 2231 4: charset''percent-encoded octets. */
    size_t enc = pct_len(p, n);
    if (enc <= PARAM_CHUNK) {
        se_buf_puts(out, col + 2 + nl + 9 + enc > LINE_SOFT ? ";\r\n " : "; ");
        se_buf_printf(out, "%s*=utf-8''", name);
        pct_append(out, p, n);
        return out->oom ? -1 : 0;
    }
    /* RFC 2231 3 + 4.1: numbered continuations, each one encoded and so
     * each carrying its own '*'.  Sections hold whole UTF-8 characters:
     * some decoders (Python's email) decode every section separately. */
    size_t i = 0;
    for (unsigned sec = 0; i < n; sec++) {
        size_t take = 0, k = 0;
        while (i + take < n) {
            size_t l = utf8_seq(p + i + take, n - i - take);
            if (!l)
                l = 1;
            size_t el = pct_len(p + i + take, l);
            if (k + el > PARAM_CHUNK && take > 0)
                break;
            take += l;
            k += el;
        }
        se_buf_printf(out, ";\r\n %s*%u*=%s", name, sec, sec == 0 ? "utf-8''" : "");
        pct_append(out, p + i, take);
        i += take;
    }
    return out->oom ? -1 : 0;
}
