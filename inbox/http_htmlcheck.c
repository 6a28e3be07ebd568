/* The HTML check over HTTP: GET /api/scalr/messages/{id}/htmlcheck matches
 * the message's HTML part against the caniemail.com data (built into the
 * binary as /caniemail.json, see scripts/update-caniemail.sh): each feature
 * used that some client family does not fully support, with the families
 * and platforms, the first line where it appears, and a score per family
 * (supported 1, partly 0.5, not 0, over the features found).  A feature is
 * found by a pattern made from its title; titles of other shapes (units,
 * selectors, image formats) are not checked. */
#include "http_int.h"

#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "mimeparse.h"

static json_t *db;
static pthread_once_t db_once = PTHREAD_ONCE_INIT;

static void load_db(void)
{
    for (const ib_asset *a = ib_assets; a->path; a++)
        if (strcmp(a->path, "/caniemail.json") == 0)
            db = json_loadb((const char *)a->data, a->len, 0, NULL);
}

static int word(const char *s, size_t n) /* [a-z0-9-]{1,n} */
{
    size_t l = strlen(s);
    return l > 0 && l <= n && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == l;
}

/* An extended regular expression for the feature's title, or 0. */
static int pattern(const char *cat, const char *title, char *re, size_t len)
{
    char a[64] = "", b[64] = "";
    const char *sp = "[[:space:]]";
    if (!strcmp(cat, "css")) {
        if (sscanf(title, "%63[a-z-]:%63[a-z-]", a, b) == 2 &&
            strlen(a) + strlen(b) + 1 == strlen(title))
            return snprintf(re, len, "(^|[[:space:];{\"'])%s%s*:%s*%s([^a-z0-9-]|$)", a, sp, sp,
                            b) > 0;
        if (word(title, 60))
            return snprintf(re, len, "(^|[[:space:];{\"'])%s%s*:", title, sp) > 0;
        if (title[0] == ':' && word(title + (title[1] == ':' ? 2 : 1), 60))
            return snprintf(re, len, "[]a-z0-9*)]%s([^a-z-]|$)", title) > 0;
        if (sscanf(title, "@media (%63[a-z-])", a) == 1 && strlen(a) + 9 == strlen(title))
            return snprintf(re, len, "@media[^{]*%s", a) > 0;
        if (title[0] == '@' && word(title + 1, 60))
            return snprintf(re, len, "%s([^a-z-]|$)", title) > 0;
        return 0;
    }
    if (!strcmp(cat, "html")) {
        size_t tl = strlen(title);
        if (sscanf(title, "<%63[a-z0-9] type=\"%63[a-z-]\"> element", a, b) == 2 &&
            tl == strlen(a) + strlen(b) + 18)
            return snprintf(re, len, "<%s%s[^>]*type%s*=%s*[\"']?%s([^a-z-]|$)", a, sp, sp, sp, b) >
                   0;
        if (sscanf(title, "<%63[a-z0-9]> element", a) == 1 && tl == strlen(a) + 10)
            return snprintf(re, len, "<%s[[:space:]>/]", a) > 0;
        if (sscanf(title, "%63[a-z-] attribute", a) == 1 && tl == strlen(a) + 10)
            return snprintf(re, len, "<[a-z][^>]*[[:space:]]%s%s*=", a, sp) > 0;
    }
    return 0;
}

/* The newest result of each platform: 'y', 'a', 'n' or 'u'; fills the
 * platforms that are 'n' and 'a'; returns the family's verdict. */
static char verdict(json_t *stats, json_t *no, json_t *part)
{
    json_t *nice = json_object_get(json_object_get(db, "nicenames"), "platform");
    const char *platform;
    json_t *versions;
    int n = 0, a = 0, y = 0, total = 0;
    json_object_foreach(stats, platform, versions)
    {
        const char *last = NULL, *k;
        json_t *v;
        json_object_foreach(versions, k, v) last = json_string_value(v);
        char c = last ? (char)tolower((unsigned char)last[0]) : 'u';
        total++;
        json_t *pn = json_object_get(nice, platform); /* "windows" -> "Windows" */
        if (c == 'n')
            n++, json_array_append_new(no, pn ? json_incref(pn) : json_string(platform));
        else if (c == 'a')
            a++, json_array_append_new(part, pn ? json_incref(pn) : json_string(platform));
        else if (c == 'y')
            y++;
    }
    return n ? 'n' : a ? 'a' : (total && y == total) ? 'y' : 'u';
}

static json_t *check(const char *html)
{
    json_t *features = json_array(),
           *families = json_object_get(json_object_get(db, "nicenames"), "family");
    size_t found = 0;
    double score[64] = {0};
    int rated[64] = {0};
    json_t *data = json_object_get(db, "data"), *f;
    size_t i;
    json_array_foreach(data, i, f)
    {
        char re[400];
        const char *cat = json_string_value(json_object_get(f, "category"));
        const char *title = json_string_value(json_object_get(f, "title"));
        if (!cat || !title || !pattern(cat, title, re, sizeof re))
            continue;
        regex_t rx;
        if (regcomp(&rx, re, REG_EXTENDED | REG_ICASE) != 0)
            continue;
        regmatch_t m[2];
        int hit = regexec(&rx, html, 2, m, 0) == 0;
        regfree(&rx);
        if (!hit)
            continue;
        found++;
        size_t at = (size_t)m[0].rm_so + (m[1].rm_so >= 0 ? (size_t)(m[1].rm_eo - m[1].rm_so) : 0);
        size_t line = 1;
        for (size_t k = 0; k < at; k++)
            line += html[k] == '\n';
        json_t *bad = json_array(), *partly = json_array();
        const char *fam;
        json_t *stats;
        json_object_foreach(json_object_get(f, "stats"), fam, stats)
        {
            json_t *no = json_array(), *part = json_array();
            char v = verdict(stats, no, part);
            size_t idx = 0;
            const char *k2;
            json_t *v2;
            json_object_foreach(families, k2, v2)
            {
                if (!strcmp(k2, fam))
                    break;
                idx++;
            }
            if (idx < 64 && v != 'u') {
                rated[idx]++;
                score[idx] += v == 'y' ? 1 : v == 'a' ? 0.5 : 0;
            }
            json_t *name = json_object_get(families, fam);
            if (v == 'n')
                json_array_append_new(bad, json_pack("{s:s, s:O*, s:o}", "family", fam, "name",
                                                     name, "platforms", no));
            else
                json_decref(no);
            if (v == 'a')
                json_array_append_new(partly, json_pack("{s:s, s:O*, s:o}", "family", fam, "name",
                                                        name, "platforms", part));
            else
                json_decref(part);
        }
        if (json_array_size(bad) || json_array_size(partly))
            json_array_append_new(features,
                                  json_pack("{s:O, s:s, s:O*, s:I, s:o, s:o}", "slug",
                                            json_object_get(f, "slug"), "title", title, "url",
                                            json_object_get(f, "url"), "line", (json_int_t)line,
                                            "unsupported", bad, "partial", partly));
        else
            json_decref(bad), json_decref(partly);
    }
    json_t *scores = json_object();
    const char *k;
    json_t *v;
    size_t idx = 0;
    json_object_foreach(families, k, v)
    {
        if (idx < 64 && rated[idx])
            json_object_set_new(scores, k,
                                json_pack("{s:O, s:i}", "name", v, "score",
                                          (int)(100 * score[idx] / rated[idx] + 0.5)));
        idx++;
    }
    return json_pack("{s:I, s:o, s:o, s:O*}", "found", (json_int_t)found, "features", features,
                     "scores", scores, "data_date", json_object_get(db, "last_update_date"));
}

enum MHD_Result ib_http_htmlcheck(ib_http *h, struct MHD_Connection *c, const char *method,
                                  int64_t id)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return ib_http_not_allowed(c, "GET, HEAD");
    pthread_once(&db_once, load_db);
    if (!db)
        return ib_http_send_error(c, 500, "the caniemail data is missing from this build");
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    ib_part *parts = NULL;
    size_t n = 0;
    char *html = NULL;
    if (ib_mime_parts(l.raw, l.len, &parts, &n) == 0)
        for (size_t i = 0; i < n && !html; i++)
            if (!parts[i].is_attachment && !strcmp(parts[i].content_type, "text/html"))
                html = strndup(parts[i].body ? parts[i].body : "", parts[i].body_len);
    ib_mime_parts_free(parts, n);
    ib_http_unload(&l);
    if (!html)
        return ib_http_send_error(c, 404, "this message has no HTML part");
    json_t *j = check(html);
    free(html);
    return j ? ib_http_send_json(c, 200, j) : ib_http_send_error(c, 500, "out of memory");
}
