/* The Mustache engine: a template (bytes) and JSON data in, bytes out.
 *
 * Covers the specification's interpolation, sections, inverted sections,
 * comments, partials, set-delimiter and inheritance (parents and blocks)
 * modules; no lambdas.  It does no file I/O: partials and parents come from
 * a loader callback.  Escaping is chosen by the part being rendered, never
 * by the tag: see mu_mode. */
#ifndef SE_MUSTACHE_H
#define SE_MUSTACHE_H

#include <jansson.h>
#include <stddef.h>

typedef enum mu_mode {
    MU_HTML = 0, /* {{x}} escapes & < > " '; {{{x}}} only between tags;
                    values in href/src must be http(s)/mailto URLs; a tag
                    in an unquoted attribute, inside a tag, in <script> or
                    <style>, or in an on* or style attribute is an error */
    MU_TEXT,     /* nothing escaped; {{{x}}} and {{& x}} are errors */
    MU_SPEC      /* the specification's own rules: {{x}} escapes, no HTML
                    context checks (conformance tests, differential runs) */
} mu_mode;

/* Where partials ({{> name}}) and parents ({{< name}}) come from.  Returns
 * a malloc'd NUL-terminated source and sets *label (static or owned by the
 * loader, used in error messages, e.g. "_partials/footer.html"), or NULL
 * when there is none; *why (optional) then says why (a path escape). */
typedef char *(*mu_loader)(void *arg, const char *name, int parent, size_t *len,
                           const char **label, char *why, size_t whylen);

typedef struct mu_opts {
    mu_mode mode;
    int allow_missing;  /* 0: a variable missing from the data is an error */
    mu_loader load;     /* NULL: no partials */
    void *load_arg;
    const char *label;  /* name of the template in errors ("invoice/body.html") */
    size_t max_output;  /* 0: 16 MiB */
} mu_opts;

/* Render src with data.  Returns 0 and sets *out (malloc'd, NUL-terminated,
 * *out_len bytes), or -1 with why filled: "LABEL:LINE: what went wrong". */
int mu_render(const char *src, size_t len, json_t *data, const mu_opts *opts, char **out,
              size_t *out_len, char *why, size_t whylen);

/* The text part derived from an HTML part: head, style and script dropped,
 * blocks as paragraphs, <br> a newline, list items "- ", links "text (url)",
 * images their alt text, entities decoded, lines wrapped at 76.  Returns a
 * malloc'd NUL-terminated string or NULL (out of memory). */
char *mu_html_to_text(const char *html, size_t len, size_t *out_len);

#endif
