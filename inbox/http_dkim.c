/* The DKIM view: GET /api/scalr/messages/{id}/dkim, the "dkim" of a
 * message's JSON and the badge of each row of the list.  Does each
 * signature verify against the key records given with --dkim-record (lines
 * as in DNS), and if not, why.  A developer sees a broken signature before
 * production does.
 *
 * The verdict is made once, when the message arrives (dkimcheck.c through
 * the store's hook), and read back with the message, so a list of 1000
 * signed messages verifies nothing.  Messages without a current verdict
 * (spooled to a file on arrival, or stored by an inbox run with other
 * records on the same --db) are checked once when first listed or opened,
 * and the verdict kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkimcheck.h"
#include "http_int.h"

/* A list checks, at most, messages this big itself; bigger ones are checked
 * when opened (loading them would hold the list up). */
#define LIST_CHECK_MAX (8u << 20)

/* The stored verdict (JSON text), or a new one made (and kept) from raw. */
static json_t *verdict(ib_http *h, int64_t id, const char *stored, const char *raw, size_t len)
{
    if (stored) {
        json_t *j = json_loads(stored, 0, NULL);
        if (j)
            return j;
    }
    json_t *j = ib_dkim_check(raw, len);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text)
        ib_store_set_dkim(h->st, &id, (const char *const *)&text, 1);
    free(text);
    return j;
}

json_t *ib_http_dkim_json(ib_http *h, const ib_http_loaded *l)
{
    json_t *j = verdict(h, l->m.id, l->m.dkim, l->raw, l->len);
    if (j)
        json_object_set_new(j, "records", json_boolean(ib_dkim_configured()));
    return j;
}

json_t *ib_http_dkim_status(const char *stored)
{
    if (!stored)
        return json_null();
    json_t *j = json_loads(stored, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "status"));
    json_t *out = s ? json_string(s) : json_null();
    json_decref(j);
    return out;
}

void ib_http_dkim_fill(ib_http *h, json_t *items)
{
    size_t n = json_array_size(items), k = 0;
    int64_t *ids = calloc(n ? n : 1, sizeof *ids);
    char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (!ids || !texts || !json_is_null(json_object_get(it, "dkim")) ||
            json_integer_value(json_object_get(it, "size")) > (json_int_t)LIST_CHECK_MAX)
            continue;
        ib_http_loaded l;
        if (ib_http_load(h, json_integer_value(json_object_get(it, "id")), &l) != 1)
            continue; /* deleted meanwhile */
        json_t *j = ib_dkim_check(l.raw, l.len);
        const char *s = json_string_value(json_object_get(j, "status"));
        if (s && (texts[k] = json_dumps(j, JSON_COMPACT))) {
            ids[k++] = l.m.id;
            json_object_set_new(it, "dkim", json_string(s));
        }
        ib_http_unload(&l);
        json_decref(j);
    }
    if (k) /* all kept in one commit */
        ib_store_set_dkim(h->st, ids, (const char *const *)texts, k);
    for (size_t m = 0; m < k; m++)
        free(texts[m]);
    free(texts);
    free(ids);
}

enum MHD_Result ib_http_scalr_dkim(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    json_t *j = ib_http_dkim_json(h, &l);
    ib_http_unload(&l);
    if (!j)
        return ib_http_send_error(c, 500, "out of memory");
    json_object_set_new(j, "id", json_integer((json_int_t)id));
    return ib_http_send_json(c, 200, j);
}
