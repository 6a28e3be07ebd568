/* /api/scalr/templates: the template preview.
 *
 *   GET /api/scalr/templates             {"enabled", "root", "templates": [{"name", "ok",
 *                                         "error", "subject", "text", "html_bytes",
 *                                         "version", "sample"}]}
 *   GET /api/scalr/templates/NAME/html   the rendered HTML part, for the sandboxed frame
 *
 * Each request renders through the public scalr_email_template_render() with
 * the template's sample.json ({} when there is none), so what is shown is
 * what `scalr-email template render` gives; "version" changes whenever any
 * part does, for the UI's polling. */
#include "http_templates.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http_int.h"
#include "scalr_email.h"

#define MAX_TEMPLATES 500
#define MAX_SAMPLE (1u << 20)

static char *root; /* set before the HTTP server starts, then read-only */

int ib_http_templates_init(const char *dir, char *why, size_t whylen)
{
    struct stat st;
    char real[PATH_MAX];
    if (!realpath(dir, real) || stat(real, &st) || !S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "--templates %s: not a readable folder", dir);
        return -1;
    }
    ib_http_templates_free();
    root = strdup(real);
    return root ? 0 : -1;
}

void ib_http_templates_free(void)
{
    free(root);
    root = NULL;
}

static char *sample(const char *name, size_t *len, int *found)
{
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/%s/sample.json", root, name);
    *found = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(MAX_SAMPLE + 1);
    size_t n = buf ? fread(buf, 1, MAX_SAMPLE, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    *len = n;
    *found = 1;
    return buf;
}

static int render(const char *name, scalr_email_rendered *r, scalr_email_error *err,
                  int *has_sample)
{
    size_t len = 0;
    char *data = sample(name, &len, has_sample);
    scalr_email_template_opts o = {.root = root};
    int rc = scalr_email_template_render(name, data ? data : "{}", data ? len : 2, &o, r, err);
    free(data);
    return rc;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static int is_template(const char *name)
{
    if (name[0] == '.' || name[0] == '_')
        return 0;
    char path[PATH_MAX + 128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/body.html", root, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum MHD_Result list(struct MHD_Connection *c)
{
    DIR *d = opendir(root);
    if (!d)
        return ib_http_send_error(c, 500, "cannot read the templates folder");
    char *names[MAX_TEMPLATES];
    size_t n = 0;
    for (struct dirent *e; n < MAX_TEMPLATES && (e = readdir(d));)
        if (is_template(e->d_name) && (names[n] = strdup(e->d_name)))
            n++;
    closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        scalr_email_rendered r;
        scalr_email_error err;
        int has_sample = 0;
        int rc = render(names[i], &r, &err, &has_sample);
        json_t *t = json_object();
        json_object_set_new(t, "name", ib_http_jstr(names[i]));
        json_object_set_new(t, "ok", json_boolean(rc == SCALR_EMAIL_OK));
        json_object_set_new(t, "sample", json_boolean(has_sample));
        uint64_t h = 0xcbf29ce484222325ULL;
        if (rc == SCALR_EMAIL_OK) {
            json_object_set_new(t, "subject", ib_http_jstr(r.subject));
            json_object_set_new(t, "text", ib_http_jstrn(r.body, r.body_len));
            json_object_set_new(t, "html_bytes", json_integer((json_int_t)r.body_html_len));
            h = fnv(fnv(fnv(h, r.subject, strlen(r.subject)), r.body, r.body_len), r.body_html,
                    r.body_html_len);
            scalr_email_rendered_free(&r);
        } else {
            json_object_set_new(t, "error", ib_http_jstr(err.message));
            h = fnv(h, err.message, strlen(err.message));
        }
        char v[24];
        snprintf(v, sizeof v, "%016llx", (unsigned long long)h);
        json_object_set_new(t, "version", json_string(v));
        json_array_append_new(arr, t);
        free(names[i]);
    }
    json_t *j = json_object();
    json_object_set_new(j, "enabled", json_true());
    json_object_set_new(j, "root", ib_http_jstr(root));
    json_object_set_new(j, "templates", arr);
    return ib_http_send_json(c, 200, j);
}

enum MHD_Result ib_http_templates(struct MHD_Connection *c, const char *url, const char *method)
{
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return ib_http_not_allowed(c, "GET, HEAD");
    const char *rest = url + strlen("/api/scalr/templates");
    if (!root) {
        if (*rest)
            return ib_http_send_error(c, 404, "no --templates folder");
        json_t *j = json_object();
        json_object_set_new(j, "enabled", json_false());
        return ib_http_send_json(c, 200, j);
    }
    if (!*rest || !strcmp(rest, "/"))
        return list(c);
    /* /NAME/html */
    const char *name = rest + 1, *slash = strchr(name, '/');
    if (!slash || strcmp(slash, "/html") || slash == name || (size_t)(slash - name) > 100)
        return ib_http_send_error(c, 404, "not found");
    char nm[128];
    memcpy(nm, name, (size_t)(slash - name));
    nm[slash - name] = '\0';
    if (!is_template(nm)) /* also refuses "..", hidden and _layouts */
        return ib_http_send_error(c, 404, "no such template");
    scalr_email_rendered r;
    scalr_email_error err;
    int has_sample;
    if (render(nm, &r, &err, &has_sample) != SCALR_EMAIL_OK)
        return ib_http_send_error(c, 422, err.message);
    char *html = r.body_html;
    size_t len = r.body_html_len;
    r.body_html = NULL;
    scalr_email_rendered_free(&r);
    return ib_http_respond(c, 200, "text/html; charset=utf-8", html, len, 1, K_FRAME, NULL);
}
