/* The Mustache engine: parse a template into a tree, render it with JSON.
 * Follows the mustache/spec modules interpolation, sections, inverted,
 * comments, partials, delimiters and ~inheritance (no lambdas). */
#include "template/mustache.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/html_ctx.h"
#include "util/buf.h"

#define MAX_NEST 64        /* sections inside sections, in one template */
#define MAX_CTX 128        /* context stack depth while rendering */
#define MAX_INCLUDE 32     /* partials/parents inside partials */
#define MAX_INCLUDES 10000 /* partials/parents expanded in one render */
#define MAX_DELIM 15

typedef enum nkind { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED, N_PARTIAL, N_PARENT, N_BLOCK } nkind;

typedef struct node {
    nkind kind;
    char *s; /* text bytes, or the tag's name */
    size_t len;
    char *indent; /* standalone partial or parent: the line's indentation;
                     a block: its tag line's indentation when standalone */
    int standalone; /* a block whose tag stands alone on its line */
    int line;
    struct node **kids;
    size_t n, cap;
} node;

typedef struct tmpl {
    node root;
    char *label;
} tmpl;

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

static void tmpl_free(tmpl *t)
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
static tmpl *compile(const char *src, size_t len, const char *indent, mu_mode mode,
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
        tmpl_free(t);
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

/* ---- rendering -------------------------------------------------------- */

typedef struct cached {
    char *name, *indent;
    int parent;
    tmpl *t;
    struct cached *next;
} cached;

typedef struct rstate {
    const mu_opts *o;
    se_buf out;
    size_t max;
    char *why;
    size_t whylen;
    json_t *ctx[MAX_CTX];
    int nctx;
    const node *ovr[MAX_INCLUDE * 2]; /* parents whose $blocks override, outermost first */
    const char *ovr_label[MAX_INCLUDE * 2]; /* the template each was written in */
    int novr;
    int includes, idepth, bdepth;
    cached *cache;
    html_ctx html;
} rstate;

static int rerr(rstate *r, const char *label, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rerr(rstate *r, const char *label, int line, const char *fmt, ...)
{
    int n = snprintf(r->why, r->whylen, "%s:%d: ", label, line);
    if (n < 0 || (size_t)n >= r->whylen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why + n, r->whylen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Spec: the first part of a dotted name is looked up through the context
 * stack, top first; the rest only inside what it found. */
static json_t *lookup(rstate *r, const char *name, int *found)
{
    *found = 0;
    if (!strcmp(name, "."))
        return *found = 1, r->nctx ? r->ctx[r->nctx - 1] : NULL;
    const char *dot = strchr(name, '.');
    size_t first = dot ? (size_t)(dot - name) : strlen(name);
    json_t *v = NULL;
    for (int i = r->nctx - 1; i >= 0 && !v; i--)
        if (json_is_object(r->ctx[i]))
            v = json_object_getn(r->ctx[i], name, first);
    while (v && dot) {
        const char *part = dot + 1;
        dot = strchr(part, '.');
        size_t pl = dot ? (size_t)(dot - part) : strlen(part);
        v = json_is_object(v) ? json_object_getn(v, part, pl) : NULL;
    }
    *found = v != NULL;
    return v;
}

static int truthy(json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    if (json_is_real(v))
        return json_real_value(v) != 0.0;
    return 1;
}

/* The value as text; 0, or -1 for an object or a list. */
static int stringify(json_t *v, char *tmp, size_t tmplen, const char **s, size_t *n)
{
    *s = tmp;
    if (!v || json_is_null(v)) {
        *s = "";
        *n = 0;
    } else if (json_is_string(v)) {
        *s = json_string_value(v);
        *n = json_string_length(v);
    } else if (json_is_integer(v)) {
        *n = (size_t)snprintf(tmp, tmplen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        /* the shortest form that reads back the same: 1.21, not 1.2099999 */
        double d = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            *n = (size_t)snprintf(tmp, tmplen, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
    } else if (json_is_boolean(v)) {
        *s = json_is_true(v) ? "true" : "false";
        *n = strlen(*s);
    } else {
        return -1;
    }
    return 0;
}

static int emit(rstate *r, const char *s, size_t n)
{
    if (r->out.len + n > r->max) {
        snprintf(r->why, r->whylen, "%s: output larger than %zu bytes", r->o->label, r->max);
        return -1;
    }
    return se_buf_append(&r->out, s, n);
}

/* HTML escaping of the five characters that can change the markup. */
static int emit_escaped(rstate *r, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e;
        switch (s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: continue;
        }
        if (emit(r, s + from, i - from) || emit(r, e, strlen(e)))
            return -1;
        from = i + 1;
    }
    return emit(r, s + from, n - from);
}

static int render(rstate *r, const node *n, const char *label);

static int render_kids(rstate *r, const node *n, const char *label)
{
    for (size_t i = 0; i < n->n; i++)
        if (render(r, n->kids[i], label))
            return -1;
    return 0;
}

static size_t leading_blanks(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* Spec ~inheritance, block re-indentation: an override b whose tag stands
 * alone loses its own indentation (its first line's), and takes the slot's:
 * the indentation of the slot's default content, else of its tag line.  A
 * standalone slot owns whole lines, so the result ends with a newline. */
static int reindent(rstate *r, const node *b, const char *label, const node *slot)
{
    se_buf saved = r->out;
    memset(&r->out, 0, sizeof r->out);
    int rc = render_kids(r, b, label);
    se_buf body = r->out;
    r->out = saved;
    if (rc || body.oom) {
        se_buf_free(&body);
        return -1;
    }
    const char *s = body.data ? body.data : "";
    size_t n = body.len, drop = b->standalone ? leading_blanks(s, n) : 0;
    const char *add = "";
    size_t addn = 0;
    if (slot->standalone) {
        const node *first = slot->n ? slot->kids[0] : NULL;
        if (first && first->kind == N_TEXT && first->len) {
            add = first->s;
            addn = leading_blanks(first->s, first->len);
        } else if (slot->indent) {
            add = slot->indent;
            addn = strlen(slot->indent);
        }
    }
    for (size_t i = 0; i < n && !rc;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) + 1 : n;
        size_t skip = e - i >= drop && !memcmp(s + i, s, drop) ? drop : 0;
        if (e - i > skip && s[i + skip] != '\n')
            rc = emit(r, add, addn);
        if (!rc)
            rc = emit(r, s + i + skip, e - i - skip);
        i = e;
    }
    if (!rc && slot->standalone && n && s[n - 1] != '\n')
        rc = emit(r, "\n", 1);
    se_buf_free(&body);
    return rc;
}

static tmpl *include(rstate *r, const node *n, const char *label)
{
    int parent = n->kind == N_PARENT;
    for (cached *c = r->cache; c; c = c->next)
        if (c->parent == parent && !strcmp(c->name, n->s) &&
            !strcmp(c->indent, n->indent ? n->indent : ""))
            return c->t;
    if (!r->o->load) {
        rerr(r, label, n->line, "no %s '%s'", parent ? "layout" : "partial", n->s);
        return NULL;
    }
    size_t len = 0;
    const char *plabel = n->s;
    char why[256] = "";
    char *src = r->o->load(r->o->load_arg, n->s, parent, &len, &plabel, why, sizeof why);
    if (!src && r->o->mode == MU_SPEC && !why[0])
        src = strdup(""); /* the specification: a missing partial renders empty */
    if (!src) {
        rerr(r, label, n->line, "%s '%s' not found%s%s", parent ? "layout" : "partial", n->s,
             why[0] ? ": " : "", why);
        return NULL;
    }
    cached *c = calloc(1, sizeof *c);
    if (c) {
        c->name = strdup(n->s);
        c->indent = strdup(n->indent ? n->indent : "");
        c->parent = parent;
        c->t = compile(src, len, n->indent, r->o->mode, plabel, r->why, r->whylen);
        if (c->t && r->o->mode == MU_HTML && html_lint(c->t, r->why, r->whylen)) {
            tmpl_free(c->t);
            c->t = NULL;
        }
    }
    free(src);
    if (!c || !c->name || !c->indent || !c->t) {
        if (!c || !c->name || !c->indent)
            rerr(r, label, n->line, "out of memory");
        if (c) {
            free(c->name);
            free(c->indent);
            tmpl_free(c->t);
            free(c);
        }
        return NULL;
    }
    c->next = r->cache;
    r->cache = c;
    return c->t;
}

static int interpolate(rstate *r, const node *n, const char *label)
{
    int found;
    json_t *v = lookup(r, n->s, &found);
    if (!found && !r->o->allow_missing)
        return rerr(r, label, n->line, "missing variable '%s'", n->s);
    char tmp[64];
    const char *s;
    size_t len;
    if (stringify(v, tmp, sizeof tmp, &s, &len))
        return rerr(r, label, n->line, "'%s' is %s, not a value", n->s,
                    json_is_array(v) ? "a list" : "an object");
    if (r->o->mode == MU_HTML) {
        char why[200];
        if (html_ctx_value(&r->html, n->kind == N_RAW, n->s, s, len, n->line, why, sizeof why))
            return rerr(r, label, n->line, "{{%s}} %s", n->s, why);
    }
    if (n->kind == N_VAR && r->o->mode != MU_TEXT)
        return emit_escaped(r, s, len);
    return emit(r, s, len);
}

static int push(rstate *r, json_t *v, const char *label, int line)
{
    if (r->nctx == MAX_CTX)
        return rerr(r, label, line, "sections nested deeper than %d", MAX_CTX);
    r->ctx[r->nctx++] = v;
    return 0;
}

static int render(rstate *r, const node *n, const char *label)
{
    switch (n->kind) {
    case N_TEXT:
        if (r->o->mode == MU_HTML) {
            char why[200];
            int line = 0;
            if (html_ctx_feed(&r->html, n->s, n->len, &line, why, sizeof why))
                return rerr(r, label, line, "%s", why);
        }
        return emit(r, n->s, n->len);
    case N_VAR:
    case N_RAW: return interpolate(r, n, label);
    case N_SECTION:
    case N_INVERTED: {
        int found;
        json_t *v = lookup(r, n->s, &found);
        if (n->kind == N_INVERTED)
            return truthy(v) ? 0 : render_kids(r, n, label);
        if (!truthy(v))
            return 0;
        if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                if (push(r, json_array_get(v, i), label, n->line))
                    return -1;
                int rc = render_kids(r, n, label);
                r->nctx--;
                if (rc)
                    return -1;
            }
            return 0;
        }
        if (push(r, v, label, n->line))
            return -1;
        int rc = render_kids(r, n, label);
        r->nctx--;
        return rc;
    }
    case N_PARTIAL:
    case N_PARENT: {
        if (r->idepth == MAX_INCLUDE || ++r->includes > MAX_INCLUDES)
            return rerr(r, label, n->line, "partials nested deeper than %d or more than %d",
                        MAX_INCLUDE, MAX_INCLUDES);
        tmpl *t = include(r, n, label);
        if (!t)
            return -1;
        if (n->kind == N_PARENT) {
            r->ovr_label[r->novr] = label;
            r->ovr[r->novr++] = n;
        }
        r->idepth++;
        int rc = render_kids(r, &t->root, t->label);
        r->idepth--;
        if (n->kind == N_PARENT)
            r->novr--;
        return rc;
    }
    case N_BLOCK:
        /* The outermost override wins (spec: multi-level inheritance). */
        for (int i = 0; i < r->novr; i++)
            for (size_t k = 0; k < r->ovr[i]->n; k++) {
                const node *b = r->ovr[i]->kids[k];
                if (b->kind == N_BLOCK && !strcmp(b->s, n->s) && b != n) {
                    /* an override may hold a block of its own name: bounded */
                    if (r->bdepth == MAX_INCLUDE)
                        return rerr(r, label, n->line, "blocks nested deeper than %d",
                                    MAX_INCLUDE);
                    r->bdepth++;
                    int rc = b->standalone || n->standalone
                                 ? reindent(r, b, r->ovr_label[i], n)
                                 : render_kids(r, b, r->ovr_label[i]);
                    r->bdepth--;
                    return rc;
                }
            }
        return render_kids(r, n, label);
    }
    return 0;
}

int mu_render(const char *src, size_t len, json_t *data, const mu_opts *opts, char **out,
              size_t *out_len, char *why, size_t whylen)
{
    *out = NULL;
    const char *label = opts->label ? opts->label : "template";
    tmpl *t = compile(src, len, NULL, opts->mode, label, why, whylen);
    if (!t)
        return -1;
    if (opts->mode == MU_HTML && html_lint(t, why, whylen)) {
        tmpl_free(t);
        return -1;
    }
    rstate r = {.o = opts, .max = opts->max_output ? opts->max_output : 16u << 20,
                .why = why, .whylen = whylen};
    html_ctx_init(&r.html);
    r.ctx[r.nctx++] = data;
    int rc = render_kids(&r, &t->root, t->label);
    if (!rc && opts->mode == MU_HTML) {
        int line = 0;
        char w[200];
        if (html_ctx_finish(&r.html, &line, w, sizeof w))
            rc = rerr(&r, t->label, line, "%s", w);
    }
    if (!rc && r.out.oom) {
        snprintf(why, whylen, "%s: out of memory", label);
        rc = -1;
    }
    if (!rc) {
        if (!r.out.data)
            se_buf_append(&r.out, "", 0);
        *out = se_buf_steal(&r.out, out_len);
        if (!*out)
            rc = -1;
    }
    se_buf_free(&r.out);
    while (r.cache) {
        cached *c = r.cache;
        r.cache = c->next;
        free(c->name);
        free(c->indent);
        tmpl_free(c->t);
        free(c);
    }
    tmpl_free(t);
    return rc;
}
