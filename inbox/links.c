/* See links.h.  A small tag scanner, not an HTML parser: it finds <a href>
 * and <img src> the way mail clients' link lists do, and never fails on
 * broken markup.  Checks use libcurl. */
#include "links.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TEXT_MAX 200
#define CHECK_TOTAL_S 60

static int ci_prefix(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && strncasecmp(p, lit, l) == 0;
}

/* The host of an http(s) URL, lower case, without "www.", into out. */
static int url_host(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://");
    if (!p || !(ci_prefix(url, strlen(url), "http://") || ci_prefix(url, strlen(url), "https://")))
        return -1;
    p += 3;
    const char *at = NULL;
    size_t e = strcspn(p, "/?#");
    for (size_t i = 0; i < e; i++)
        if (p[i] == '@')
            at = p + i;
    if (at) /* user@host: the host is what a browser opens */
        e -= (size_t)(at + 1 - p), p = at + 1;
    size_t h = 0;
    while (h < e && p[h] != ':')
        h++;
    if (h == 0 || h >= len)
        return -1;
    for (size_t i = 0; i < h; i++)
        out[i] = (char)tolower((unsigned char)p[i]);
    out[h] = '\0';
    if (!strncmp(out, "www.", 4))
        memmove(out, out + 4, h - 3);
    return 0;
}

/* A domain shown in link text ("example.com", "https://www.example.com/x"),
 * lower case without "www.", or -1 when the text shows none. */
static int text_domain(const char *t, char *out, size_t len)
{
    for (const char *p = t; *p; p++) {
        if (!isalnum((unsigned char)*p) ||
            (p > t &&
             (isalnum((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '-' || p[-1] == '@')))
            continue;
        size_t n = 0, dots = 0, last_dot = 0;
        while (isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '.') {
            if (p[n] == '.')
                dots++, last_dot = n;
            n++;
        }
        while (n && p[n - 1] == '.')
            n--, dots--;
        /* a name with a dot and a top-level label of 2+ letters */
        if (dots == 0 || last_dot + 3 > n || n >= len || p[n] == '@')
            continue;
        int alpha_tld = 1;
        for (size_t i = last_dot + 1; i < n; i++)
            alpha_tld &= isalpha((unsigned char)p[i]) != 0;
        if (!alpha_tld)
            continue;
        for (size_t i = 0; i < n; i++)
            out[i] = (char)tolower((unsigned char)p[i]);
        out[n] = '\0';
        if (!strncmp(out, "www.", 4))
            memmove(out, out + 4, n - 3);
        return 0;
    }
    return -1;
}

/* b is a or a subdomain of it. */
static int same_site(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb ? strcmp(a, b) == 0
                    : (lb > la && b[lb - la - 1] == '.' && strcmp(b + lb - la, a) == 0);
}

static void add(json_t *arr, const char *url, size_t ul, const char *kind, const char *part,
                const char *text)
{
    if (json_array_size(arr) >= IB_LINKS_MAX || ul == 0 || ul > 4096)
        return;
    char *u = strndup(url, ul);
    if (!u)
        return;
    /* &amp; in attribute values */
    for (char *p; (p = strstr(u, "&amp;"));)
        memmove(p + 1, p + 5, strlen(p + 5) + 1);
    json_t *flags = json_array();
    if (ci_prefix(u, strlen(u), "http://"))
        json_array_append_new(flags, json_string("insecure"));
    char host[256], shown[256];
    if (text && url_host(u, host, sizeof host) == 0 &&
        text_domain(text, shown, sizeof shown) == 0 && !same_site(shown, host) &&
        !same_site(host, shown))
        json_array_append_new(flags, json_string("text-mismatch"));
    json_t *tj = text ? json_string(text) : NULL; /* NULL too for invalid UTF-8 */
    json_t *o = json_pack("{s:s%, s:s, s:s, s:o, s:o}", "url", u, strlen(u), "kind", kind, "part",
                          part, "text", tj ? tj : json_null(), "flags", flags);
    if (o && json_object_get(o, "url"))
        json_array_append_new(arr, o);
    else
        json_decref(o);
    free(u);
}

/* The value of attribute `name` in the tag text [p, e), or NULL. */
static const char *attr(const char *p, const char *e, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *q = p; q + nl < e; q++) {
        if (!isspace((unsigned char)q[-1]) || strncasecmp(q, name, nl) != 0)
            continue;
        const char *v = q + nl;
        while (v < e && isspace((unsigned char)*v))
            v++;
        if (v >= e || *v != '=')
            continue;
        v++;
        while (v < e && isspace((unsigned char)*v))
            v++;
        if (v < e && (*v == '"' || *v == '\'')) {
            const char *end = memchr(v + 1, *v, (size_t)(e - v - 1));
            if (!end)
                return NULL;
            *len = (size_t)(end - v - 1);
            return v + 1;
        }
        const char *s = v;
        while (v < e && !isspace((unsigned char)*v) && *v != '>')
            v++;
        *len = (size_t)(v - s);
        return s;
    }
    return NULL;
}

/* Visible text of [p, e): tags dropped, white space collapsed, capped. */
static void visible(const char *p, const char *e, char *out, size_t len)
{
    size_t o = 0;
    int in_tag = 0, space = 0;
    for (; p < e && o + 2 < len; p++) {
        if (*p == '<')
            in_tag = 1;
        else if (*p == '>')
            in_tag = 0;
        else if (!in_tag) {
            if (isspace((unsigned char)*p)) {
                space = o > 0;
                continue;
            }
            if (space)
                out[o++] = ' ';
            space = 0;
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

void ib_links_html(json_t *arr, const char *html, size_t n)
{
    const char *end = html + n;
    for (const char *p = html; p && p < end; p = memchr(p + 1, '<', (size_t)(end - p - 1))) {
        if (*p != '<')
            continue;
        size_t left = (size_t)(end - p);
        int is_a = ci_prefix(p, left, "<a") && left > 2 && isspace((unsigned char)p[2]);
        int is_img = ci_prefix(p, left, "<img") && left > 4 && isspace((unsigned char)p[4]);
        if (!is_a && !is_img)
            continue;
        const char *te = memchr(p, '>', left);
        if (!te)
            break;
        size_t vl = 0;
        const char *v = attr(p + 2, te, is_a ? "href" : "src", &vl);
        if (!v)
            continue;
        while (vl && isspace((unsigned char)*v))
            v++, vl--;
        if (ci_prefix(v, vl, "data:") || ci_prefix(v, vl, "cid:") || ci_prefix(v, vl, "#") ||
            ci_prefix(v, vl, "javascript:"))
            continue;
        char text[TEXT_MAX + 1];
        if (is_a) {
            const char *close = te;
            while (close < end && !(close + 3 < end && !strncasecmp(close, "</a", 3)))
                close++;
            visible(te + 1, close, text, sizeof text);
            add(arr, v, vl, "link", "html", text);
        } else {
            size_t al = 0;
            const char *alt = attr(p + 4, te, "alt", &al);
            snprintf(text, sizeof text, "%.*s", alt ? (int)(al < TEXT_MAX ? al : TEXT_MAX) : 0,
                     alt ? alt : "");
            add(arr, v, vl, "image", "html", NULL);
        }
    }
}

void ib_links_text(json_t *arr, const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t left = n - i;
        if (!ci_prefix(t + i, left, "http://") && !ci_prefix(t + i, left, "https://"))
            continue;
        size_t e = i;
        while (e < n && !isspace((unsigned char)t[e]) && !strchr("<>\"'", t[e]))
            e++;
        while (e > i && strchr(".,;:!?)]", t[e - 1])) /* sentence punctuation */
            e--;
        add(arr, t + i, e - i, "link", "text", NULL);
        i = e;
    }
}

static size_t discard(void *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One URL: the final status, or -1 with err filled. */
static long check_one(const char *url, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "scalr-email-inbox-link-check");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    long code = 0;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && (code == 405 || code == 501)) {
        /* HEAD refused: a GET of the first byte */
        curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_RANGE, "0-0");
        rc = curl_easy_perform(c);
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
        code = -1;
    }
    curl_easy_cleanup(c);
    return code;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void ib_links_check(json_t *arr)
{
    pthread_once(&curl_once, curl_start);
    time_t start = time(NULL);
    size_t checked = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *url = json_string_value(json_object_get(o, "url"));
        if (!url ||
            !(ci_prefix(url, strlen(url), "http://") || ci_prefix(url, strlen(url), "https://"))) {
            json_object_set_new(o, "error", json_string("not an http(s) URL: not checked"));
            continue;
        }
        /* the same URL again: the same answer */
        json_t *prev = NULL;
        for (size_t j = 0; j < i && !prev; j++) {
            json_t *p = json_array_get(arr, j);
            if (!strcmp(json_string_value(json_object_get(p, "url")), url))
                prev = p;
        }
        if (prev) {
            json_t *s = json_object_get(prev, "status"), *e = json_object_get(prev, "error");
            if (s)
                json_object_set(o, "status", s);
            if (e)
                json_object_set(o, "error", e);
            continue;
        }
        if (checked >= IB_CHECK_MAX || time(NULL) - start >= CHECK_TOTAL_S) {
            json_object_set_new(o, "error",
                                json_string("not checked: over the limit of one check"));
            continue;
        }
        checked++;
        char err[CURL_ERROR_SIZE + 32];
        long code = check_one(url, err, sizeof err);
        if (code >= 0)
            json_object_set_new(o, "status", json_integer(code));
        else
            json_object_set_new(o, "error", json_string(err));
    }
}
