/* The Mustache parser: template bytes into a tree, with the specification's
 * standalone-line rules, set-delimiter tags and the inheritance rules for
 * parent and block tags; then, for the HTML part, a pass that checks where
 * values go in every branch. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/html_ctx.h"
#include "template/mustache_int.h"
#include "util/buf.h"

static void node_free(node *n)
{
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    free(n->s);
    free(n->indent);
}

void mu_tmpl_free(tmpl *t)
{
    if (!t)
        return;
    node_free(&t->root);
    free(t->label);
    free(t);
}

/* ---- parsing ---------------------------------------------------------- */

typedef struct parser {
    const char *src;
    size_t len, pos;
    char otag[MAX_DELIM + 1], ctag[MAX_DELIM + 1];
    size_t olen, clen;
    mu_mode mode;
    const char *label;
    char *why;
    size_t whylen;
    node *stack[MAX_NEST + 1];
    int depth;
    size_t line_pos; /* lines counted up to here */
    int line;
    /* Spec ~inheritance: parent and block tags need not be alone on their
     * line to be standalone; a run of them alone on a line is.  The run so
     * far: where it ends, whether its line started clean, the text node
     * before it (whose indentation goes), and its first tag. */
    size_t chain_end;
    int chain_ok;
    node *chain_text, *chain_first;
    size_t chain_ls, chain_trim;
} parser;

static int perr(parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, int line, const char *fmt, ...)
{
    int n = snprintf(p->why, p->whylen, "%s:%d: ", p->label, line);
    if (n < 0 || (size_t)n >= p->whylen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why + n, p->whylen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int line_at(parser *p, size_t at)
{
    for (; p->line_pos < at; p->line_pos++)
        if (p->src[p->line_pos] == '\n')
            p->line++;
    return p->line;
}

static node *add(parser *p, nkind kind, const char *s, size_t len, int line)
{
    node *parent = p->stack[p->depth];
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        node **k = realloc(parent->kids, cap * sizeof *k);
        if (!k)
            return NULL;
        parent->kids = k;
        parent->cap = cap;
    }
    node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = line;
    n->len = len;
    n->s = malloc(len + 1);
    if (!n->s) {
        free(n);
        return NULL;
    }
    memcpy(n->s, s, len);
    n->s[len] = '\0';
    parent->kids[parent->n++] = n;
    return n;
}

static const char *find(const char *h, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0 || hlen < nlen)
        return NULL;
    for (const char *p = h, *end = h + hlen - nlen; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p)
            return NULL;
        if (!memcmp(p, needle, nlen))
            return p;
    }
    return NULL;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* "{{=<% %>=}}": the new delimiters, two words without '=' or whitespace. */
static int set_delims(parser *p, const char *s, size_t n, int line)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    size_t a = 0;
    while (a < n && !isspace((unsigned char)s[a]))
        a++;
    size_t b = a;
    while (b < n && isspace((unsigned char)s[b]))
        b++;
    if (a == 0 || b == n || a > MAX_DELIM || n - b > MAX_DELIM || memchr(s, '=', n))
        return perr(p, line, "bad set-delimiter tag: want {{=OPEN CLOSE=}}");
    for (size_t i = b; i < n; i++)
        if (isspace((unsigned char)s[i]))
            return perr(p, line, "bad set-delimiter tag: want {{=OPEN CLOSE=}}");
    memcpy(p->otag, s, a);
    p->otag[a] = '\0';
    p->olen = a;
    memcpy(p->ctag, s + b, n - b);
    p->ctag[n - b] = '\0';
    p->clen = n - b;
    return 0;
}

static int valid_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || (unsigned char)s[i] < 0x20)
            return 0;
    return 1;
}

static int parse(parser *p, node *root)
{
    p->stack[0] = root;
    p->depth = 0;
    p->line = 1;
    p->chain_end = (size_t)-1;
    while (p->pos <= p->len) {
        const char *src = p->src;
        const char *t = find(src + p->pos, p->len - p->pos, p->otag, p->olen);
        if (!t) {
            if (p->pos < p->len && !add(p, N_TEXT, src + p->pos, p->len - p->pos, 0))
                return perr(p, 0, "out of memory");
            break;
        }
        size_t ts = (size_t)(t - src), q = ts + p->olen;
        int line = line_at(p, ts);
        char type = q < p->len && strchr("#^/!>=<$&{", src[q]) && src[q] ? src[q] : 0;
        char close[MAX_DELIM + 2];
        size_t cl;
        if (type == '{' || type == '=') {
            close[0] = type == '{' ? '}' : '=';
            memcpy(close + 1, p->ctag, p->clen);
            cl = p->clen + 1;
        } else {
            memcpy(close, p->ctag, p->clen);
            cl = p->clen;
        }
        size_t cs = q + (type ? 1 : 0);
        const char *c = find(src + cs, p->len - cs, close, cl);
        if (!c)
            return perr(p, line, "unclosed tag: '%s' without '%.*s'", p->otag, (int)cl, close);
        size_t ce = (size_t)(c - src), te = ce + cl;
        /* Standalone: alone on its line but for blanks; the line vanishes. */
        size_t ls = ts, next = te;
        int standalone = 0, left_ok = 0, via_chain = 0;
        int inh = type == '<' || type == '$' ||
                  (type == '/' && p->depth > 0 &&
                   (p->stack[p->depth]->kind == N_PARENT || p->stack[p->depth]->kind == N_BLOCK));
        if (type && strchr("#^/!>=<$", type)) {
            while (ls > p->pos && is_blank(src[ls - 1]))
                ls--;
            left_ok = ls == 0 || src[ls - 1] == '\n';
            if (!left_ok && inh && ls == p->pos && p->chain_end == p->pos && p->chain_ok)
                via_chain = 1;
            if (left_ok || via_chain) {
                size_t r = te;
                while (r < p->len && is_blank(src[r]))
                    r++;
                if (r == p->len)
                    standalone = 1, next = r;
                else if (src[r] == '\n')
                    standalone = 1, next = r + 1;
                else if (src[r] == '\r' && r + 1 < p->len && src[r + 1] == '\n')
                    standalone = 1, next = r + 2;
            }
        }
        size_t text_end = standalone && !via_chain ? ls : ts;
        node *text = NULL;
        if (text_end > p->pos && !(text = add(p, N_TEXT, src + p->pos, text_end - p->pos, line)))
            return perr(p, line, "out of memory");
        if (standalone && via_chain) {
            /* the run's line vanishes: its indentation becomes the parent's */
            if (p->chain_text && p->chain_trim <= p->chain_text->len) {
                p->chain_text->len -= p->chain_trim;
                p->chain_text->s[p->chain_text->len] = '\0';
            }
            if (p->chain_first && p->chain_first->kind == N_PARENT && p->chain_trim &&
                !(p->chain_first->indent = strndup(src + p->chain_ls, p->chain_trim)))
                return perr(p, line, "out of memory");
            if (p->chain_first && p->chain_first->kind == N_BLOCK && !p->chain_first->standalone) {
                p->chain_first->standalone = 1;
                free(p->chain_first->indent);
                if (!(p->chain_first->indent = strndup(src + p->chain_ls, p->chain_trim)))
                    return perr(p, line, "out of memory");
            }
        }
        p->chain_end = (size_t)-1;
        if (inh && !standalone) {
            if (!via_chain) {
                p->chain_ok = left_ok;
                p->chain_text = text && ts > ls ? text : NULL;
                p->chain_trim = ts - ls;
                p->chain_ls = ls;
                p->chain_first = NULL;
            }
            p->chain_end = te;
        }
        p->pos = next;
        const char *nm = src + cs;
        size_t nl = ce - cs;
        while (nl && isspace((unsigned char)*nm))
            nm++, nl--;
        while (nl && isspace((unsigned char)nm[nl - 1]))
            nl--;
        if (type == '!')
            continue;
        if (type == '=') {
            if (set_delims(p, src + cs, ce - cs, line))
                return -1;
            continue;
        }
        if (!valid_name(nm, nl))
            return perr(p, line, "bad tag name '%.*s'", (int)(ce - cs > 60 ? 60 : ce - cs),
                        src + cs);
        if (type == '/') {
            node *open = p->stack[p->depth];
            if (p->depth == 0)
                return perr(p, line, "closing tag '%.*s' without an opening one", (int)nl, nm);
            if (open->len != nl || memcmp(open->s, nm, nl))
                return perr(p, line, "closing tag '%.*s' does not match '%s' opened at line %d",
                            (int)nl, nm, open->s, open->line);
            p->depth--;
            continue;
        }
        if ((type == '{' || type == '&') && p->mode == MU_TEXT)
            return perr(p, line,
                        "unescaped output {{%s%.*s}} is only allowed in the HTML part",
                        type == '&' ? "& " : "{", (int)nl, nm);
        nkind k = type == '#'   ? N_SECTION
                  : type == '^' ? N_INVERTED
                  : type == '>' ? N_PARTIAL
                  : type == '<' ? N_PARENT
                  : type == '$' ? N_BLOCK
                  : type        ? N_RAW
                                : N_VAR;
        node *n = add(p, k, nm, nl, line);
        if (!n)
            return perr(p, line, "out of memory");
        if (inh && !standalone && !via_chain)
            p->chain_first = n;
        if ((k == N_PARTIAL || k == N_PARENT) && standalone && ts > ls) {
            n->indent = strndup(src + ls, ts - ls);
            if (!n->indent)
                return perr(p, line, "out of memory");
        }
        if (k == N_BLOCK && standalone) {
            n->standalone = 1;
            if (!(n->indent = strndup(via_chain ? src + p->chain_ls : src + ls,
                                      via_chain ? p->chain_trim : ts - ls)))
                return perr(p, line, "out of memory");
        }
        if (k == N_SECTION || k == N_INVERTED || k == N_PARENT || k == N_BLOCK) {
            if (p->depth == MAX_NEST)
                return perr(p, line, "sections nested deeper than %d", MAX_NEST);
            p->stack[++p->depth] = n;
        }
    }
    if (p->depth > 0)
        return perr(p, p->stack[p->depth]->line, "section '%s' is never closed",
                    p->stack[p->depth]->s);
    return 0;
}

/* Parse src; with indent, every line of src is indented first (a standalone
 * partial's indentation applies to each of its lines; empty lines stay
 * empty, as mustache.js does, rather than gain trailing blanks). */
static tmpl *compile_only(const char *src, size_t len, const char *indent, mu_mode mode,
                     const char *label, char *why, size_t whylen)
{
    char *ind = NULL;
    if (indent && *indent && len) {
        se_buf b = {0};
        size_t il = strlen(indent);
        if (src[0] != '\n')
            se_buf_append(&b, indent, il);
        for (size_t i = 0; i < len; i++) {
            se_buf_append(&b, src + i, 1);
            if (src[i] == '\n' && i + 1 < len && src[i + 1] != '\n')
                se_buf_append(&b, indent, il);
        }
        if (b.oom) {
            se_buf_free(&b);
            snprintf(why, whylen, "%s: out of memory", label);
            return NULL;
        }
        ind = se_buf_steal(&b, &len);
        src = ind;
    }
    tmpl *t = calloc(1, sizeof *t);
    parser p = {.src = src, .len = len, .otag = "{{", .ctag = "}}", .olen = 2, .clen = 2,
                .mode = mode, .label = label, .why = why, .whylen = whylen};
    if (!t || !(t->label = strdup(label)) || parse(&p, &t->root)) {
        if (!t || !t->label)
            snprintf(why, whylen, "%s: out of memory", label);
        mu_tmpl_free(t);
        t = NULL;
    }
    free(ind);
    return t;
}

/* ---- the HTML part's contexts, before any data ---------------------------
 * Every branch is walked in source order, so that a value in an unquoted
 * attribute, a tag, a script or a style is a template error even inside a
 * section the sample data leaves empty.  What partials write is not known
 * here; the render checks it (and every URL) again with the data. */

static int lint(const node *n, html_ctx *h, const char *label, char *why, size_t whylen)
{
    char w[200];
    for (size_t i = 0; i < n->n; i++) {
        const node *k = n->kids[i];
        int line = k->line, bad = 0;
        switch (k->kind) {
        case N_TEXT: bad = html_ctx_feed(h, k->s, k->len, &line, w, sizeof w); break;
        case N_VAR: bad = html_ctx_value(h, 0, k->s, "x", 1, k->line, w, sizeof w); break;
        case N_RAW: /* what it writes is unknown; it may only go between tags */
            if (!html_ctx_in_text(h))
                bad = html_ctx_value(h, 1, k->s, "", 0, k->line, w, sizeof w);
            break;
        case N_SECTION:
        case N_INVERTED:
        case N_BLOCK:
            if (lint(k, h, label, why, whylen))
                return -1;
            break;
        case N_PARENT:
            for (size_t b = 0; b < k->n; b++) {
                html_ctx o;
                html_ctx_init(&o);
                o.lint = 1;
                if (k->kids[b]->kind == N_BLOCK && lint(k->kids[b], &o, label, why, whylen))
                    return -1;
            }
            break;
        case N_PARTIAL: break;
        }
        if (bad) {
            int n0 = snprintf(why, whylen, "%s:%d: ", label, line);
            if (n0 > 0 && (size_t)n0 < whylen)
                snprintf(why + n0, whylen - (size_t)n0, "%s%s%s%s", k->kind == N_TEXT ? "" : "{{",
                         k->kind == N_TEXT ? "" : k->s, k->kind == N_TEXT ? "" : "}} ", w);
            return -1;
        }
    }
    return 0;
}

static int html_lint(const tmpl *t, char *why, size_t whylen)
{
    html_ctx h;
    html_ctx_init(&h);
    h.lint = 1;
    return lint(&t->root, &h, t->label, why, whylen);
}

tmpl *mu_compile(const char *src, size_t len, const char *indent, mu_mode mode, const char *label,
                 char *why, size_t whylen)
{
    tmpl *t = compile_only(src, len, indent, mode, label, why, whylen);
    if (t && mode == MU_HTML && html_lint(t, why, whylen)) {
        mu_tmpl_free(t);
        return NULL;
    }
    return t;
}
