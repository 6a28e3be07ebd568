/* The Mustache engine's inside: the template tree shared by the parser
 * (mustache_parse.c) and the renderer (mustache.c).  Private. */
#ifndef SE_MUSTACHE_INT_H
#define SE_MUSTACHE_INT_H

#include <stddef.h>

#include "template/mustache.h"

#define MAX_NEST 64        /* sections inside sections, in one template */
#define MAX_CTX 128        /* context stack depth while rendering */
#define MAX_INCLUDE 32     /* partials/parents (and blocks) inside one another */
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

/* Parse src (with indent: every line of it indented first, for a standalone
 * partial); in the HTML part also check where values go in every branch.
 * NULL with why ("LABEL:LINE: ...") on a template error. */
tmpl *mu_compile(const char *src, size_t len, const char *indent, mu_mode mode, const char *label,
                 char *why, size_t whylen);
void mu_tmpl_free(tmpl *t);

#endif
