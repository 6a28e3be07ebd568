/* The text part derived from the HTML part, for templates without body.txt.
 * Aims at what `w3m -dump` shows for a transactional email, with these
 * deliberate differences: table cells are joined by a space instead of
 * laid out in columns, links keep their URL in parentheses ("text (url)")
 * because a text part cannot be clicked otherwise, and images show their alt
 * text only (no "[img]" placeholders). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "template/mustache.h"
#include "util/buf.h"

#define WIDTH 76

typedef struct conv {
    se_buf t; /* text with '\n' breaks, not wrapped yet */
    int pending_space, pre, skip; /* skip: inside head/script/style/title */
    char skip_tag[8];
    char *href;       /* the open <a>'s href */
    size_t link_from; /* where its text starts in t */
} conv;

static int at_line_start(const conv *c) { return c->t.len == 0 || c->t.data[c->t.len - 1] == '\n'; }

static void trim_trailing(conv *c)
{
    while (c->t.len && c->t.data[c->t.len - 1] == ' ')
        c->t.data[--c->t.len] = '\0';
}

static void line_break(conv *c)
{
    trim_trailing(c);
    if (!at_line_start(c))
        se_buf_append(&c->t, "\n", 1);
    c->pending_space = 0;
}

static void para_break(conv *c)
{
    line_break(c);
    if (c->t.len && !(c->t.len >= 2 && c->t.data[c->t.len - 2] == '\n'))
        se_buf_append(&c->t, "\n", 1);
}

static void put_text(conv *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!c->pre && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f')) {
            c->pending_space = 1;
            continue;
        }
        if ((c->pre && ch == '\r') || (ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
            continue; /* control bytes have no place in a text part */
        if (c->pre && (ch == ' ' || ch == '\t')) { /* kept as is: wrap() sees no space */
            se_buf_append(&c->t, "\x01", 1);
            continue;
        }
        if (c->pending_space && !at_line_start(c))
            se_buf_append(&c->t, " ", 1);
        c->pending_space = 0;
        se_buf_append(&c->t, s + i, 1);
    }
}

static void put_utf8(se_buf *b, unsigned long cp)
{
    char u[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        se_buf_append(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        se_buf_append(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        se_buf_append(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        se_buf_append(b, u, 4);
    }
}

static const struct {
    const char *name;
    unsigned long cp; /* 0: dropped */
} entities[] = {
    {"amp", '&'},      {"lt", '<'},        {"gt", '>'},        {"quot", '"'},     {"apos", '\''},
    {"nbsp", ' '},     {"copy", 0xA9},     {"reg", 0xAE},      {"trade", 0x2122}, {"mdash", 0x2014},
    {"ndash", 0x2013}, {"hellip", 0x2026}, {"lsquo", 0x2018},  {"rsquo", 0x2019}, {"ldquo", 0x201C},
    {"rdquo", 0x201D}, {"bull", 0x2022},   {"middot", 0xB7},   {"euro", 0x20AC},  {"pound", 0xA3},
    {"yen", 0xA5},     {"cent", 0xA2},     {"times", 0xD7},    {"laquo", 0xAB},   {"raquo", 0xBB},
    {"deg", 0xB0},     {"zwnj", 0},        {"zwj", 0},         {"shy", 0},        {"ensp", ' '},
    {"emsp", ' '},     {"thinsp", ' '},    {"rarr", 0x2192},   {"larr", 0x2190},  {"check", 0x2713},
};

/* Latin-1 letters: &eacute; is U+00E9, &Eacute; 0x20 below it. */
static const struct {
    const char *name;
    unsigned long cp;
} latin[] = {
    {"agrave", 0xE0}, {"aacute", 0xE1}, {"acirc", 0xE2},  {"atilde", 0xE3}, {"auml", 0xE4},
    {"aring", 0xE5},  {"aelig", 0xE6},  {"ccedil", 0xE7}, {"egrave", 0xE8}, {"eacute", 0xE9},
    {"ecirc", 0xEA},  {"euml", 0xEB},   {"igrave", 0xEC}, {"iacute", 0xED}, {"icirc", 0xEE},
    {"iuml", 0xEF},   {"ntilde", 0xF1}, {"ograve", 0xF2}, {"oacute", 0xF3}, {"ocirc", 0xF4},
    {"otilde", 0xF5}, {"ouml", 0xF6},   {"oslash", 0xF8}, {"ugrave", 0xF9}, {"uacute", 0xFA},
    {"ucirc", 0xFB},  {"uuml", 0xFC},   {"yacute", 0xFD},
};

static unsigned long latin_letter(const char *e, size_t el)
{
    char low[12];
    if (el >= sizeof low)
        return 0;
    memcpy(low, e, el);
    low[el] = '\0';
    int upper = low[0] >= 'A' && low[0] <= 'Z';
    if (upper)
        low[0] = (char)(low[0] - 'A' + 'a');
    for (size_t k = 0; k < sizeof latin / sizeof latin[0]; k++)
        if (!strcmp(low, latin[k].name))
            return latin[k].cp - (upper ? 0x20 : 0);
    if (!upper && !strcmp(low, "szlig"))
        return 0xDF;
    return 0;
}

/* Decode character references in s into b (text and attribute values). */
static void decode(se_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') {
            se_buf_append(b, s + i, 1);
            continue;
        }
        size_t j = i + 1;
        while (j < n && j - i < 12 && (isalnum((unsigned char)s[j]) || s[j] == '#'))
            j++;
        if (j >= n || s[j] != ';' || j == i + 1) {
            se_buf_append(b, "&", 1);
            continue;
        }
        const char *e = s + i + 1;
        size_t el = j - i - 1;
        int done = 0;
        if (e[0] == '#') {
            char num[16];
            int hex = el > 1 && (e[1] == 'x' || e[1] == 'X');
            size_t off = hex ? 2 : 1;
            if (el > off && el - off < sizeof num) {
                memcpy(num, e + off, el - off);
                num[el - off] = '\0';
                char *end;
                unsigned long cp = strtoul(num, &end, hex ? 16 : 10);
                if (!*end) {
                    if (cp == 0xA0)
                        cp = ' ';
                    if (cp != 0x200C && cp != 0x200B && cp != 0xAD && cp != 0x200D)
                        put_utf8(b, cp);
                    done = 1;
                }
            }
        } else {
            for (size_t k = 0; k < sizeof entities / sizeof entities[0]; k++)
                if (strlen(entities[k].name) == el && !memcmp(entities[k].name, e, el)) {
                    if (entities[k].cp)
                        put_utf8(b, entities[k].cp);
                    done = 1;
                    break;
                }
            unsigned long cp = done ? 0 : latin_letter(e, el);
            if (cp) {
                put_utf8(b, cp);
                done = 1;
            }
        }
        if (done)
            i = j;
        else
            se_buf_append(b, "&", 1);
    }
}

static int tag_is(const char *name, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(name, *set))
            return 1;
    return 0;
}

/* The value of attribute want in the tag's attribute text, decoded, or NULL. */
static char *attr(const char *s, size_t n, const char *want)
{
    size_t i = 0, wl = strlen(want);
    while (i < n) {
        while (i < n && (isspace((unsigned char)s[i]) || s[i] == '/'))
            i++;
        size_t ns = i;
        while (i < n && !isspace((unsigned char)s[i]) && s[i] != '=' && s[i] != '/')
            i++;
        size_t nl = i - ns;
        while (i < n && isspace((unsigned char)s[i]))
            i++;
        const char *v = NULL;
        size_t vl = 0;
        if (i < n && s[i] == '=') {
            i++;
            while (i < n && isspace((unsigned char)s[i]))
                i++;
            if (i < n && (s[i] == '"' || s[i] == '\'')) {
                char q = s[i++];
                v = s + i;
                while (i < n && s[i] != q)
                    i++;
                vl = (size_t)(s + i - v);
                i++;
            } else {
                v = s + i;
                while (i < n && !isspace((unsigned char)s[i]))
                    i++;
                vl = (size_t)(s + i - v);
            }
        }
        if (nl == wl && !strncasecmp(s + ns, want, wl)) {
            se_buf b = {0};
            decode(&b, v ? v : "", vl);
            se_buf_append(&b, "", 0);
            size_t len;
            return se_buf_steal(&b, &len);
        }
        if (nl == 0 && i < n && v == NULL)
            i++;
    }
    return NULL;
}

static void trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s))
        (*s)++, (*n)--;
    while (*n && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

static void on_tag(conv *c, const char *name, int end, const char *attrs, size_t alen)
{
    static const char *const para[] = {"p",  "h1",         "h2", "h3",  "h4",    "h5", "h6",
                                       "ul", "ol",         "table", "blockquote", "hr", "pre",
                                       "dl", "figure", NULL};
    static const char *const line[] = {"div",    "tr",   "li",      "section", "article", "header",
                                       "footer", "dt",   "dd",      "center",  "main",    "nav",
                                       "aside",  "address", "form", "tbody", "thead", "tfoot",
                                       "body",   NULL};
    if (c->skip) {
        if (end && !strcmp(name, c->skip_tag))
            c->skip = 0;
        return;
    }
    if (!end && (!strcmp(name, "head") || !strcmp(name, "script") || !strcmp(name, "style") ||
                 !strcmp(name, "title"))) {
        c->skip = 1;
        strcpy(c->skip_tag, name);
        return;
    }
    if (!strcmp(name, "br")) {
        trim_trailing(c);
        se_buf_append(&c->t, "\n", 1);
        c->pending_space = 0;
    } else if (tag_is(name, para)) {
        para_break(c);
        if (!strcmp(name, "pre"))
            c->pre = !end;
    } else if (tag_is(name, line)) {
        line_break(c);
        if (!end && !strcmp(name, "li"))
            se_buf_append(&c->t, "- ", 2);
    } else if ((!strcmp(name, "td") || !strcmp(name, "th")) && !end) {
        trim_trailing(c);
        if (!at_line_start(c))
            se_buf_append(&c->t, "  ", 2);
        c->pending_space = 0;
    } else if (!strcmp(name, "img") && !end) {
        char *alt = attr(attrs, alen, "alt");
        if (alt && *alt)
            put_text(c, alt, strlen(alt));
        free(alt);
    } else if (!strcmp(name, "a")) {
        if (!end) {
            free(c->href);
            c->href = attr(attrs, alen, "href");
            if (c->pending_space && !at_line_start(c)) {
                se_buf_append(&c->t, " ", 1);
                c->pending_space = 0;
            }
            c->link_from = c->t.len;
        } else if (c->href) {
            const char *text = c->t.data ? c->t.data + c->link_from : "";
            size_t tl = c->t.len - c->link_from;
            const char *h = c->href;
            size_t hl = strlen(h);
            trim(&h, &hl);
            const char *bare = h;
            size_t bl = hl;
            if (bl > 7 && !strncasecmp(bare, "mailto:", 7))
                bare += 7, bl -= 7;
            trim(&text, &tl);
            int same = (tl == hl && !memcmp(text, h, hl)) || (tl == bl && !memcmp(text, bare, bl));
            if (hl && h[0] != '#' && !same) {
                if (tl) {
                    se_buf_append(&c->t, " (", 2);
                    for (size_t k = 0; k < hl; k++)
                        if ((unsigned char)h[k] >= 0x20 && h[k] != 0x7f)
                            se_buf_append(&c->t, h + k, 1);
                    se_buf_append(&c->t, ")", 1);
                } else {
                    put_text(c, h, hl);
                }
            }
            free(c->href);
            c->href = NULL;
        }
    }
}

static size_t utf8_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            w++;
    return w;
}

/* Wrap each line at WIDTH on spaces; a list item's continuation lines are
 * indented under its text; runs of blank lines become one. */
static void wrap(const char *t, size_t n, se_buf *out)
{
    size_t i = 0;
    int blank = 1; /* no blank lines at the start */
    while (i < n) {
        const char *nl = memchr(t + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - t) : n;
        const char *l = t + i;
        size_t ll = e - i;
        i = e + 1;
        while (ll && l[ll - 1] == ' ')
            ll--;
        if (ll == 0) {
            if (!blank)
                se_buf_append(out, "\n", 1);
            blank = 1;
            continue;
        }
        blank = 0;
        const char *indent = ll > 2 && l[0] == '-' && l[1] == ' ' ? "  " : "";
        size_t col = 0, k = 0;
        int first = 1;
        while (k < ll) {
            size_t ws = k;
            while (k < ll && l[k] != ' ')
                k++;
            size_t w = utf8_width(l + ws, k - ws);
            if (!first && col + 1 + w > WIDTH) {
                se_buf_append(out, "\n", 1);
                se_buf_puts(out, indent);
                col = strlen(indent);
            } else if (!first) {
                se_buf_append(out, " ", 1);
                col++;
            }
            se_buf_append(out, l + ws, k - ws);
            col += w;
            first = 0;
            while (k < ll && l[k] == ' ')
                k++;
        }
        se_buf_append(out, "\n", 1);
    }
    while (out->len >= 2 && out->data[out->len - 1] == '\n' && out->data[out->len - 2] == '\n')
        out->data[--out->len] = '\0';
}

char *mu_html_to_text(const char *html, size_t len, size_t *out_len)
{
    conv c = {0};
    size_t i = 0;
    while (i < len) {
        if (html[i] != '<') {
            const char *lt = memchr(html + i, '<', len - i);
            size_t e = lt ? (size_t)(lt - html) : len;
            if (!c.skip) {
                se_buf d = {0};
                decode(&d, html + i, e - i);
                put_text(&c, d.data ? d.data : "", d.len);
                se_buf_free(&d);
            }
            i = e;
            continue;
        }
        if (len - i >= 4 && !memcmp(html + i, "<!--", 4)) {
            const char *end = NULL;
            for (size_t k = i + 4; k + 3 <= len; k++)
                if (!memcmp(html + k, "-->", 3)) {
                    end = html + k;
                    break;
                }
            i = end ? (size_t)(end - html) + 3 : len;
            continue;
        }
        size_t k = i + 1;
        int end = 0;
        if (k < len && html[k] == '/')
            end = 1, k++;
        if (k >= len || !isalpha((unsigned char)html[k])) {
            if (k < len && (html[k] == '!' || html[k] == '?')) {
                const char *gt = memchr(html + k, '>', len - k);
                i = gt ? (size_t)(gt - html) + 1 : len;
            } else {
                if (!c.skip)
                    put_text(&c, "<", 1);
                i++;
            }
            continue;
        }
        char name[16];
        size_t nl = 0;
        while (k < len && (isalnum((unsigned char)html[k]) || html[k] == ':')) {
            if (nl + 1 < sizeof name)
                name[nl++] = (char)tolower((unsigned char)html[k]);
            k++;
        }
        name[nl] = '\0';
        size_t as = k;
        char q = 0;
        while (k < len && (q || html[k] != '>')) {
            if (q && html[k] == q)
                q = 0;
            else if (!q && (html[k] == '"' || html[k] == '\''))
                q = html[k];
            k++;
        }
        on_tag(&c, name, end, html + as, k - as);
        i = k < len ? k + 1 : len;
    }
    free(c.href);
    se_buf out = {0};
    wrap(c.t.data ? c.t.data : "", c.t.len, &out);
    out.oom |= c.t.oom;
    se_buf_free(&c.t);
    if (out.len == 0 || out.data[0] == '\n')
        se_buf_reset(&out);
    for (size_t k = 0; k < out.len; k++)
        if (out.data[k] == '\x01')
            out.data[k] = ' ';
    se_buf_append(&out, "", 0);
    if (out.oom) {
        se_buf_free(&out);
        return NULL;
    }
    return se_buf_steal(&out, out_len);
}
