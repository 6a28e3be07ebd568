/* Templates on disk: templates/NAME/{subject.txt,body.html,body.txt},
 * templates/_layouts/, templates/_partials/, locale variants, and the
 * public scalr_email_template_render(). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "mime/compose.h"
#include "scalr_email.h"
#include "template/mustache.h"

#define MAX_FILE (1u << 20) /* one template file */

typedef struct files {
    char root[PATH_MAX]; /* realpath of the templates folder */
    const char *locale;
    const char *ext; /* "html" or "txt": which partials a part sees */
    char label[PATH_MAX + 64];
} files;

typedef enum { F_OK, F_MISSING, F_ESCAPE, F_ERROR } fstatus;

/* A plain path segment: no "..", no "/", nothing hidden. */
static int plain_segment(const char *s, size_t n)
{
    if (n == 0 || n > 100 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

/* A partial or layout name: plain segments separated by '/'. */
static int plain_path(const char *s)
{
    if (!*s || strlen(s) > 200)
        return 0;
    for (const char *p = s;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!plain_segment(p, n))
            return 0;
        if (!slash)
            return 1;
        p = slash + 1;
    }
}

static int valid_locale(const char *l)
{
    size_t n = strlen(l);
    if (n == 0 || n > 35 || !isalpha((unsigned char)l[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)l[i]) && l[i] != '-' && l[i] != '_')
            return 0;
    return 1;
}

/* Read root/rel, refusing anything whose real path is outside the root
 * (symbolic links out of it). */
static fstatus read_in_root(const files *f, const char *rel, char **data, size_t *len)
{
    char path[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", f->root, rel) >= sizeof path)
        return F_MISSING;
    if (!realpath(path, real))
        return errno == ENOENT || errno == ENOTDIR ? F_MISSING : F_ERROR;
    size_t rl = strlen(f->root);
    if (strncmp(real, f->root, rl) || real[rl] != '/')
        return F_ESCAPE;
    FILE *fp = fopen(real, "rb");
    if (!fp)
        return F_ERROR;
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE) {
        fclose(fp);
        return S_ISDIR(st.st_mode) ? F_MISSING : F_ERROR;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, fp) : 0;
    int bad = !buf || ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return F_ERROR;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return F_OK;
}

/* dir/base.LOCALE.ext, then dir/base.LANG.ext, then dir/base.ext (and for
 * partials finally dir/base as named).  *label gets the one found. */
static fstatus find_variant(files *f, const char *dir, const char *base, const char *ext,
                            int exact_too, char **data, size_t *len)
{
    char lang[40] = "";
    if (f->locale) {
        snprintf(lang, sizeof lang, "%s", f->locale);
        lang[strcspn(lang, "-_")] = '\0';
    }
    const char *variants[3] = {f->locale, strcmp(lang, f->locale ? f->locale : "") ? lang : NULL,
                               ""};
    for (int i = 0; i < 4; i++) {
        char rel[PATH_MAX];
        if (i < 3) {
            if (!variants[i])
                continue;
            snprintf(rel, sizeof rel, "%s/%s%s%s.%s", dir, base, *variants[i] ? "." : "",
                     variants[i], ext);
        } else {
            if (!exact_too)
                break;
            snprintf(rel, sizeof rel, "%s/%s", dir, base);
        }
        fstatus s = read_in_root(f, rel, data, len);
        if (s == F_OK)
            snprintf(f->label, sizeof f->label, "%s", rel);
        if (s != F_MISSING)
            return s;
    }
    return F_MISSING;
}

static char *load_partial(void *arg, const char *name, int parent, size_t *len,
                          const char **label, char *why, size_t whylen)
{
    files *f = arg;
    if (!plain_path(name)) {
        snprintf(why, whylen, "the name must stay inside the templates folder (no '..', no '/' "
                              "at the start)");
        return NULL;
    }
    const char *dirs[2] = {parent ? "_layouts" : "_partials", parent ? "_partials" : "_layouts"};
    for (int i = 0; i < 2; i++) {
        char *data = NULL;
        fstatus s = find_variant(f, dirs[i], name, f->ext, 1, &data, len);
        if (s == F_OK) {
            *label = f->label;
            return data;
        }
        if (s == F_ESCAPE) {
            snprintf(why, whylen, "it leads outside the templates folder");
            return NULL;
        }
        if (s == F_ERROR) {
            snprintf(why, whylen, "unreadable: %s", strerror(errno));
            return NULL;
        }
    }
    snprintf(why, whylen, "no %s/%s.%s", dirs[0], name, f->ext);
    return NULL;
}

static scalr_email_code render_part(files *f, const char *name, const char *base,
                                    const char *ext, mu_mode mode, int required, json_t *data,
                                    const scalr_email_template_opts *o, char **out, size_t *len,
                                    scalr_email_error *err)
{
    char *src = NULL;
    size_t sl = 0;
    fstatus s = find_variant(f, name, base, ext, 0, &src, &sl);
    if (s == F_MISSING && !required)
        return SCALR_EMAIL_OK;
    if (s == F_MISSING)
        return se_fail(err, SCALR_EMAIL_EFILE, "TEMPLATE", "template '%s' has no %s.%s in %s",
                       name, base, ext, f->root);
    if (s == F_ESCAPE)
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE",
                       "template file %s/%s.%s leads outside the templates folder", name, base,
                       ext);
    if (s == F_ERROR)
        return se_fail(err, SCALR_EMAIL_EFILE, "TEMPLATE", "cannot read template %s/%s.%s: %s",
                       name, base, ext, strerror(errno));
    char label[PATH_MAX + 64];
    snprintf(label, sizeof label, "%s", f->label);
    f->ext = ext;
    mu_opts mo = {.mode = mode, .allow_missing = o && o->allow_missing, .load = load_partial,
                  .load_arg = f, .label = label};
    char why[600];
    int rc = mu_render(src, sl, data, &mo, out, len, why, sizeof why);
    free(src);
    if (rc)
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE", "template %s", why);
    return SCALR_EMAIL_OK;
}

void scalr_email_rendered_free(scalr_email_rendered *r)
{
    if (!r)
        return;
    free(r->subject);
    free(r->body);
    free(r->body_html);
    memset(r, 0, sizeof *r);
}

scalr_email_code scalr_email_template_render(const char *name, const char *data_json,
                                             size_t data_len,
                                             const scalr_email_template_opts *opts,
                                             scalr_email_rendered *out, scalr_email_error *err)
{
    se_error_clear(err);
    if (!name || !out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE", "template: NULL argument");
    memset(out, 0, sizeof *out);
    if (!plain_segment(name, strlen(name)) || name[0] == '_')
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE",
                       "template name '%.100s' must be a plain folder name inside the templates "
                       "folder (letters, digits, '_', '.', '-'; no '..', no '/')",
                       name);
    files f = {.locale = opts ? opts->locale : NULL};
    if (f.locale && !*f.locale)
        f.locale = NULL;
    if (f.locale && !valid_locale(f.locale))
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE",
                       "locale '%.40s' is not a language tag like 'fr' or 'fr-CA'", f.locale);
    const char *root = opts && opts->root && *opts->root ? opts->root : NULL;
    if (!root) {
        const char *env = getenv("SCALR_EMAIL_TEMPLATES");
        root = env && *env ? env : "./templates";
    }
    if (!realpath(root, f.root))
        return se_fail(err, SCALR_EMAIL_EFILE, "TEMPLATE", "templates folder %s: %s", root,
                       strerror(errno));
    char dir[PATH_MAX + 128];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/%s", f.root, name);
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return se_fail(err, SCALR_EMAIL_EFILE, "TEMPLATE", "no template '%s' in %s", name, root);

    json_error_t je;
    json_t *data = json_loadb(data_json ? data_json : "{}", data_json ? data_len : 2,
                              JSON_ALLOW_NUL, &je);
    if (!data)
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE", "template data is not JSON: %s (line %d)",
                       je.text, je.line);
    if (!json_is_object(data)) {
        json_decref(data);
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE", "template data must be a JSON object");
    }
    size_t sl = 0;
    scalr_email_code rc =
        render_part(&f, name, "subject", "txt", MU_TEXT, 1, data, opts, &out->subject, &sl, err);
    if (!rc) {
        /* the file's final newline is not part of the subject */
        if (sl && out->subject[sl - 1] == '\n')
            out->subject[--sl] = '\0';
        if (sl && out->subject[sl - 1] == '\r')
            out->subject[--sl] = '\0';
        for (size_t i = 0; i < sl; i++)
            if (out->subject[i] == '\r' || out->subject[i] == '\n' || out->subject[i] == '\0') {
                rc = se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE",
                             "the subject of template '%s' contains a %s, refused as header "
                             "injection",
                             name, out->subject[i] ? "line break" : "NUL byte");
                break;
            }
    }
    if (!rc)
        rc = render_part(&f, name, "body", "html", MU_HTML, 1, data, opts, &out->body_html,
                         &out->body_html_len, err);
    if (!rc)
        rc = render_part(&f, name, "body", "txt", MU_TEXT, 0, data, opts, &out->body,
                         &out->body_len, err);
    if (!rc && !out->body) {
        out->body = mu_html_to_text(out->body_html, out->body_html_len, &out->body_len);
        if (!out->body)
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "TEMPLATE", "out of memory");
    }
    json_decref(data);
    if (rc)
        scalr_email_rendered_free(out);
    return rc;
}

scalr_email_code scalr_email_template_render_string(const char *tmpl, size_t len,
                                                    const char *data_json, size_t data_len,
                                                    int html, int allow_missing, char **out,
                                                    size_t *out_len, scalr_email_error *err)
{
    se_error_clear(err);
    json_error_t je;
    json_t *data = json_loadb(data_json ? data_json : "{}", data_json ? data_len : 2,
                              JSON_ALLOW_NUL, &je);
    if (!data)
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE", "template data is not JSON: %s",
                       je.text);
    mu_opts mo = {.mode = html ? MU_HTML : MU_TEXT, .allow_missing = allow_missing,
                  .label = "template"};
    char why[600];
    size_t n = 0;
    int rc = mu_render(tmpl, len, data, &mo, out, &n, why, sizeof why);
    json_decref(data);
    if (rc)
        return se_fail(err, SCALR_EMAIL_EINVAL, "TEMPLATE", "%s", why);
    if (out_len)
        *out_len = n;
    return SCALR_EMAIL_OK;
}

/* Fixed "random" bytes for golden files: boundaries and Message-ID. */
static void fixed_random(void *arg, unsigned char *buf, size_t n)
{
    unsigned *seq = arg;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(0x5c + 7 * (*seq)++);
}

scalr_email_code scalr_email_compose_fixed(const scalr_email_message *msg,
                                           const char *default_from, char **out, size_t *out_len,
                                           scalr_email_error *err)
{
    se_error_clear(err);
    if (!msg || !out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "compose: NULL argument");
    *out = NULL;
    unsigned seq = 0;
    se_compose_opts o = {.now = 1767225600 /* 2026-01-01 00:00:00 UTC */,
                         .random = fixed_random, .random_arg = &seq};
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = se_compose(msg, default_from, &o, &comp, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    *out = se_buf_steal(&comp.data, out_len);
    se_composed_free(&comp);
    if (!*out)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
    return SCALR_EMAIL_OK;
}
