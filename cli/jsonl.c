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
    const char *key, *tmpl = NULL, *locale = NULL;
    json_t *v, *data = NULL;
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
        } else if (!strcmp(key, "template")) {
            rc = get_str(v, &tmpl, NULL, why, wl, key);
        } else if (!strcmp(key, "locale")) {
            rc = json_is_null(v) ? 0 : get_str(v, &locale, NULL, why, wl, key);
        } else if (!strcmp(key, "data")) {
            data = v;
            rc = json_is_object(v) ? 0 : -1;
            if (rc)
                snprintf(why, wl, "'data' must be an object");
        } else if (!strcmp(key, "unsubscribe")) {
            rc = get_str(v, &it->unsub, NULL, why, wl, key);
        } else if (!strcmp(key, "profile")) {
            rc = get_str(v, &it->profile, NULL, why, wl, key);
        } else if (!strcmp(key, "unsubscribe_mailto")) {
            rc = get_str(v, &it->unsub_mailto, NULL, why, wl, key);
        } else if (!strcmp(key, "attachments") || !strcmp(key, "inline")) {
            const char **paths = NULL;
            rc = json_is_array(v) ? str_list(v, &paths, why, wl, key) : -1;
            if (!json_is_array(v))
                snprintf(why, wl, "'%s' must be a list of paths", key);
            if (!rc) {
                /* attachments and inline parts share one array */
                size_t n = json_array_size(v), have = 0;
                while (it->att && (it->att[have].path || it->att[have].data))
                    have++;
                scalr_email_attachment *a = realloc(it->att, (have + n + 1) * sizeof *a);
                if (!a) {
                    snprintf(why, wl, "out of memory");
                    rc = -1;
                } else {
                    it->att = a;
                    memset(a + have, 0, (n + 1) * sizeof *a);
                    for (size_t i = 0; i < n; i++) {
                        a[have + i].path = paths[i];
                        if (key[0] == 'i') { /* the file's name is the content ID */
                            const char *slash = strrchr(paths[i], '/');
                            a[have + i].content_id = slash ? slash + 1 : paths[i];
                        }
                    }
                    m->attachments = it->att;
                }
            }
            free(paths);
        } else if (!strcmp(key, "calendar")) {
            rc = get_str(v, &m->calendar, NULL, why, wl, key);
        } else if (!strcmp(key, "envelope_from")) {
            rc = get_str(v, &m->envelope_from, NULL, why, wl, key);
        } else if (!strcmp(key, "dsn_notify")) {
            rc = get_str(v, &m->dsn_notify, NULL, why, wl, key);
        } else if (!strcmp(key, "dsn_ret")) {
            rc = get_str(v, &m->dsn_ret, NULL, why, wl, key);
        } else if (!strcmp(key, "envid")) {
            rc = get_str(v, &m->dsn_envid, NULL, why, wl, key);
        } else {
            snprintf(why, wl, "unknown field '%.60s'", key);
            rc = -1;
        }
        if (rc)
            return -1;
    }
    if ((data || locale) && !tmpl) {
        snprintf(why, wl, "'data' and 'locale' go with 'template'");
        return -1;
    }
    if (tmpl) {
        if (m->subject || m->body || m->body_html) {
            snprintf(why, wl,
                     "'template' makes the subject and bodies: no 'subject', 'body' "
                     "or 'body_html' with it");
            return -1;
        }
        char *dtext = data ? json_dumps(data, JSON_COMPACT) : NULL;
        scalr_email_error err;
        scalr_email_template_opts o = {.locale = locale};
        scalr_email_code rc =
            scalr_email_template_render(tmpl, dtext, dtext ? strlen(dtext) : 0, &o, &it->r, &err);
        free(dtext);
        if (rc != SCALR_EMAIL_OK) {
            snprintf(why, wl, "%s", err.message);
            return -1;
        }
        m->subject = it->r.subject;
        m->body = it->r.body_len ? it->r.body : "";
        m->body_len = it->r.body_len;
        m->body_html = it->r.body_html;
        m->body_html_len = it->r.body_html_len;
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
    scalr_email_rendered_free(&it->r);
    json_decref(it->json);
}
