/* The release API: GET /api/scalr/release (configured? the allow list)
 * and POST /api/scalr/messages/{id}/release {"to": [...]} (release.h).
 * Every recipient is checked before anything is sent: one refused
 * recipient means nothing goes out. */
#include "http_int.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/address.h"
#include "release.h"

#define MAX_RELEASE_RCPT 50

enum MHD_Result ib_http_release_info(struct MHD_Connection *c)
{
    const char *const *p;
    size_t n = ib_release_patterns(&p);
    json_t *allow = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(allow, ib_http_jstr(p[i]));
    return ib_http_send_json(
        c, 200, json_pack("{s:b, s:o}", "enabled", ib_release_enabled(), "allow", allow));
}

static json_t *relay_json(const scalr_email_error *e)
{
    return json_pack("{s:i, s:s, s:o}", "code", e->smtp_code, "enhanced", e->enhanced, "text",
                     ib_http_jstr(e->server_text));
}

/* 400 with why, or 403 naming the refused addresses; NULL when all are fine. */
static json_t *check_rcpt(json_t *to, char **addrs, size_t n, unsigned *status)
{
    json_t *refused = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(to, i);
        se_address a;
        char why[256] = "each recipient must be a string";
        if (!json_is_string(v) || se_address_parse(json_string_value(v), &a, why, sizeof why) < 0) {
            json_decref(refused);
            char msg[300];
            snprintf(msg, sizeof msg, "bad recipient: %s", why);
            *status = 400;
            return json_pack("{s:s}", "error", msg);
        }
        addrs[i] = a.addr;
        a.addr = NULL;
        se_address_free(&a);
        if (!ib_release_allowed(addrs[i]))
            json_array_append_new(refused, ib_http_jstr(addrs[i]));
    }
    if (json_array_size(refused) == 0) {
        json_decref(refused);
        return NULL;
    }
    *status = 403;
    return json_pack("{s:s, s:o}", "error",
                     "not on the release allow list (--release-allow): nothing was sent", "refused",
                     refused);
}

enum MHD_Result ib_http_release(ib_http *h, struct MHD_Connection *c, const char *method,
                                ib_http_req *r, int64_t id)
{
    if (strcmp(method, "POST") != 0)
        return ib_http_not_allowed(c, "POST");
    if (!ib_release_enabled())
        return ib_http_send_error(c, 501,
                                  "release is not configured: start the inbox with "
                                  "--release-env FILE --release-allow PATTERN");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || !ib_http_prefix_ci(ct, "application/json")) /* forces a CORS preflight */
        return ib_http_send_error(c, 415, "send application/json");
    if (r->too_big)
        return ib_http_send_error(c, 413, "request body too large");
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    json_t *to = json_object_get(j, "to");
    if (json_is_string(to)) {
        json_t *one = json_array();
        json_array_append(one, to);
        json_object_set_new(j, "to", one);
        to = one;
    }
    size_t n = json_array_size(to);
    if (n == 0 || n > MAX_RELEASE_RCPT) {
        json_decref(j);
        return ib_http_send_error(c, 400,
                                  "expected {\"to\": [\"user@example.com\", ...]} "
                                  "with 1 to 50 recipients");
    }
    char **addrs = calloc(n + 1, sizeof *addrs);
    unsigned status = 200;
    json_t *answer = addrs ? check_rcpt(to, addrs, n, &status) : NULL;
    json_decref(j);
    if (!addrs)
        return ib_http_send_error(c, 500, "out of memory");
    if (!answer) {
        ib_http_loaded l;
        int rc = ib_http_load(h, id, &l);
        if (rc != 1) {
            for (size_t i = 0; i < n; i++)
                free(addrs[i]);
            free(addrs);
            return ib_http_load_error(c, rc);
        }
        scalr_email_error e;
        scalr_email_code sc = ib_release_send((long long)id, l.m.mail_from,
                                              (const char *const *)addrs, l.raw, l.len, &e);
        ib_http_unload(&l);
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, ib_http_jstr(addrs[i]));
        if (sc == SCALR_EMAIL_OK) {
            answer =
                json_pack("{s:b, s:o, s:o}", "released", 1, "to", list, "relay", relay_json(&e));
        } else {
            status = sc == SCALR_EMAIL_EINVAL ? 400 : 502;
            answer = json_pack("{s:o, s:s, s:s, s:s, s:o, s:o}", "error", ib_http_jstr(e.message),
                               "outcome", scalr_email_strerror(sc), "stage", e.stage, "recipient",
                               e.recipient, "to", list, "relay", relay_json(&e));
        }
    }
    for (size_t i = 0; i < n; i++)
        free(addrs[i]);
    free(addrs);
    return ib_http_send_json(c, status, answer);
}
