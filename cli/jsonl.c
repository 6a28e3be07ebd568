/* The JSON Lines message format shared by send-batch and queue add --jsonl. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int str_list(json_t *v, const char ***out, char *why, size_t whylen, const char *field)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    const char **l = calloc(n + 1, sizeof *l);
    if (!l) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    *out = l;
    if (json_is_string(v)) {
        l[0] = json_string_value(v);
        return 0;
    }
    if (!json_is_array(v)) {
        snprintf(why, whylen, "'%s' must be a string or a list of strings", field);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            snprintf(why, whylen, "'%s' must be a string or a list of strings", field);
            return -1;
        }
        l[i] = json_string_value(e);
    }
    return 0;
}

static int get_str(json_t *v, const char **out, size_t *len, char *why, size_t whylen,
                   const char *field)
{
    if (!json_is_string(v)) {
        snprintf(why, whylen, "'%s' must be a string", field);
        return -1;
    }
    *out = json_string_value(v);
    if (len) /* a NUL inside stays visible to the library, which refuses it */
        *len = json_string_length(v);
    return 0;
}

/* "unsubscribe": the two RFC 8058 fields after any "headers". */
static int add_unsubscribe(cli_item *it)
{
    scalr_email_error err;
    if (!it->unsub) {
        snprintf(it->why, sizeof it->why, "'unsubscribe_mailto' needs 'unsubscribe'");
        return -1;
    }
    if (scalr_email_unsubscribe_value(it->unsub, it->unsub_mailto, it->unsub_value,
                                      sizeof it->unsub_value, &err) != SCALR_EMAIL_OK) {
        snprintf(it->why, sizeof it->why, "%.190s", err.message);
        return -1;
    }
    size_t n = 0;
    while (it->headers && it->headers[n].name)
        n++;
    scalr_email_header *more = realloc(it->headers, (n + 3) * sizeof *more);
    if (!more) {
        snprintf(it->why, sizeof it->why, "out of memory");
        return -1;
    }
    it->headers = more;
    more[n] = (scalr_email_header){"List-Unsubscribe", it->unsub_value};
    more[n + 1] = (scalr_email_header){"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"};
    more[n + 2] = (scalr_email_header){0};
    it->m.headers = more;
    return 0;
}

int cli_item_parse(cli_item *it, const char *text, size_t len)
{
    char *why = it->why;
    size_t wl = sizeof it->why;
    json_error_t je;
    it->json = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!it->json) {
        snprintf(why, wl, "invalid JSON: %s", je.text);
        return -1;
    }
    if (!json_is_object(it->json)) {
        snprintf(why, wl, "a line must be a JSON object");
        return -1;
    }
    scalr_email_message *m = &it->m;
    const char *key;
    json_t *v;
    json_object_foreach(it->json, key, v)
    {
        int rc;
        if (!strcmp(key, "to") || !strcmp(key, "cc") || !strcmp(key, "bcc")) {
            int k = key[0] == 't' ? 0 : key[0] == 'c' ? 1 : 2;
            rc = str_list(v, &it->lists[k], why, wl, key);
        } else if (!strcmp(key, "subject")) {
            rc = get_str(v, &m->subject, NULL, why, wl, key);
        } else if (!strcmp(key, "body")) {
            rc = get_str(v, &m->body, &m->body_len, why, wl, key);
            if (!rc && !m->body_len)
                m->body = "";
        } else if (!strcmp(key, "body_html")) {
            rc = get_str(v, &m->body_html, &m->body_html_len, why, wl, key);
            if (!rc && !m->body_html_len)
                m->body_html = "";
        } else if (!strcmp(key, "sender")) {
            rc = get_str(v, &m->sender, NULL, why, wl, key);
        } else if (!strcmp(key, "reply_to")) {
            rc = get_str(v, &m->reply_to, NULL, why, wl, key);
        } else if (!strcmp(key, "headers")) {
            if (!json_is_object(v)) {
                snprintf(why, wl, "'headers' must be an object of strings");
                return -1;
            }
            it->headers = calloc(json_object_size(v) + 1, sizeof *it->headers);
            if (!it->headers) {
                snprintf(why, wl, "out of memory");
                return -1;
            }
            size_t i = 0;
            const char *hk;
            json_t *hv;
            json_object_foreach(v, hk, hv)
            {
                if (!json_is_string(hv)) {
                    snprintf(why, wl, "header '%.60s' must be a string", hk);
                    return -1;
                }
                it->headers[i].name = hk;
                it->headers[i++].value = json_string_value(hv);
            }
            m->headers = it->headers;
            rc = 0;
        } else if (!strcmp(key, "unsubscribe")) {
            rc = get_str(v, &it->unsub, NULL, why, wl, key);
        } else if (!strcmp(key, "unsubscribe_mailto")) {
            rc = get_str(v, &it->unsub_mailto, NULL, why, wl, key);
        } else if (!strcmp(key, "attachments")) {
            const char **paths = NULL;
            rc = json_is_array(v) ? str_list(v, &paths, why, wl, key) : -1;
            if (!json_is_array(v))
                snprintf(why, wl, "'attachments' must be a list of paths");
            if (!rc) {
                size_t n = json_array_size(v);
                it->att = calloc(n + 1, sizeof *it->att);
                if (!it->att) {
                    snprintf(why, wl, "out of memory");
                    rc = -1;
                }
                for (size_t i = 0; !rc && i < n; i++)
                    it->att[i].path = paths[i];
                m->attachments = it->att;
            }
            free(paths);
        } else {
            snprintf(why, wl, "unknown field '%.60s'", key);
            rc = -1;
        }
        if (rc)
            return -1;
    }
    if ((it->unsub || it->unsub_mailto) && add_unsubscribe(it) < 0)
        return -1;
    m->to = it->lists[0];
    m->cc = it->lists[1];
    m->bcc = it->lists[2];
    if (!m->to && !m->cc && !m->bcc) {
        snprintf(why, wl, "no recipient: 'to', 'cc' or 'bcc' is required");
        return -1;
    }
    return 0;
}

void cli_item_free(cli_item *it)
{
    for (int k = 0; k < 3; k++)
        free(it->lists[k]);
    free(it->headers);
    free(it->att);
    json_decref(it->json);
}
