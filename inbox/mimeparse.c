/* Reading stored messages for display: RFC 2047 header words, RFC 2231
 * parameters, the multipart walk and the transfer decodings.  Everything
 * here reads hostile bytes: lengths come from the input, recursion stops at
 * MAX_DEPTH, the number of parts at MAX_PARTS, and output is always valid
 * UTF-8 (invalid input bytes become U+FFFD). */
#include "mimeparse.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define MAX_DEPTH 16     /* multipart nesting; deeper containers stay leaves */
#define MAX_PARTS 1000   /* leaves kept from one message                    */
#define MAX_PARAMS 64    /* parameters read from one header                 */
#define MAX_SECTIONS 64  /* RFC 2231 continuations of one parameter         */
#define MAX_BOUNDARY 200 /* RFC 2046 5.1.1 allows 70; be lenient, not silly */

/* ---- small byte helpers ------------------------------------------------ */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* p[0..n) equals the NUL-terminated s, ignoring ASCII case. */
static int ci_eq(const char *p, size_t n, const char *s)
{
    size_t i = 0;
    for (; i < n && s[i]; i++)
        if (lower((unsigned char)p[i]) != lower((unsigned char)s[i]))
            return 0;
    return i == n && s[i] == '\0';
}

static char *dup_lower(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = (char)lower((unsigned char)p[i]);
    s[n] = '\0';
    return s;
}

/* ---- UTF-8 output ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (RFC 3629 4: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 when the bytes are invalid. */
size_t ib_utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return len;
}

static void put_utf8_clean(se_buf *out, const char *s, size_t n)
{
    if (n == 0)
        return;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        size_t k = ib_utf8_seq(p + i, n - i);
        if (k) {
            i += k;
            continue;
        }
        se_buf_append(out, s + run, i - run);
        se_buf_append(out, "\xef\xbf\xbd", 3); /* U+FFFD */
        run = ++i;
    }
    se_buf_append(out, s + run, n - run);
}

static int is_utf8_name(const char *cs)
{
    return !cs || !*cs || ci_eq(cs, strlen(cs), "utf-8") || ci_eq(cs, strlen(cs), "utf8") ||
           ci_eq(cs, strlen(cs), "us-ascii") || ci_eq(cs, strlen(cs), "ascii");
}

/* Append bytes in `charset` as UTF-8.  Only plain charset names reach
 * iconv_open (glibc reads "//" suffixes as options). */
static void put_charset(se_buf *out, const char *charset, const char *p, size_t n)
{
    if (n == 0)
        return;
    size_t cl = charset ? strlen(charset) : 0;
    int sane = cl > 0 && cl < 40;
    for (size_t i = 0; sane && i < cl; i++) {
        int c = (unsigned char)charset[i];
        sane = (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' ||
               c == '_' || c == '.' || c == ':';
    }
    iconv_t cd = (iconv_t)-1;
    if (sane && !is_utf8_name(charset))
        cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        put_utf8_clean(out, p, n);
        return;
    }
    char *in = (char *)p;
    size_t left = n;
    while (left > 0 && !out->oom) {
        if (se_buf_reserve(out, (left < 16384 ? left * 4 : 65536) + 16) < 0)
            break;
        char *o = out->data + out->len;
        size_t room = out->cap - out->len - 1, before = room;
        size_t r = iconv(cd, &in, &left, &o, &room);
        out->len += before - room;
        out->data[out->len] = '\0';
        if (r == (size_t)-1 && errno == E2BIG)
            continue;
        if (r == (size_t)-1) { /* EILSEQ or a truncated sequence (EINVAL) */
            se_buf_append(out, "\xef\xbf\xbd", 3);
            in++;
            left--;
        }
    }
    iconv_close(cd);
}

/* Header text for display: control characters (CR, LF, NUL...) become
 * spaces so that a decoded value stays one harmless line. */
static char *finish_line(se_buf *b)
{
    if (se_buf_append(b, "", 0) < 0) {
        se_buf_free(b);
        return NULL;
    }
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->data[i] < 0x20 || b->data[i] == 0x7f)
            b->data[i] = ' ';
    return se_buf_steal(b, NULL);
}

/* ---- base64 and quoted-printable -------------------------------------- */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* RFC 2045 6.8: characters outside the alphabet are ignored; '=' ends the
 * data.  A truncated last quantum still yields its whole bytes. */
static void b64_decode(se_buf *out, const char *p, size_t n)
{
    unsigned acc = 0;
    int bits = 0;
    if (se_buf_reserve(out, n / 4 * 3 + 3) < 0)
        return;
    for (size_t i = 0; i < n && p[i] != '='; i++) {
        int v = b64val((unsigned char)p[i]);
        if (v < 0)
            continue;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (char)((acc >> bits) & 0xff);
        }
    }
    out->data[out->len] = '\0';
}

/* RFC 2045 6.7: =XX octets, "=" at the end of a line is a soft break, and
 * trailing whitespace on a line was added in transport (rule 3). */
static void qp_decode(se_buf *out, const char *p, size_t n)
{
    size_t i = 0;
    if (se_buf_reserve(out, n) < 0)
        return;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n, next = nl ? end + 1 : n;
        size_t eol = end > i && p[end - 1] == '\r' ? end - 1 : end;
        size_t stop = eol;
        while (stop > i && is_wsp((unsigned char)p[stop - 1]))
            stop--;
        int soft = stop > i && p[stop - 1] == '=';
        if (soft)
            stop--;
        for (size_t j = i; j < stop; j++) {
            int h, l;
            if (p[j] == '=' && j + 2 < stop && (h = hexval((unsigned char)p[j + 1])) >= 0 &&
                (l = hexval((unsigned char)p[j + 2])) >= 0) {
                out->data[out->len++] = (char)(h << 4 | l);
                j += 2;
            } else {
                out->data[out->len++] = p[j];
            }
        }
        if (!soft && nl) /* keep the line break as it was written */
            for (size_t j = eol; j < next; j++)
                out->data[out->len++] = p[j];
        i = next;
    }
    out->data[out->len] = '\0';
}

/* ---- RFC 2047 encoded-words ------------------------------------------- */

typedef struct word {
    const char *cs; /* charset */
    size_t cs_len;  /* without an RFC 2231 "*lang" suffix */
    int enc;        /* 'b' or 'q' */
    const char *txt;
    size_t txt_len;
    size_t len; /* whole "=?...?=" */
} word;

/* RFC 2047 2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?="
 * with no spaces or '?' inside the text. */
static int parse_word(const char *p, size_t n, word *w)
{
    if (n < 8 || p[0] != '=' || p[1] != '?')
        return 0;
    size_t i = 2;
    while (i < n && p[i] != '?' && p[i] != ' ' && p[i] != '\t')
        i++;
    if (i == 2 || i + 2 >= n || p[i] != '?' || p[i + 2] != '?')
        return 0;
    w->cs = p + 2;
    w->cs_len = i - 2;
    const char *star = memchr(w->cs, '*', w->cs_len);
    if (star)
        w->cs_len = (size_t)(star - w->cs);
    w->enc = lower((unsigned char)p[i + 1]);
    if (w->enc != 'b' && w->enc != 'q')
        return 0;
    size_t t = i + 3, j = t;
    while (j + 1 < n && !(p[j] == '?' && p[j + 1] == '=')) {
        if (p[j] == ' ' || p[j] == '\t' || p[j] == '?')
            return 0;
        j++;
    }
    if (j + 1 >= n)
        return 0;
    w->txt = p + t;
    w->txt_len = j - t;
    w->len = j + 2;
    return w->cs_len > 0 && w->cs_len < 40;
}

static void word_bytes(se_buf *out, const word *w)
{
    if (w->enc == 'b') {
        b64_decode(out, w->txt, w->txt_len);
        return;
    }
    for (size_t i = 0; i < w->txt_len; i++) { /* RFC 2047 4.2: "Q" */
        int h, l;
        char c = w->txt[i];
        if (c == '_') {
            c = ' ';
        } else if (c == '=' && i + 2 < w->txt_len &&
                   (h = hexval((unsigned char)w->txt[i + 1])) >= 0 &&
                   (l = hexval((unsigned char)w->txt[i + 2])) >= 0) {
            c = (char)(h << 4 | l);
            i += 2;
        }
        se_buf_append(out, &c, 1);
    }
}

/* Decode into out.  Adjacent words are decoded into one byte run per
 * charset before conversion, so a character split across two words (a
 * common sender bug) still comes out whole. */
static void decode_words(se_buf *out, const char *s, size_t n)
{
    se_buf run = {0};
    char cs[40] = "";
    size_t i = 0, lit = 0;
    int after_word = 0;
    while (i < n) {
        word w;
        if (!(s[i] == '=' && i + 1 < n && s[i + 1] == '?' && parse_word(s + i, n - i, &w))) {
            i++;
            continue;
        }
        /* RFC 2047 6.2: whitespace between adjacent encoded-words is ignored */
        int only_ws = after_word;
        for (size_t k = lit; only_ws && k < i; k++)
            only_ws = is_wsp((unsigned char)s[k]);
        int same = run.len > 0 && ci_eq(w.cs, w.cs_len, cs);
        if (!only_ws || !same) {
            put_charset(out, cs, run.data, run.len);
            se_buf_reset(&run);
            if (!only_ws)
                put_utf8_clean(out, s + lit, i - lit);
        }
        memcpy(cs, w.cs, w.cs_len);
        cs[w.cs_len] = '\0';
        word_bytes(&run, &w);
        i += w.len;
        lit = i;
        after_word = 1;
    }
    put_charset(out, cs, run.data, run.len);
    put_utf8_clean(out, s + lit, n - lit);
    if (run.oom)
        out->oom = 1;
    se_buf_free(&run);
}

char *ib_decode_header(const char *value, size_t len)
{
    se_buf unf = {0}, out = {0};
    /* RFC 5322 2.2.3: unfolding removes the CRLF of a folded line */
    for (size_t i = 0; i < len; i++)
        if (value[i] != '\r' && value[i] != '\n')
            se_buf_append(&unf, value + i, 1);
    if (se_buf_append(&unf, "", 0) < 0) {
        se_buf_free(&unf);
        return NULL;
    }
    decode_words(&out, unf.data, unf.len);
    se_buf_free(&unf);
    return finish_line(&out);
}

/* ---- header blocks ----------------------------------------------------- */

typedef struct hblock {
    size_t hdr_len;  /* header block, up to the end of its last line */
    size_t body_off; /* where the body starts                         */
} hblock;

/* RFC 5322 2.2: field-name = printable ASCII but ':' (obsolete syntax
 * allows whitespace before the colon). */
static int field_name_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':')
        i++;
    size_t name = i;
    while (i < n && is_wsp((unsigned char)p[i]))
        i++;
    return name > 0 && i < n && p[i] == ':' ? (int)(name < 1000 ? name : 0) : 0;
}

/* The header block ends at the first empty line, or (leniently) at the
 * first line that is neither a field nor a continuation. */
static hblock split_headers(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        size_t eol = end > i && p[end - 1] == '\r' ? end - 1 : end;
        if (eol == i)
            return (hblock){i, nl ? end + 1 : n};
        if (!(i > 0 && is_wsp((unsigned char)p[i])) && field_name_len(p + i, eol - i) == 0)
            return (hblock){i, i};
        i = nl ? end + 1 : n;
    }
    return (hblock){n, n};
}

/* Find the first field `name` in the header block; its raw value (after
 * the colon, folding still in) goes to *v. */
static int find_field(const char *h, size_t n, const char *name, const char **v, size_t *vlen)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(h + i, '\n', n - i);
        size_t next = nl ? (size_t)(nl - h) + 1 : n;
        int nlen = is_wsp((unsigned char)h[i]) ? 0 : field_name_len(h + i, next - i);
        if (nlen > 0 && ci_eq(h + i, (size_t)nlen, name)) {
            size_t s = i + (size_t)nlen;
            while (h[s] != ':')
                s++;
            s++;
            size_t e = next;
            while (e < n && is_wsp((unsigned char)h[e])) { /* continuation lines */
                const char *nl2 = memchr(h + e, '\n', n - e);
                e = nl2 ? (size_t)(nl2 - h) + 1 : n;
            }
            *v = h + s;
            *vlen = e - s;
            return 1;
        }
        i = next;
    }
    return 0;
}

/* Unfolded value with surrounding whitespace trimmed, into b (not decoded). */
static void unfold_trim(se_buf *b, const char *v, size_t n)
{
    se_buf_reset(b);
    for (size_t i = 0; i < n; i++)
        if (v[i] != '\r' && v[i] != '\n')
            se_buf_append(b, v + i, 1);
    se_buf_append(b, "", 0);
    if (b->oom)
        return;
    size_t s = 0, e = b->len;
    while (s < e && is_wsp((unsigned char)b->data[s]))
        s++;
    while (e > s && is_wsp((unsigned char)b->data[e - 1]))
        e--;
    memmove(b->data, b->data + s, e - s);
    b->len = e - s;
    b->data[b->len] = '\0';
}

char *ib_header_get(const char *raw, size_t len, const char *name)
{
    hblock hb = split_headers(raw, len);
    const char *v;
    size_t vlen;
    if (!find_field(raw, hb.hdr_len, name, &v, &vlen))
        return NULL;
    se_buf b = {0};
    unfold_trim(&b, v, vlen);
    char *out = b.oom ? NULL : ib_decode_header(b.data, b.len);
    se_buf_free(&b);
    return out;
}

/* ---- parameters: RFC 2045 5.1, RFC 2231 -------------------------------- */

typedef struct param {
    size_t name, name_len; /* offsets into the arena */
    size_t val, val_len;
} param;

typedef struct params {
    se_buf arena;
    param p[MAX_PARAMS];
    int n;
    size_t main_off, main_len; /* the value before the first ';' (type, disposition) */
} params;

static int tspecial(int c)
{
    return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static size_t skip_cfws(const char *s, size_t n, size_t i)
{
    while (i < n) {
        if (is_wsp((unsigned char)s[i])) {
            i++;
        } else if (s[i] == '(') { /* RFC 5322 3.2.2 comment, nesting allowed */
            int depth = 0;
            for (; i < n; i++) {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                else if (s[i] == '(')
                    depth++;
                else if (s[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
            }
        } else {
            break;
        }
    }
    return i;
}

/* s is an unfolded header value. */
static void parse_params(params *ps, const char *s, size_t n)
{
    size_t i = skip_cfws(s, n, 0), m = i;
    while (m < n && s[m] != ';' && !is_wsp((unsigned char)s[m]) && s[m] != '(')
        m++;
    ps->main_off = i;
    ps->main_len = m - i;
    i = m;
    while (i < n && ps->n < MAX_PARAMS) {
        const char *semi = memchr(s + i, ';', n - i);
        if (!semi)
            break;
        i = skip_cfws(s, n, (size_t)(semi - s) + 1);
        size_t ns = i;
        while (i < n && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 &&
               !tspecial((unsigned char)s[i]))
            i++;
        size_t ne = i;
        i = skip_cfws(s, n, i);
        if (ne == ns || i >= n || s[i] != '=')
            continue;
        i = skip_cfws(s, n, i + 1);
        param *pp = &ps->p[ps->n];
        pp->name = ps->arena.len;
        pp->name_len = ne - ns;
        se_buf_append(&ps->arena, s + ns, ne - ns);
        pp->val = ps->arena.len;
        if (i < n && s[i] == '"') { /* quoted-string with quoted-pairs */
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                se_buf_append(&ps->arena, s + i, 1);
            }
            i++;
        } else {
            size_t vs = i;
            while (i < n && s[i] != ';' && !is_wsp((unsigned char)s[i]))
                i++;
            se_buf_append(&ps->arena, s + vs, i - vs);
        }
        pp->val_len = ps->arena.len - pp->val;
        ps->n++;
    }
    if (ps->arena.oom) /* offsets may point past what the arena holds */
        ps->n = 0;
}

static const param *param_find(const params *ps, const char *name)
{
    for (int k = 0; k < ps->n; k++)
        if (ci_eq(ps->arena.data + ps->p[k].name, ps->p[k].name_len, name))
            return &ps->p[k];
    return NULL;
}

static void pct_decode(se_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            char c = (char)(h << 4 | l);
            se_buf_append(b, &c, 1);
            i += 2;
        } else {
            se_buf_append(b, s + i, 1);
        }
    }
}

/* RFC 2231 3-4: name*=charset'lang'%XX, and continuations name*0, name*1*...
 * Returns 1 and UTF-8 in out when an extended form is present. */
static int param_2231(const params *ps, const char *name, se_buf *out)
{
    char key[96], charset[40] = "";
    se_buf bytes = {0};
    int found = 0;
    size_t nl = strlen(name);
    if (nl > 64)
        return 0;
    for (int sec = -1; sec < MAX_SECTIONS; sec++) {
        const param *pp = NULL;
        int encoded = 1;
        if (sec < 0) {
            snprintf(key, sizeof key, "%s*", name);
            pp = param_find(ps, key);
            if (!pp)
                continue;
        } else {
            snprintf(key, sizeof key, "%s*%d*", name, sec);
            pp = param_find(ps, key);
            if (!pp) {
                snprintf(key, sizeof key, "%s*%d", name, sec);
                pp = param_find(ps, key);
                encoded = 0;
            }
            if (!pp)
                break; /* RFC 2231 3: sections are numbered without gaps */
        }
        const char *v = ps->arena.data + pp->val;
        size_t vl = pp->val_len;
        if (encoded && sec <= 0) { /* only the first section names the charset */
            const char *q1 = memchr(v, '\'', vl);
            const char *q2 = q1 ? memchr(q1 + 1, '\'', vl - (size_t)(q1 + 1 - v)) : NULL;
            if (q2) {
                size_t cl = (size_t)(q1 - v) < sizeof charset ? (size_t)(q1 - v) : 0;
                memcpy(charset, v, cl);
                charset[cl] = '\0';
                vl -= (size_t)(q2 + 1 - v);
                v = q2 + 1;
            }
        }
        if (encoded)
            pct_decode(&bytes, v, vl);
        else
            se_buf_append(&bytes, v, vl);
        found = 1;
        if (sec < 0)
            break;
    }
    if (found)
        put_charset(out, charset, bytes.data, bytes.len);
    if (bytes.oom)
        out->oom = 1;
    se_buf_free(&bytes);
    return found;
}

/* A parameter's value as decoded UTF-8 (malloc'd), or NULL. */
static char *param_get(const params *ps, const char *name)
{
    se_buf out = {0};
    if (!param_2231(ps, name, &out)) {
        const param *pp = param_find(ps, name);
        if (!pp)
            return NULL;
        /* Not standard (RFC 2047 5), but many mailers encode filenames so */
        decode_words(&out, ps->arena.data + pp->val, pp->val_len);
    }
    return finish_line(&out);
}

/* ---- the multipart walk ------------------------------------------------ */

typedef struct walk {
    ib_part *parts;
    size_t n, cap;
    int oom;
} walk;

static const char *field_value(const char *h, size_t hl, const char *name, se_buf *tmp)
{
    const char *v;
    size_t vl;
    if (!find_field(h, hl, name, &v, &vl))
        return NULL;
    unfold_trim(tmp, v, vl);
    return tmp->oom ? NULL : tmp->data;
}

/* Start of the next delimiter line "--boundary" at or after `from`
 * (RFC 2046 5.1.1: at the start of a line, then optional whitespace and the
 * line end, or "--" for the close delimiter). */
static int next_delim(const char *b, size_t n, size_t from, const char *bd, size_t bl, size_t *at,
                      size_t *after, int *close)
{
    size_t i = from;
    while (i + 2 + bl <= n) {
        const char *d = memchr(b + i, '-', n - i);
        if (!d)
            return 0;
        i = (size_t)(d - b);
        if (i + 2 + bl > n)
            return 0;
        if ((i == 0 || b[i - 1] == '\n') && b[i + 1] == '-' && memcmp(b + i + 2, bd, bl) == 0) {
            size_t j = i + 2 + bl;
            int cl = j + 1 < n && b[j] == '-' && b[j + 1] == '-';
            if (cl)
                j += 2;
            while (j < n && (is_wsp((unsigned char)b[j]) || b[j] == '\r'))
                j++;
            if (j == n || b[j] == '\n' || cl) {
                const char *nl = cl ? memchr(b + j, '\n', n - j) : (j < n ? b + j : NULL);
                *at = i;
                *after = nl ? (size_t)(nl - b) + 1 : n;
                *close = cl;
                return 1;
            }
        }
        i++;
    }
    return 0;
}

static void walk_entity(walk *w, const char *p, size_t n, int depth, int in_digest);

static void add_leaf(walk *w, const char *p, size_t n, hblock hb, const char *type,
                     const params *ct, int decode)
{
    if (w->n >= MAX_PARTS)
        return;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        ib_part *np = realloc(w->parts, cap * sizeof *np);
        if (!np) {
            w->oom = 1;
            return;
        }
        w->parts = np;
        w->cap = cap;
    }
    ib_part *pt = &w->parts[w->n];
    memset(pt, 0, sizeof *pt);
    se_buf tmp = {0}, body = {0};
    const char *body_p = p + hb.body_off;
    size_t body_n = n - hb.body_off;
    const char *cte = decode ? field_value(p, hb.hdr_len, "Content-Transfer-Encoding", &tmp) : NULL;
    if (cte && ci_eq(cte, strcspn(cte, " \t;("), "base64"))
        b64_decode(&body, body_p, body_n);
    else if (cte && ci_eq(cte, strcspn(cte, " \t;("), "quoted-printable"))
        qp_decode(&body, body_p, body_n);
    else
        se_buf_append(&body, body_p, body_n);
    se_buf_append(&body, "", 0);

    pt->content_type = strdup(type);
    const param *cs = param_find(ct, "charset");
    if (cs)
        pt->charset = dup_lower(ct->arena.data + cs->val, cs->val_len);
    params cd = {0};
    const char *disp = field_value(p, hb.hdr_len, "Content-Disposition", &tmp);
    if (disp)
        parse_params(&cd, disp, strlen(disp));
    int attach = disp && ci_eq(disp + cd.main_off, cd.main_len, "attachment");
    int disp_inline = disp && ci_eq(disp + cd.main_off, cd.main_len, "inline");
    pt->filename = param_get(&cd, "filename");
    if (!pt->filename)
        pt->filename = param_get(ct, "name");
    const char *cid = field_value(p, hb.hdr_len, "Content-ID", &tmp);
    if (cid) {
        size_t s = 0, e = strlen(cid);
        if (s < e && cid[s] == '<')
            s++;
        if (e > s && cid[e - 1] == '>')
            e--;
        pt->content_id = strndup(cid + s, e - s);
    }
    /* A named part is an attachment unless it says it is inline and has a
     * Content-ID (an image the HTML shows, RFC 2387 / RFC 2392). */
    int inline_cid = disp_inline && cid;
    pt->is_attachment =
        attach || (pt->filename && strncmp(type, "text/", 5) != 0 && !inline_cid);
    pt->headers = strndup(p, hb.hdr_len);
    pt->body_len = body.len;
    pt->body = se_buf_steal(&body, NULL);
    int bad = tmp.oom || cd.arena.oom || body.oom || !pt->content_type || !pt->headers ||
              !pt->body || (cs && !pt->charset) || (cid && !pt->content_id);
    se_buf_free(&tmp);
    se_buf_free(&cd.arena);
    w->n++;
    if (bad)
        w->oom = 1;
}

static void walk_multipart(walk *w, const char *body, size_t n, const char *bd, int depth,
                           int digest)
{
    size_t bl = strlen(bd), at, after, pos;
    int close;
    if (!next_delim(body, n, 0, bd, bl, &at, &after, &close) || close)
        return;
    for (;;) {
        pos = after;
        int more = next_delim(body, n, pos, bd, bl, &at, &after, &close);
        size_t end = more ? at : n;                     /* a missing close delimiter ends at EOF */
        if (more && end > pos && body[end - 1] == '\n') /* the CRLF belongs to the delimiter */
            end -= end - 1 > pos && body[end - 2] == '\r' ? 2 : 1;
        walk_entity(w, body + pos, end - pos, depth + 1, digest);
        if (!more || close || w->oom || w->n >= MAX_PARTS)
            return;
    }
}

/* RFC 2045 5.1: type "/" subtype, each a token (no CTLs, spaces, non-ASCII
 * or tspecials).  Anything else gets the default type (found by fuzzing). */
static int is_mime_type(const char *s, size_t n)
{
    size_t slash = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' && slash == n) {
            slash = i;
            continue;
        }
        if (c <= 0x20 || c >= 0x7f || tspecial(c))
            return 0;
    }
    return slash > 0 && slash + 1 < n;
}

static void walk_entity(walk *w, const char *p, size_t n, int depth, int in_digest)
{
    hblock hb = split_headers(p, n);
    se_buf tmp = {0};
    params ct = {0};
    char type[128];
    const char *v = field_value(p, hb.hdr_len, "Content-Type", &tmp);
    if (v)
        parse_params(&ct, v, strlen(v));
    /* RFC 2045 5.2 / RFC 2046 5.1.5: the defaults when absent or invalid */
    const char *dflt = in_digest ? "message/rfc822" : "text/plain";
    if (v && ct.main_len > 2 && ct.main_len < sizeof type &&
        is_mime_type(v + ct.main_off, ct.main_len)) {
        for (size_t i = 0; i < ct.main_len; i++)
            type[i] = (char)lower((unsigned char)v[ct.main_off + i]);
        type[ct.main_len] = '\0';
    } else {
        strcpy(type, dflt);
    }
    if (strncmp(type, "multipart/", 10) == 0 && depth < MAX_DEPTH) {
        const param *b = param_find(&ct, "boundary");
        size_t before = w->n;
        if (b && b->val_len > 0 && b->val_len <= MAX_BOUNDARY) {
            char bd[MAX_BOUNDARY + 1];
            memcpy(bd, ct.arena.data + b->val, b->val_len);
            bd[b->val_len] = '\0';
            walk_multipart(w, p + hb.body_off, n - hb.body_off, bd, depth,
                           strcmp(type, "multipart/digest") == 0);
        }
        if (w->n == before && !w->oom) /* no boundary, or none found: show it as text */
            add_leaf(w, p, n, hb, "text/plain", &ct, 0);
    } else {
        /* past MAX_DEPTH a container is kept whole, undecoded */
        add_leaf(w, p, n, hb, type, &ct, strncmp(type, "multipart/", 10) != 0);
    }
    if (tmp.oom || ct.arena.oom)
        w->oom = 1;
    se_buf_free(&tmp);
    se_buf_free(&ct.arena);
}

int ib_mime_parts(const char *raw, size_t len, ib_part **parts, size_t *n)
{
    walk w = {0};
    walk_entity(&w, raw, len, 0, 0);
    if (w.oom) {
        ib_mime_parts_free(w.parts, w.n);
        *parts = NULL;
        *n = 0;
        return -1;
    }
    *parts = w.parts;
    *n = w.n;
    return 0;
}

void ib_mime_parts_free(ib_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(parts[i].content_type);
        free(parts[i].charset);
        free(parts[i].filename);
        free(parts[i].content_id);
        free(parts[i].headers);
        free(parts[i].body);
    }
    free(parts);
}
