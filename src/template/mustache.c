/* The Mustache renderer: a parsed template (mustache_parse.c) and JSON data
 * into bytes.  Follows the mustache/spec modules interpolation, sections,
 * inverted, comments, partials, delimiters and ~inheritance (no lambdas). */
#include "template/mustache.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/html_ctx.h"
#include "template/mustache_int.h"
#include "util/buf.h"

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
        c->t = mu_compile(src, len, n->indent, r->o->mode, plabel, r->why, r->whylen);
    }
    free(src);
    if (!c || !c->name || !c->indent || !c->t) {
        if (!c || !c->name || !c->indent)
            rerr(r, label, n->line, "out of memory");
        if (c) {
            free(c->name);
            free(c->indent);
            mu_tmpl_free(c->t);
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
    tmpl *t = mu_compile(src, len, NULL, opts->mode, label, why, whylen);
    if (!t)
        return -1;
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
        mu_tmpl_free(c->t);
        free(c);
    }
    mu_tmpl_free(t);
    return rc;
}
