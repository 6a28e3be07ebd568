/* Read state and tags over HTTP: PUT /api/scalr/messages/{id}/read
 * {"read": true|false}; GET and PUT /api/scalr/messages/{id}/tags
 * {"tags": ["a", "b"]}.  The UI marks a message read when it opens it.
 * Tags from an X-Tags header are set at delivery (store.c). */
#include "http_int.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "tags.h"
#include "util/buf.h"

json_t *ib_http_tags_json(const char *stored)
{
    json_t *a = json_array();
    for (const char *p = stored ? stored : ""; a && *p;) {
        if (*p == ',') {
            p++;
            continue;
        }
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        json_array_append_new(a, ib_http_jstrn(p, n));
        p += n;
    }
    return a;
}

static json_t *body_json(struct MHD_Connection *c, ib_http_req *r, unsigned *status)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    *status = 415;
    if (!ct || !ib_http_prefix_ci(ct, "application/json")) /* forces a CORS preflight */
        return NULL;
    *status = 413;
    if (r->too_big)
        return NULL;
    *status = 400;
    return json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
}

static enum MHD_Result body_error(struct MHD_Connection *c, unsigned status, const char *want)
{
    return ib_http_send_error(c, status,
                              status == 415   ? "send application/json"
                              : status == 413 ? "request body too large"
                                              : want);
}

static enum MHD_Result tags_answer(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    json_t *j = json_pack("{s:I, s:o, s:b}", "id", (json_int_t)id, "tags",
                          ib_http_tags_json(l.m.tags), "read", l.m.seen);
    ib_http_unload(&l);
    return ib_http_send_json(c, 200, j);
}

enum MHD_Result ib_http_state(ib_http *h, struct MHD_Connection *c, const char *method,
                              ib_http_req *r, int64_t id, const char *what)
{
    int tags = strcmp(what, "tags") == 0;
    if (tags && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return tags_answer(h, c, id);
    if (strcmp(method, "PUT") != 0)
        return ib_http_not_allowed(c, tags ? "GET, HEAD, PUT" : "PUT");
    unsigned status;
    json_t *j = body_json(c, r, &status);
    int rc;
    if (!tags) {
        json_t *v = json_object_get(j, "read");
        if (!json_is_boolean(v)) {
            json_decref(j);
            return body_error(c, status, "expected {\"read\": true} or {\"read\": false}");
        }
        rc = ib_store_set_seen(h->st, id, json_is_true(v));
    } else {
        json_t *v = json_object_get(j, "tags");
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n > IB_TAGS_MAX) {
            json_decref(j);
            return body_error(c, status, "expected {\"tags\": [\"tag\", ...]}, at most 20");
        }
        se_buf csv = {0};
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(v, i);
            if (!json_is_string(t) || !ib_tag_valid(json_string_value(t))) {
                se_buf_free(&csv);
                json_decref(j);
                return ib_http_send_error(c, 400,
                                          "a tag is 1 to 64 characters, without a comma, a "
                                          "control character or a space at either end");
            }
            se_buf_printf(&csv, "%s%s", i ? "," : "", json_string_value(t));
        }
        char *norm = csv.oom ? NULL : ib_tags_normalize(csv.data ? csv.data : "");
        se_buf_free(&csv);
        rc = norm ? ib_store_set_tags(h->st, id, norm) : -1;
        free(norm);
    }
    json_decref(j);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    return tags_answer(h, c, id);
}
