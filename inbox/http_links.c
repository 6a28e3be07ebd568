/* The link check over HTTP: GET /api/scalr/messages/{id}/links lists the
 * links and images of the HTML and text parts (nothing is fetched);
 * POST /api/scalr/messages/{id}/links/check also checks each one from the
 * inbox process (links.h), only when asked. */
#include "http_int.h"

#include <jansson.h>
#include <microhttpd.h>
#include <string.h>

#include "links.h"
#include "mimeparse.h"

enum MHD_Result ib_http_links(ib_http *h, struct MHD_Connection *c, const char *method, int64_t id,
                              int check)
{
    if (check ? strcmp(method, "POST") != 0
              : strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return ib_http_not_allowed(c, check ? "POST" : "GET, HEAD");
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    ib_part *parts = NULL;
    size_t n = 0;
    if (ib_mime_parts(l.raw, l.len, &parts, &n) < 0) {
        ib_http_unload(&l);
        return ib_http_send_error(c, 500, "out of memory");
    }
    json_t *arr = json_array();
    for (int html = 1; html >= 0; html--) /* the HTML part's links first */
        for (size_t i = 0; i < n; i++) {
            if (parts[i].is_attachment ||
                strcmp(parts[i].content_type, html ? "text/html" : "text/plain") != 0)
                continue;
            if (html)
                ib_links_html(arr, parts[i].body, parts[i].body_len);
            else
                ib_links_text(arr, parts[i].body, parts[i].body_len);
        }
    ib_mime_parts_free(parts, n);
    ib_http_unload(&l);
    if (check)
        ib_links_check(arr);
    return ib_http_send_json(
        c, 200, json_pack("{s:I, s:b, s:o}", "id", (json_int_t)id, "checked", check, "links", arr));
}
