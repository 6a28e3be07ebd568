/* Where in an HTML document a template value lands, so that the HTML part
 * can refuse placements that escaping alone does not make safe. */
#ifndef SE_HTML_CTX_H
#define SE_HTML_CTX_H

#include <stddef.h>

typedef struct html_ctx {
    int state;
    char tag[16], attr[32], raw_end[20];
    size_t taglen, attrlen, raw_match;
    int end_tag, dashes;
    char val[64]; /* the start of the current attribute value */
    size_t vallen;
    long var_at; /* where a value first landed in it; -1: none */
    int var_line;
    char var_name[64]; /* and its tag's name, for the error */
    int lint; /* a pass over the template without data: no URL checks */
} html_ctx;

void html_ctx_init(html_ctx *h);
/* Template text (or unescaped output) as it is written.  -1 with why (and
 * *line, the line of the offending value) when it closes an attribute
 * whose URL a value made unsafe. */
int html_ctx_feed(html_ctx *h, const char *s, size_t n, int *line, char *why, size_t whylen);
/* A value about to be written (raw: {{{x}}}): 0 when it may go here. */
int html_ctx_value(html_ctx *h, int raw, const char *name, const char *s, size_t n, int line,
                   char *why, size_t whylen);
/* 1 between tags (where unescaped output may go). */
int html_ctx_in_text(const html_ctx *h);
/* End of the document: an attribute left open is checked too. */
int html_ctx_finish(html_ctx *h, int *line, char *why, size_t whylen);

#endif
