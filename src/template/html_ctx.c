/* A small HTML tokenizer state machine (after the WHATWG tokenizer's main
 * states) that follows the template's own markup.  Escaped values cannot
 * change its state (they hold no < > " ' &), so only template text and
 * unescaped output are fed to it. */
#include "template/html_ctx.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
    S_DATA,
    S_TAG_OPEN,
    S_MARKUP, /* after "<!" */
    S_BOGUS,
    S_COMMENT,
    S_TAG_NAME,
    S_IN_TAG,
    S_ATTR_NAME,
    S_AFTER_NAME,
    S_BEFORE_VALUE,
    S_VALUE_DQ,
    S_VALUE_SQ,
    S_VALUE_UQ,
    S_RAWTEXT /* inside <script> or <style> */
};

void html_ctx_init(html_ctx *h)
{
    memset(h, 0, sizeof *h);
    h->state = S_DATA;
    h->var_at = -1;
}

static int space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

static int url_attr(const char *a)
{
    static const char *const names[] = {"href", "src", "action", "formaction", "background",
                                        "poster", "cite", "xlink:href", "srcset", "data"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(a, names[i]))
            return 1;
    return 0;
}

/* A URL attribute whose scheme came (partly) from data must be http, https
 * or mailto: "javascript:", "data:" and relative tricks are refused. */
static int attr_end(html_ctx *h, int *line, char *why, size_t whylen)
{
    long at = h->var_at;
    h->var_at = -1;
    if (at < 0 || h->lint || !url_attr(h->attr))
        return 0;
    size_t s = 0;
    while (s < h->vallen && (long)s < at && space(h->val[s]))
        s++;
    long colon = -1;
    for (size_t i = s; i < h->vallen; i++) {
        if (h->val[i] == ':') {
            colon = (long)i;
            break;
        }
        if (strchr("/?#", h->val[i]))
            break;
    }
    int from_data = at <= (long)s || (colon >= 0 && at <= colon) ||
                    (colon < 0 && h->vallen == sizeof h->val); /* too long to tell */
    if (!from_data)
        return 0;
    const char *v = h->val + s;
    size_t n = h->vallen - s;
    if ((n >= 7 && !strncasecmp(v, "http://", 7)) || (n >= 8 && !strncasecmp(v, "https://", 8)) ||
        (n >= 7 && !strncasecmp(v, "mailto:", 7)))
        return 0;
    *line = h->var_line;
    snprintf(why, whylen, "{{%s}} in the %s attribute must give an http, https or mailto URL",
             h->var_name, h->attr);
    return -1;
}

static void tag_end(html_ctx *h)
{
    h->state = S_DATA;
    if (!h->end_tag && (!strcmp(h->tag, "script") || !strcmp(h->tag, "style"))) {
        snprintf(h->raw_end, sizeof h->raw_end, "</%s", h->tag);
        h->raw_match = 0;
        h->state = S_RAWTEXT;
    }
}

static void append(char *buf, size_t cap, size_t *len, char c)
{
    if (*len + 1 < cap) {
        buf[(*len)++] = (char)tolower((unsigned char)c);
        buf[*len] = '\0';
    }
}

int html_ctx_feed(html_ctx *h, const char *s, size_t n, int *line, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        /* Fast paths: text between tags, and the rest of a quoted value. */
        if (h->state == S_DATA) {
            const char *lt = memchr(s + i, '<', n - i);
            if (!lt)
                return 0;
            i = (size_t)(lt - s);
        } else if (h->state == S_VALUE_DQ || h->state == S_VALUE_SQ) {
            const char *q = memchr(s + i, h->state == S_VALUE_DQ ? '"' : '\'', n - i);
            size_t end = q ? (size_t)(q - s) : n, take = end - i;
            if (take > sizeof h->val - h->vallen)
                take = sizeof h->val - h->vallen;
            memcpy(h->val + h->vallen, s + i, take);
            h->vallen += take;
            if (!q)
                return 0;
            i = end;
        }
        char c = s[i];
        switch (h->state) {
        case S_DATA:
            if (c == '<')
                h->state = S_TAG_OPEN;
            break;
        case S_TAG_OPEN:
            h->end_tag = 0;
            h->taglen = 0;
            h->tag[0] = '\0';
            if (c == '!') {
                h->state = S_MARKUP;
                h->dashes = 0;
            } else if (c == '/') {
                h->end_tag = 1;
                h->state = S_TAG_NAME;
            } else if (isalpha((unsigned char)c)) {
                append(h->tag, sizeof h->tag, &h->taglen, c);
                h->state = S_TAG_NAME;
            } else if (c == '?') {
                h->state = S_BOGUS;
            } else {
                h->state = c == '<' ? S_TAG_OPEN : S_DATA;
            }
            break;
        case S_MARKUP:
            if (c == '-' && ++h->dashes == 2) {
                h->state = S_COMMENT;
                h->dashes = 0;
            } else if (c == '>') {
                h->state = S_DATA;
            } else if (c != '-') {
                h->state = S_BOGUS;
            }
            break;
        case S_BOGUS:
            if (c == '>')
                h->state = S_DATA;
            break;
        case S_COMMENT:
            if (c == '>' && h->dashes >= 2)
                h->state = S_DATA;
            h->dashes = c == '-' ? h->dashes + 1 : 0;
            break;
        case S_TAG_NAME:
            if (space(c) || c == '/')
                h->state = S_IN_TAG;
            else if (c == '>')
                tag_end(h);
            else
                append(h->tag, sizeof h->tag, &h->taglen, c);
            break;
        case S_IN_TAG:
        case S_AFTER_NAME:
            if (space(c) || c == '/')
                break;
            if (c == '>') {
                tag_end(h);
            } else if (c == '=' && h->state == S_AFTER_NAME) {
                h->state = S_BEFORE_VALUE;
            } else {
                h->attrlen = 0;
                h->attr[0] = '\0';
                append(h->attr, sizeof h->attr, &h->attrlen, c);
                h->state = S_ATTR_NAME;
            }
            break;
        case S_ATTR_NAME:
            if (space(c))
                h->state = S_AFTER_NAME;
            else if (c == '=')
                h->state = S_BEFORE_VALUE;
            else if (c == '>')
                tag_end(h);
            else if (c == '/')
                h->state = S_IN_TAG;
            else
                append(h->attr, sizeof h->attr, &h->attrlen, c);
            break;
        case S_BEFORE_VALUE:
            if (space(c))
                break;
            h->vallen = 0;
            h->var_at = -1;
            if (c == '"') {
                h->state = S_VALUE_DQ;
            } else if (c == '\'') {
                h->state = S_VALUE_SQ;
            } else if (c == '>') {
                tag_end(h);
            } else {
                h->state = S_VALUE_UQ;
                h->val[h->vallen++] = c;
            }
            break;
        case S_VALUE_DQ:
        case S_VALUE_SQ:
        case S_VALUE_UQ:
            if ((h->state == S_VALUE_DQ && c == '"') || (h->state == S_VALUE_SQ && c == '\'') ||
                (h->state == S_VALUE_UQ && (space(c) || c == '>'))) {
                if (attr_end(h, line, why, whylen))
                    return -1;
                if (c == '>')
                    tag_end(h);
                else
                    h->state = S_IN_TAG;
            } else if (h->vallen < sizeof h->val) {
                h->val[h->vallen++] = c;
            }
            break;
        case S_RAWTEXT:
            if (tolower((unsigned char)c) == h->raw_end[h->raw_match]) {
                if (!h->raw_end[++h->raw_match]) {
                    h->end_tag = 1;
                    h->state = S_IN_TAG;
                }
            } else {
                h->raw_match = c == '<' ? 1 : 0;
            }
            break;
        }
    }
    return 0;
}

int html_ctx_value(html_ctx *h, int raw, const char *name, const char *s, size_t n, int line,
                   char *why, size_t whylen)
{
    switch (h->state) {
    case S_DATA:
        if (raw) {
            int l;
            return html_ctx_feed(h, s, n, &l, why, whylen);
        }
        return 0;
    case S_COMMENT:
        if (!raw)
            return 0;
        snprintf(why, whylen, "unescaped output is not allowed inside an HTML comment");
        return -1;
    case S_VALUE_DQ:
    case S_VALUE_SQ:
        if (raw) {
            snprintf(why, whylen, "unescaped output is not allowed inside an attribute");
            return -1;
        }
        if (!strncmp(h->attr, "on", 2) || !strcmp(h->attr, "style")) {
            snprintf(why, whylen, "values are not allowed in the %s attribute (script or CSS)",
                     h->attr);
            return -1;
        }
        if (h->var_at < 0) {
            h->var_at = (long)h->vallen;
            h->var_line = line;
            snprintf(h->var_name, sizeof h->var_name, "%s", name);
        }
        /* escaped as it will be written: only its start matters here */
        for (size_t i = 0; i < n && h->vallen < sizeof h->val; i++)
            h->val[h->vallen++] = strchr("&<>\"'", s[i]) ? '&' : s[i];
        return 0;
    case S_BEFORE_VALUE:
    case S_VALUE_UQ:
        snprintf(why, whylen, "is inside an unquoted attribute value: quote the attribute");
        return -1;
    case S_RAWTEXT:
        snprintf(why, whylen, "is inside <%s>: values are not allowed in scripts or styles",
                 h->raw_end + 2);
        return -1;
    default:
        snprintf(why, whylen, "is inside a tag: values may only go in text or quoted attributes");
        return -1;
    }
}

int html_ctx_in_text(const html_ctx *h)
{
    return h->state == S_DATA;
}

int html_ctx_finish(html_ctx *h, int *line, char *why, size_t whylen)
{
    if (h->state == S_VALUE_DQ || h->state == S_VALUE_SQ || h->state == S_VALUE_UQ)
        return attr_end(h, line, why, whylen);
    return 0;
}
