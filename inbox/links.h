/* The link check: every link and image in a message's HTML and text parts,
 * with what is suspicious about each (http://, a link text that shows
 * another domain than the target), and on request only, each checked with a
 * HEAD (GET when HEAD is refused) from the inbox process. */
#ifndef IB_LINKS_H
#define IB_LINKS_H

#include <jansson.h>
#include <stddef.h>

#define IB_LINKS_MAX 500 /* links listed per message */
#define IB_CHECK_MAX 100 /* URLs checked per request */

/* Append {"url", "kind": "link"|"image", "part": "html"|"text", "text",
 * "flags": [...]} for each link in html / text to arr (capped). */
void ib_links_html(json_t *arr, const char *html, size_t n);
void ib_links_text(json_t *arr, const char *text, size_t n);

/* Check every http(s) URL of arr (at most IB_CHECK_MAX distinct ones; each
 * at most 10 s, all together at most 60 s) and set "status" (the final
 * HTTP status after up to 5 redirects) or "error" on each entry. */
void ib_links_check(json_t *arr);

#endif
